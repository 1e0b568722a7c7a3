#!/usr/bin/env bash
# Benchmarks strata diff and du, run by hand as root (not part of make check):
#   1. `strata diff VIEW` against `podman diff CONTAINER` after the same commands
#      on the real Debian image (rm -rf /usr/share/doc; chmod -R go-w /usr/bin);
#   2. `strata diff IMAGE1 IMAGE2` of two images with 100,000 files each;
#   3. `strata du IMAGE` on an image with 100,000 files.
# Inputs stay in the page cache; every store and container is fresh.
#
# usage: bench/diff-du.sh [RUNS]     (default 10; hyperfine means are reported)
# env:   STRATA_DEBIAN_ARCHIVE       default /var/tmp/strata-corpus/images/debian.oci-archive.tar
#        BENCH_DIR                   scratch directory, default /var/tmp/strata-bench-diff-du
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
STRATA=$PWD/strata
DEBIAN=${STRATA_DEBIAN_ARCHIVE:-/var/tmp/strata-corpus/images/debian.oci-archive.tar}
B=${BENCH_DIR:-/var/tmp/strata-bench-diff-du}
[ "$(id -u)" = 0 ] || { echo "diff-du.sh: run as root" >&2; exit 1; }
[ -x "$STRATA" ] || make -s

# Unmounts what an earlier, interrupted run left under the scratch directory, then removes it.
cleanup() {
	grep -F " $B/" /proc/mounts | awk '{ print $2 }' | sort -r | xargs -r -n 1 umount 2>/dev/null || true
	rm -rf "$B"
}
cleanup
trap cleanup EXIT
mkdir -p "$B"

# measure NAME CMD...: time CMD with hyperfine (RUNS runs after one warm-up) and
# print "NAME mean-wall-ms mean-cpu-ms max-RSS-kB"; the RSS comes from one
# more run under GNU time.
measure() {
	local name=$1
	shift
	local quoted
	quoted=$(printf '%q ' "$@")
	hyperfine -N --warmup 1 --runs "$RUNS" --export-json "$B/h.json" "$quoted" >/dev/null 2>"$B/err" ||
		{ echo "diff-du.sh: $name failed:" >&2; cat "$B/err" >&2; exit 1; }
	/usr/bin/time -f '%M' -o "$B/rss" "$@" >/dev/null 2>&1
	printf '%-46s %9.1f %9.1f %10d\n' "$name" \
		"$(jq '.results[0].mean * 1000' "$B/h.json")" \
		"$(jq '(.results[0].user + .results[0].system) * 1000' "$B/h.json")" "$(cat "$B/rss")"
}

command -v hyperfine >/dev/null || { echo "diff-du.sh: needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
printf '%-46s %9s %9s %10s\n' "command" "wall ms" "cpu ms" "max RSS kB"

# 1. The Debian view against podman.
if [ -f "$DEBIAN" ]; then
	script='rm -rf usr/share/doc; chmod -R go-w usr/bin'
	"$STRATA" --store "$B/store" pull-from-tarball -q "$DEBIAN" >/dev/null
	"$STRATA" --store "$B/store" run-view localhost/debian:latest --name d -q -- sh -c "$script"
	P=(podman --root "$B/podman/root" --runroot "$B/podman/run" --storage-driver overlay)
	"${P[@]}" load -q -i "$DEBIAN" >/dev/null 2>&1
	ctr=$("${P[@]}" create -q localhost/debian:latest /bin/true)
	mnt=$("${P[@]}" mount "$ctr")
	(cd "$mnt" && sh -c "$script")
	measure "strata diff VIEW (Debian, chmod -R usr/bin)" "$STRATA" --store "$B/store" diff d
	measure "podman diff CONTAINER (same commands)" "${P[@]}" diff "$ctr"
	echo "# paths: strata $("$STRATA" --store "$B/store" diff d | wc -l), podman $("${P[@]}" diff "$ctr" | wc -l)"
	measure "strata du VIEW (Debian)" "$STRATA" --store "$B/store" du d
	"${P[@]}" umount "$ctr" >/dev/null
	"${P[@]}" rm -f "$ctr" >/dev/null
	"${P[@]}" rmi -a -f >/dev/null 2>&1 || true
else
	echo "# no Debian image at $DEBIAN: build it with ../shared/corpus/build-real.sh; skipping part 1"
fi

# 2 and 3. Two images with 100,000 files each: a base layer, and the base plus a
# layer that rewrites 10,000 files and deletes 1,000 directories' worth of files.
python3 - "$B" <<'PY'
import io, sys, tarfile
out = sys.argv[1]
def write(name, entries):
    with tarfile.open(f"{out}/{name}", "w", format=tarfile.PAX_FORMAT) as t:
        for path, data in entries:
            info = tarfile.TarInfo(path)
            info.mtime = 1700000000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                t.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                t.addfile(info, io.BytesIO(data))
base = []
for d in range(1000):
    base.append((f"d{d:04}", None))
    for f in range(100):
        base.append((f"d{d:04}/f{f:03}", f"file {d} {f}\n".encode() * 4))
write("base.tar", base)
top = []
for d in range(100):
    top.append((f"d{d:04}", None))
    for f in range(100):
        top.append((f"d{d:04}/f{f:03}", f"changed {d} {f}\n".encode() * 4))
for d in range(100, 110):
    top.append((f".wh.d{d:04}", b""))
write("top.tar", top)
PY
make_archive() {  # make_archive OUT TAG LAYER...
	local out=$1 tag=$2 dir
	shift 2
	dir=$(mktemp -d "$B/arch.XXXXXX")
	local ids=() paths=() n=0 l
	for l in "$@"; do
		n=$((n + 1))
		mkdir "$dir/$n"
		cp "$l" "$dir/$n/layer.tar"
		ids+=("\"sha256:$(sha256sum <"$l" | cut -d' ' -f1)\"")
		paths+=("\"$n/layer.tar\"")
	done
	local config
	config=$(printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]}}' "$(IFS=,; echo "${ids[*]}")")
	local hex
	hex=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
	printf '%s' "$config" >"$dir/$hex.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":[%s]}]' "$hex" "$tag" "$(IFS=,; echo "${paths[*]}")" \
		>"$dir/manifest.json"
	tar -C "$dir" -cf "$out" .
	rm -rf "$dir"
}
make_archive "$B/big-a.tar" localhost/big:a "$B/base.tar"
make_archive "$B/big-b.tar" localhost/big:b "$B/base.tar" "$B/top.tar"
"$STRATA" --store "$B/big" pull-from-tarball -q "$B/big-a.tar" >/dev/null
"$STRATA" --store "$B/big" pull-from-tarball -q "$B/big-b.tar" >/dev/null
measure "strata diff IMAGE1 IMAGE2 (100,000 files each)" "$STRATA" --store "$B/big" diff localhost/big:a localhost/big:b
echo "# changed paths: $("$STRATA" --store "$B/big" diff localhost/big:a localhost/big:b | wc -l)"
measure "strata du IMAGE (100,000 files, 2 layers)" "$STRATA" --store "$B/big" du localhost/big:b
measure "strata du --json IMAGE (same)" "$STRATA" --store "$B/big" du --json localhost/big:b
