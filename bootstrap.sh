#!/usr/bin/env bash
# Installs the Debian packages strata needs that are missing, then runs a make target.
#
#   ./bootstrap.sh demo    build dependencies, then `make demo`
#   ./bootstrap.sh check   build and test dependencies, then `make check`
#   ./bootstrap.sh         build dependencies, then `make`
#
# Packages are installed with apt-get, as root or through sudo. Nothing is
# installed when every package is already present.
set -euo pipefail
cd "$(dirname "$0")"

target=${1:-all}
build_pkgs=(build-essential pkg-config libarchive-dev libjansson-dev zlib1g-dev libssl-dev libisal-dev)
test_pkgs=(check jq attr util-linux podman python3 valgrind zstd)

case "$target" in
  all|demo|install) pkgs=("${build_pkgs[@]}") ;;
  check) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "bootstrap.sh: unknown target '$target' (use demo, check or all)" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap.sh: installing ${missing[*]}" >&2
  if [ "$(id -u)" = 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "bootstrap.sh: run as root, or install first: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

exec make -j"$(nproc)" "$target"
