#!/usr/bin/env bash
#
# Compares strata with podman on the same archives: diff IDs, layer sizes and
# each layer's file list (podman's overlay layer directories against strata's).
# A second image is built on the first with podman commit, and strata must
# unpack only its new layer.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEBIAN_ARCHIVE=${STRATA_DEBIAN_ARCHIVE:-/var/tmp/strata-corpus/images/debian.oci-archive.tar}

podman_private() {
	podman --root "$TEST_TMP/podman/root" --runroot "$TEST_TMP/podman/run" --storage-driver overlay \
		--events-backend none --cgroup-manager cgroupfs "$@"
}

need_podman() {
	need_root
	need_cmd podman
	need_cmd jq
}

# compare_with_podman ARCHIVE TAG: import into both and compare layer by layer.
compare_with_podman() {
	local archive=$1 tag=$2
	podman_private load -q -i "$archive" >/dev/null 2>"$TEST_TMP/podman.err" ||
		fatal "podman load of $archive failed: $(cat "$TEST_TMP/podman.err")"
	strata_store pull-from-tarball -q "$archive"
	assert_eq 0 "$RC" "strata import of $archive" || return

	local inspect dirs=() d
	inspect=$(podman_private image inspect "$tag")
	strata_store layers --json "$tag"
	assert_eq "$(printf '%s' "$inspect" | jq -c '.[0].RootFS.Layers')" "$(out | jq -c '[.layers[].diff_id]')" \
		"diff IDs of $tag"
	# podman history lists the uncompressed size of each layer's tar, top first.
	assert_eq "$(podman_private history --format json "$tag" | jq -c '[.[] | select(.size > 0) | .size] | reverse')" \
		"$(out | jq -c '[.layers[] | select(.size > 0) | .size]')" "layer sizes of $tag"

	# podman's layer directories, bottom first: LowerDir is top first, UpperDir is the top layer.
	mapfile -t dirs < <(printf '%s' "$inspect" | jq -r '.[0].GraphDriver.Data.LowerDir // "" | split(":") | reverse | .[]'
		printf '%s' "$inspect" | jq -r '.[0].GraphDriver.Data.UpperDir')
	local i=0 keys=()
	mapfile -t keys < <(jq -r '.layers[].key' "$STORE/images/$(out | jq -r '.id | ltrimstr("sha256:")')/image.json")
	for d in "${dirs[@]}"; do
		[ -n "$d" ] || continue
		assert_eq "$(cd "$d" && find . -mindepth 1 -printf '%p %y\n' | LC_ALL=C sort)" \
			"$(cd "$STORE/layers/${keys[$i]}/root" && find . -mindepth 1 -printf '%p %y\n' | LC_ALL=C sort)" \
			"file list of layer $((i + 1)) of $tag"
		i=$((i + 1))
	done
	assert_eq "${#keys[@]}" "$i" "number of layers compared for $tag"
}

test_teach_layers_match_podman() {
	need_podman
	need_shared
	compare_with_podman "$SHARED/corpus/teach.oci-archive.tar" localhost/teach:latest
}

test_debian_layers_match_podman() {
	need_podman
	[ -f "$DEBIAN_ARCHIVE" ] || skip "no Debian image at $DEBIAN_ARCHIVE (build it with build-real.sh)"
	compare_with_podman "$DEBIAN_ARCHIVE" localhost/debian:latest
}

test_second_image_unpacks_only_new_layer() {
	need_podman
	[ -f "$DEBIAN_ARCHIVE" ] || skip "no Debian image at $DEBIAN_ARCHIVE (build it with build-real.sh)"
	podman_private load -q -i "$DEBIAN_ARCHIVE" >/dev/null 2>&1 || fatal "podman load failed"
	local ctr mnt
	ctr=$(podman_private create -q localhost/debian:latest /bin/true)
	mnt=$(podman_private mount "$ctr")
	mkdir -p "$mnt/srv/app"
	echo hello >"$mnt/srv/app/hello.txt"
	podman_private umount "$ctr" >/dev/null
	podman_private commit -q "$ctr" localhost/debian-app:latest >/dev/null
	podman_private save -q --format oci-archive -o "$TEST_TMP/app.tar" localhost/debian-app:latest

	strata_store pull-from-tarball -q "$DEBIAN_ARCHIVE"
	strata_store pull-from-tarball --json "$TEST_TMP/app.tar"
	assert_eq 0 "$RC" "import of the derived image" || { diag_file stderr "$TEST_TMP/err"; return; }
	assert_eq 5 "$(out | jq '.images[0].layers | length')" "four base layers and one new"
	assert_eq '["present","present","present","present","unpacked"]' \
		"$(out | jq -c '[.images[0].layers[].status]')" "only the new layer is unpacked"
	strata_store layers --json localhost/debian-app
	assert_eq "2 2 2 2 1" "$(out | jq -r '[.layers[].shared_by | tostring] | join(" ")')" "base layers shared"
}

run_tests
