#!/usr/bin/env bash
# Writes the fuzzing seed corpus to tests/fuzz-seeds/<target>/ from small
# archives made here with tar, and from strata's own teaching image.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/fuzz-seeds
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"/{ref,index,unpack,import}

printf '%s' alpine >"$out/ref/plain"
printf '%s' localhost/teach:latest >"$out/ref/tagged"
printf '%s' registry.example:5000/team/app:v1.2 >"$out/ref/registry-port"
printf '%s' sha256:21d8d75b80fc >"$out/ref/id-prefix"

# A layer with a file, a directory, a symlink, a hard link, a whiteout and an opaque marker.
mkdir -p "$work/l/d/o"
echo data >"$work/l/d/f"
ln -s f "$work/l/d/s"
ln "$work/l/d/f" "$work/l/d/h"
: >"$work/l/d/.wh.gone"
: >"$work/l/d/o/.wh..wh..opq"
tar -C "$work/l" --format=pax -cf "$out/unpack/mixed.tar" d
tar -C "$work/l" --format=gnu -cf "$out/unpack/mixed-gnu.tar" d
head -c 1024 /dev/zero >"$out/unpack/empty-layer.tar"

# A one-layer docker archive and an OCI layout with the same layer.
layer=$out/unpack/mixed.tar
diff_id=sha256:$(sha256sum <"$layer" | cut -d' ' -f1)
mkdir -p "$work/d/1"
cp "$layer" "$work/d/1/layer.tar"
config=$(printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]},"history":[{"created_by":"seed"}]}' "$diff_id")
config_hex=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
printf '%s' "$config" >"$work/d/$config_hex.json"
printf '[{"Config":"%s.json","RepoTags":["localhost/seed:latest"],"Layers":["1/layer.tar"]}]' "$config_hex" >"$work/d/manifest.json"
tar -C "$work/d" -cf "$out/import/docker-archive.tar" manifest.json "$config_hex.json" 1

mkdir -p "$work/o/blobs/sha256"
gzip -n -c "$layer" >"$work/o/layer.gz"
layer_hex=$(sha256sum <"$work/o/layer.gz" | cut -d' ' -f1)
mv "$work/o/layer.gz" "$work/o/blobs/sha256/$layer_hex"
printf '%s' "$config" >"$work/o/blobs/sha256/$config_hex"
manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
	"$config_hex" "${#config}" "$layer_hex" "$(stat -c %s "$work/o/blobs/sha256/$layer_hex")")
manifest_hex=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
printf '%s' "$manifest" >"$work/o/blobs/sha256/$manifest_hex"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"localhost/seed:oci"}}]}' \
	"$manifest_hex" "${#manifest}" >"$work/o/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/o/oci-layout"
tar -C "$work/o" -cf "$out/import/oci-layout.tar" blobs index.json oci-layout

# Index files of the layers above, as strata writes them.
./strata --store "$work/store" pull-from-tarball -q "$out/import/docker-archive.tar" >/dev/null
n=0
for index in "$work"/store/layers/*/index; do
	n=$((n + 1))
	cp "$index" "$out/index/layer-$n"
done
