#!/usr/bin/env bash
#
# OCI layouts that real tools write but the corpus lacks: an index that
# points to a nested index, and a multi-platform index, with --platform.
# The layouts are written here with Python's tarfile, json and hashlib.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# make_layout OUT KIND: KIND is "nested" or "multi".
make_layout() {
	python3 - "$1" "$2" <<'PY'
import gzip, hashlib, io, json, sys, tarfile
out, kind = sys.argv[1], sys.argv[2]
blobs = {}

def add(data):
    digest = hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return {"digest": "sha256:" + digest, "size": len(data)}

def layer(path, text):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo(path)
        info.size = len(text)
        t.addfile(info, io.BytesIO(text))
    tar = raw.getvalue()
    return tar, gzip.compress(tar, mtime=0)

def image(arch, path, text):
    tar, gz = layer(path, text)
    config = json.dumps({"architecture": arch, "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
                         "history": [{"created_by": "made for " + arch}]}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": dict(add(config), mediaType="application/vnd.oci.image.config.v1+json"),
                           "layers": [dict(add(gz), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")]}).encode()
    return dict(add(manifest), mediaType="application/vnd.oci.image.manifest.v1+json",
                platform={"os": "linux", "architecture": arch})

amd = image("amd64", "arch", b"amd64\n")
if kind == "multi":
    arm = image("arm64", "arch", b"arm64\n")
    inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [amd, arm]}).encode()
    top = [dict(add(inner), mediaType="application/vnd.oci.image.index.v1+json",
                annotations={"org.opencontainers.image.ref.name": "localhost/multi:latest"})]
else:
    inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": [amd]}).encode()
    middle = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                         "manifests": [dict(add(inner), mediaType="application/vnd.oci.image.index.v1+json")]}).encode()
    top = [dict(add(middle), mediaType="application/vnd.oci.image.index.v1+json",
                annotations={"org.opencontainers.image.ref.name": "localhost/nested:latest"})]
index = json.dumps({"schemaVersion": 2, "manifests": top}).encode()
with tarfile.open(out, "w") as t:
    def put(name, data):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    for digest, data in blobs.items():
        put("blobs/sha256/" + digest, data)
    put("index.json", index)
    put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
PY
}

# Content of /arch in the image's only layer.
arch_of() {
	local key
	key=$(strata_store layers --json "$1"; out | jq -r '.layers[0].diff_id | ltrimstr("sha256:")')
	cat "$STORE/layers/$key/root/arch"
}

test_nested_index_is_followed() {
	need_cmd python3
	make_layout "$TEST_TMP/nested.tar" nested
	strata_store pull-from-tarball "$TEST_TMP/nested.tar"
	assert_eq 0 "$RC" "exit status" || { diag_file stderr "$TEST_TMP/err"; return; }
	assert_contains "$(out)" "Tagged localhost/nested:latest" "tag from the outer index"
}

test_multi_platform_index_picks_platform() {
	need_cmd python3
	make_layout "$TEST_TMP/multi.tar" multi
	if [ "$(uname -m)" = x86_64 ]; then
		strata_store pull-from-tarball -q "$TEST_TMP/multi.tar"
		assert_eq 0 "$RC" "exit status for the host platform"
		assert_eq amd64 "$(arch_of localhost/multi)" "host platform chosen"
	fi
	rm -rf "$STORE"
	strata_store pull-from-tarball -q --platform linux/arm64 "$TEST_TMP/multi.tar"
	assert_eq 0 "$RC" "exit status with --platform"
	assert_eq arm64 "$(arch_of localhost/multi)" "--platform linux/arm64 chosen"
	strata_store pull-from-tarball --platform linux/s390x "$TEST_TMP/multi.tar"
	assert_eq 1 "$RC" "exit status for a platform the index lacks"
	assert_error_line "linux/s390x"
	assert_contains "$(err)" "linux/arm64" "available platforms listed"
	strata_store pull-from-tarball --platform arm64 "$TEST_TMP/multi.tar"
	assert_eq 2 "$RC" "invalid --platform"
}

run_tests
