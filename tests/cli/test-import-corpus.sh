#!/usr/bin/env bash
#
# pull-from-tarball with real image archives: the `teach` image exported by
# podman, docker, skopeo in docker-archive, docker-save, OCI archive and OCI
# layout (zstd) form, and the multi-image archives teach:l1, teach:l4,
# teach:latest. Expected values come from the corpus description shipped with
# the archives.
#
# Checks marked "store layout" look inside STORE/layers/<hex>/root and depend
# on the documented store layout rather than on command output.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CORPUS=$SHARED/corpus

TEACH_TAG=localhost/teach:latest
TEACH_ID=sha256:21d8d75b80fc4cf1218a1f2aca61f4d21dcf15ce43fcca6f3380e56e4fcd4d3b
TEACH_L1_ID=sha256:cb7d7acfa468dcb335cbc7f346ea9a1f69cecdaed9423096d6e88fafbec909d4
TEACH_L4_ID=sha256:1479fe95b9eaa74350f40820e9ee1856763c30484421e61e64676cd4ee7d943e

TEACH_DIFF_IDS=(
	sha256:9fed7ba96394d38f844b263e561f9e4099f2707b1fd5915e499f022fb6ef6c83
	sha256:bab3fcfbcb4e26f082b56ef7a86db237ae9d0f1d0dfcb89d395bf904584b7234
	sha256:4759a7fb41077aac7d18491e056dd65b722d313526d0d9887bb91cc32fe91d61
	sha256:2741fa926c38914005b8cf1a6be3f12f17e6d57dc637e460083adcaa709337fa
	sha256:40fd318ff49c8caab8e192a0d4d2a377a4e8379e36dd2eca1265e795913e88e5
	sha256:da3be613431351359cc3df1394081e850036328c535d70aa6c90f1f07ae70d87
	sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef
)
# Uncompressed layer tar sizes in bytes.
TEACH_TAR_SIZES=(13394432 4196352 4196864 2560 140800 551936 1024)
TEACH_TOTAL_SIZE=22483968
# Entries per layer tar. L1 has 11 dirs, 20 files and 14 symlinks. L2 has
# data/ and big.bin, L3 data/ and two files, L4 data/ and two whiteouts.
# L5 has data/, replace-dir/, the opaque marker and three files. L7 is empty.
TEACH_ENTRIES=(45 2 3 3 6 12 0)
# Paths under each unpacked layer root: the entries, less L5's opaque marker,
# which becomes an xattr on its directory.
TEACH_ROOT_PATHS=(45 2 3 3 5 12 0)

# 2024-01-01T00:00:01Z, the mtime of every file in L1; layer N uses second N.
TEACH_L1_MTIME=1704067201
BUSYBOX_SHA256=3d9f2889d6782537624a4e1a10e68a2ddd53e0ee8bac02676f27308f42ec6bf6

# import ARGS...: pull-from-tarball into $STORE; fails the test on a non-zero exit.
import() {
	strata_store pull-from-tarball "$@"
	if [ "$RC" != 0 ]; then
		diag_file stderr "$TEST_TMP/err"
		fatal "pull-from-tarball $* exited with $RC"
	fi
}

# Print a pull-from-tarball --json or layers --json field with jq, failing
# the test when stdout is not JSON.
json() {
	jq -r "$@" "$TEST_TMP/out" 2>/dev/null || fail "output is not the expected JSON (jq $*)" "$(head -c 2000 "$TEST_TMP/out")"
}

# Extract an OCI layout archive's top manifest into $TEST_TMP/manifest.json.
extract_oci_manifest() {
	local archive=$1 dir=$TEST_TMP/layout digest
	mkdir -p "$dir"
	tar -xf "$archive" -C "$dir" || fatal "cannot extract $archive"
	digest=$(jq -r '.manifests[0].digest' "$dir/index.json")
	cp "$dir/blobs/sha256/${digest#sha256:}" "$TEST_TMP/manifest.json"
	rm -rf "$dir"
}

# check_teach_layers REF: `layers --json REF` describes the 7-layer teach image.
check_teach_layers() {
	local ref=$1 i
	strata_store layers --json "$ref"
	if [ "$RC" != 0 ]; then
		diag_file stderr "$TEST_TMP/err"
		fatal "layers --json $ref exited with $RC"
	fi

	assert_eq "$TEACH_ID" "$(json .id)" "image ID of $ref"
	assert_eq true "$(json --arg t "$TEACH_TAG" '.tags | index($t) != null')" "tags of $ref include $TEACH_TAG"
	assert_eq 7 "$(json '.layers | length')" "number of layers of $ref"

	for i in 0 1 2 3 4 5 6; do
		assert_eq "$((i + 1))" "$(json ".layers[$i].position")" "position of layer $((i + 1))"
		assert_eq "${TEACH_DIFF_IDS[$i]}" "$(json ".layers[$i].diff_id")" "diff_id of layer $((i + 1))"
		assert_eq "${TEACH_TAR_SIZES[$i]}" "$(json ".layers[$i].size")" "size of layer $((i + 1))"
		assert_eq "${TEACH_ENTRIES[$i]}" "$(json ".layers[$i].entries")" "entries of layer $((i + 1))"
	done

	# 8 history entries; the ENV entry is empty, and the LABEL entry (the
	# last one) owns layer 7. The index base is not fixed, so compare through
	# history_index.
	assert_eq 8 "$(json '.history | length')" "number of history entries"
	assert_eq 1 "$(json '[.history[] | select(.empty_layer)] | length')" "number of empty history entries"
	assert_eq null "$(json '.history[] | select(.empty_layer) | .layer')" "layer of the empty history entry"
	assert_contains "$(json '.layers[6].history_index as $h | .history[] | select(.index == $h) | .created_by')" \
		"LABEL org.strata.teach.step=7" "history entry of layer 7"
	assert_contains "$(json '.layers[5].history_index as $h | .history[] | select(.index == $h) | .created_by')" \
		"strata-teach L6:" "history entry of layer 6"
}

# check_teach_store_facts [UID]: the unpacked layers of the teach image
# contain what the layer tars describe. UID is the user that ran the import
# (default: the current user). A store written by a non-root user marks
# opaque dirs with user.overlay.opaque and its files belong to that user.
check_teach_store_facts() {
	local owner=${1:-$(id -u)}
	local mode=user
	if [ "$owner" = 0 ]; then
		mode=root
	fi
	local l1 l2 l3 l4 l5 l6 l7 i
	l1=$(layer_root "${TEACH_DIFF_IDS[0]}")
	l2=$(layer_root "${TEACH_DIFF_IDS[1]}")
	l3=$(layer_root "${TEACH_DIFF_IDS[2]}")
	l4=$(layer_root "${TEACH_DIFF_IDS[3]}")
	l5=$(layer_root "${TEACH_DIFF_IDS[4]}")
	l6=$(layer_root "${TEACH_DIFF_IDS[5]}")
	l7=$(layer_root "${TEACH_DIFF_IDS[6]}")

	# Store layout: each layer is unpacked at layers/<diff_id hex>/root and
	# contains exactly the paths of its tar.
	for i in 0 1 2 3 4 5 6; do
		local root
		root=$(layer_root "${TEACH_DIFF_IDS[$i]}")
		assert_dir "$root" "layer $((i + 1)) root" || continue
		assert_eq "${TEACH_ROOT_PATHS[$i]}" "$(find "$root" -mindepth 1 | wc -l)" \
			"number of paths under layer $((i + 1)) root"
	done

	# L1: base files, modes and mtimes.
	assert_file "$l1/bin/busybox" "L1 bin/busybox" &&
		assert_eq "$BUSYBOX_SHA256" "$(sha256sum <"$l1/bin/busybox" | cut -d' ' -f1)" "sha256 of L1 bin/busybox"
	assert_stat %s 1982256 "$l1/bin/busybox"
	assert_stat %a 755 "$l1/bin/busybox"
	assert_stat %Y "$TEACH_L1_MTIME" "$l1/bin/busybox"
	assert_stat %Y "$TEACH_L1_MTIME" "$l1/data" "mtime of L1 data/ (restored after its children)"
	assert_eq busybox "$(readlink "$l1/bin/sh")" "L1 bin/sh symlink target"
	assert_stat %a 700 "$l1/root"
	assert_stat %a 1777 "$l1/tmp"
	assert_stat %s 2097152 "$l1/data/delete-me.bin"
	assert_stat %s 3000 "$l1/data/gone-dir/sub/g3.txt"

	# L2: the whole big.bin, differing from L1's only in its first 4096 bytes.
	assert_stat %s 4194304 "$l2/data/big.bin"
	if cmp -s -n 4096 "$l1/data/big.bin" "$l2/data/big.bin"; then
		fail "L2 data/big.bin has the same first 4096 bytes as L1's"
	fi
	cmp -s -i 4096 "$l1/data/big.bin" "$l2/data/big.bin" ||
		fail "L2 data/big.bin differs from L1's after byte 4096"

	# L3: metadata-only copy-ups.
	assert_file "$l3/data/chmod-me.bin" "L3 data/chmod-me.bin"
	assert_stat %a 600 "$l3/data/chmod-me.bin"
	assert_stat %s 3145728 "$l3/data/chmod-me.bin"
	cmp -s "$l1/data/chmod-me.bin" "$l3/data/chmod-me.bin" ||
		fail "L3 data/chmod-me.bin content differs from L1's"
	assert_stat %s 1048576 "$l3/data/chown-me.bin"
	if [ "$mode" = root ]; then
		assert_stat %u:%g 1000:1000 "$l3/data/chown-me.bin"
	fi

	# L4: whiteouts become overlay whiteouts (char device 0/0), with no
	# .wh. file left.
	assert_stat '%F %t:%T' 'character special file 0:0' "$l4/data/delete-me.bin" "L4 data/delete-me.bin"
	assert_stat '%F %t:%T' 'character special file 0:0' "$l4/data/gone-dir" "L4 data/gone-dir"
	assert_eq "" "$(find "$l4" -name '.wh.*')" "L4 paths named .wh.*"

	# L5: opaque directory.
	assert_dir "$l5/data/replace-dir" "L5 data/replace-dir"
	if [ "$mode" = root ]; then
		assert_eq y "$(xattr_text trusted.overlay.opaque "$l5/data/replace-dir")" \
			"trusted.overlay.opaque of L5 data/replace-dir"
	else
		assert_eq y "$(xattr_text user.overlay.opaque "$l5/data/replace-dir")" \
			"user.overlay.opaque of L5 data/replace-dir"
		assert_eq "" "$(xattr_text trusted.overlay.opaque "$l5/data/replace-dir")" \
			"trusted.overlay.opaque of L5 data/replace-dir in a non-root store"
	fi
	assert_missing "$l5/data/replace-dir/.wh..wh..opq" "L5 opaque marker file"
	assert_stat %s 2345 "$l5/data/replace-dir/keep.txt"
	assert_stat %s 3000 "$l5/data/replace-dir/new-1.txt"
	assert_stat %s 131072 "$l5/data/replace-dir/new-2.bin"

	# L6: hard links inside the layer share one inode.
	local links=$l6/data/links
	assert_file "$links/hard-1" "L6 hard-1"
	assert_stat %s 524288 "$links/hard-1"
	assert_stat %h 3 "$links/hard-1" "link count of L6 hard-1"
	assert_eq "$(stat -c %i "$links/hard-1")" "$(stat -c %i "$links/hard-2" 2>&1)" "inode of L6 hard-2 vs hard-1"
	assert_eq "$(stat -c %i "$links/hard-1")" "$(stat -c %i "$links/orig.bin" 2>&1)" "inode of L6 orig.bin vs hard-1"
	assert_file "$links/b-hard" "L6 b-hard"
	assert_stat %s 20000 "$links/b-hard"
	assert_eq "$(stat -c %i "$l6/data/dir1/b.txt")" "$(stat -c %i "$links/b-hard" 2>&1)" "inode of L6 b-hard vs data/dir1/b.txt"
	assert_eq orig.bin "$(readlink "$links/sym-rel")" "L6 sym-rel target"
	assert_eq /data/big.bin "$(readlink "$links/sym-abs")" "L6 sym-abs target"
	assert_eq ../dir1 "$(readlink "$links/dir-link")" "L6 dir-link target"
	assert_eq /nonexistent/target "$(readlink "$links/dangling")" "L6 dangling target"

	# L7: the empty layer.
	assert_empty_dir "$l7" "L7 root"

	if [ "$mode" = user ]; then
		assert_stat %u "$owner" "$l1/bin/busybox" "owner of L1 bin/busybox in a non-root store"
	fi

	# Store layout: nothing left in the staging directory.
	assert_empty_dir "$STORE/tmp" "store tmp/"
}

# check_import_text_output STATUS: the human pull-from-tarball output names
# the image, lists 7 layers with STATUS, then the ID and the tag.
check_import_text_output() {
	local status=$1 i failed_before=$TEST_FAILED
	TEST_FAILED=0
	local text
	text=$(out)
	grep -qxF "Loading $TEACH_TAG (7 layers)" <<<"$text" ||
		fail "no 'Loading $TEACH_TAG (7 layers)' line"
	for i in 0 1 2 3 4 5 6; do
		local short=${TEACH_DIFF_IDS[$i]:7:12}
		grep -qE "^ +layer $((i + 1))/7 +sha256:$short +$status( |\$)" <<<"$text" ||
			fail "no '$status' line for layer $((i + 1))/7 (sha256:$short)"
	done
	grep -qxF "Loaded image $TEACH_ID" <<<"$text" || fail "no 'Loaded image $TEACH_ID' line"
	grep -qxF "Tagged $TEACH_TAG" <<<"$text" || fail "no 'Tagged $TEACH_TAG' line"
	if [ "$TEST_FAILED" = 1 ]; then
		diag_file "pull-from-tarball output" "$TEST_TMP/out"
	fi
	[ "$failed_before" = 1 ] && TEST_FAILED=1
	return 0
}

# --- one archive per format ----------------------------------------------------

test_import_docker_archive() {
	need_shared
	need_strata
	need_cmd jq getfattr

	import "$CORPUS/teach.docker-archive.tar.gz"
	check_import_text_output unpacked
	assert_eq "" "$(grep -v '^strata: warning:' "$TEST_TMP/err")" "stderr of the import"

	check_teach_layers "$TEACH_TAG"
	local i
	for i in 0 1 2 3 4 5 6; do
		assert_eq "${TEACH_TAR_SIZES[$i]}" "$(json ".layers[$i].compressed_size")" \
			"compressed_size of uncompressed layer $((i + 1))"
	done
	check_teach_store_facts
}

test_import_docker_save() {
	need_shared
	need_strata
	need_cmd jq getfattr

	import "$CORPUS/teach.docker-save.tar.gz"
	check_import_text_output unpacked
	check_teach_layers "$TEACH_TAG"
	check_teach_store_facts
}

test_import_oci_archive() {
	need_shared
	need_strata
	need_cmd jq getfattr

	import "$CORPUS/teach.oci-archive.tar"
	check_import_text_output unpacked
	check_teach_layers "$TEACH_TAG"
	cp "$TEST_TMP/out" "$TEST_TMP/layers.json"

	# Blob digests, sizes and media types come from the OCI manifest.
	extract_oci_manifest "$CORPUS/teach.oci-archive.tar"
	local i
	for i in 0 1 2 3 4 5 6; do
		assert_eq "$(jq -r ".layers[$i].digest" "$TEST_TMP/manifest.json")" \
			"$(jq -r ".layers[$i].blob_digest" "$TEST_TMP/layers.json")" "blob_digest of layer $((i + 1))"
		assert_eq "$(jq -r ".layers[$i].size" "$TEST_TMP/manifest.json")" \
			"$(jq -r ".layers[$i].compressed_size" "$TEST_TMP/layers.json")" "compressed_size of layer $((i + 1))"
		assert_eq application/vnd.oci.image.layer.v1.tar+gzip \
			"$(jq -r ".layers[$i].media_type" "$TEST_TMP/layers.json")" "media_type of layer $((i + 1))"
	done
	check_teach_store_facts
}

test_import_oci_layout_zstd() {
	need_shared
	need_strata
	need_cmd jq getfattr

	# The layout's only reference name is "latest", which carries no
	# repository, so the tag is given on the command line.
	import --tag "$TEACH_TAG" "$CORPUS/teach.oci-layout-zstd.tar"
	check_import_text_output unpacked
	check_teach_layers "$TEACH_TAG"
	cp "$TEST_TMP/out" "$TEST_TMP/layers.json"

	extract_oci_manifest "$CORPUS/teach.oci-layout-zstd.tar"
	local i
	for i in 0 1 2 3 4 5 6; do
		assert_eq "$(jq -r ".layers[$i].size" "$TEST_TMP/manifest.json")" \
			"$(jq -r ".layers[$i].compressed_size" "$TEST_TMP/layers.json")" "compressed_size of layer $((i + 1))"
		assert_eq application/vnd.oci.image.layer.v1.tar+zstd \
			"$(jq -r ".layers[$i].media_type" "$TEST_TMP/layers.json")" "media_type of layer $((i + 1))"
	done
	assert_eq 32 "$(jq -r '.layers[6].compressed_size' "$TEST_TMP/layers.json")" "compressed_size of the zstd empty layer"
	check_teach_store_facts
}

# check_multi_images: the store contains teach:l1, teach:l4 and teach:latest
# with 1, 4 and 7 layers, sharing 7 layer directories.
check_multi_images() {
	strata_store images --json
	[ "$RC" = 0 ] || fatal "images --json exited with $RC" "$(err)"
	assert_eq 3 "$(json 'length')" "number of images"

	local id tag count
	while read -r id tag count; do
		assert_eq "$id" "$(json --arg t "$tag" '.[] | select(.tags | index($t) != null) | .id')" "ID of $tag"
		assert_eq "$count" "$(json --arg t "$tag" '.[] | select(.tags | index($t) != null) | .layers')" "layers of $tag"
	done <<EOF
$TEACH_L1_ID localhost/teach:l1 1
$TEACH_L4_ID localhost/teach:l4 4
$TEACH_ID localhost/teach:latest 7
EOF

	strata_store layers --json teach:l4
	[ "$RC" = 0 ] || fatal "layers --json teach:l4 exited with $RC" "$(err)"
	assert_eq "$TEACH_L4_ID" "$(json .id)" "ID of teach:l4"
	local i
	for i in 0 1 2 3; do
		assert_eq "${TEACH_DIFF_IDS[$i]}" "$(json ".layers[$i].diff_id")" "diff_id of teach:l4 layer $((i + 1))"
	done

	strata_store layers --json teach:l1
	[ "$RC" = 0 ] || fatal "layers --json teach:l1 exited with $RC" "$(err)"
	assert_eq 1 "$(json '.layers | length')" "number of layers of teach:l1"
	assert_eq "${TEACH_DIFF_IDS[0]}" "$(json '.layers[0].diff_id')" "diff_id of teach:l1 layer 1"

	# SHARED counts the images using each layer: L1 is in all three, L2-L4
	# in teach:l4 and teach:latest, L5-L7 only in teach:latest.
	check_teach_layers teach:latest
	local shared=(3 2 2 2 1 1 1)
	for i in 0 1 2 3 4 5 6; do
		assert_eq "${shared[$i]}" "$(json ".layers[$i].shared_by")" "shared_by of layer $((i + 1))"
	done

	# Store layout: one directory per distinct layer.
	assert_eq 7 "$(layer_dir_count)" "number of layer directories"
}

test_import_multi_docker_archive() {
	need_shared
	need_strata
	need_cmd jq

	import "$CORPUS/teach-multi.docker-archive.tar.gz"
	check_multi_images
}

test_import_multi_docker_save() {
	need_shared
	need_strata
	need_cmd jq

	import "$CORPUS/teach-multi.docker-save.tar.gz"
	check_multi_images
}

# --- output forms ----------------------------------------------------------------

test_import_quiet_prints_only_id() {
	need_shared
	need_strata

	import -q "$CORPUS/teach.oci-archive.tar"
	assert_eq "$TEACH_ID" "$(out)" "pull-from-tarball -q output"
}

test_import_json_output() {
	need_shared
	need_strata
	need_cmd jq

	import --json "$CORPUS/teach.docker-archive.tar.gz"
	assert_eq 1 "$(json '.images | length')" "number of images in --json output"
	assert_eq "$TEACH_ID" "$(json '.images[0].id')" "image ID in --json output"
	assert_eq "$TEACH_TAG" "$(json '.images[0].tags | join(",")')" "tags in --json output"
	assert_eq 7 "$(json '.images[0].layers | length')" "number of layers in --json output"
	local i
	for i in 0 1 2 3 4 5 6; do
		assert_eq "$((i + 1))" "$(json ".images[0].layers[$i].position")" "position of layer $((i + 1))"
		assert_eq "${TEACH_DIFF_IDS[$i]}" "$(json ".images[0].layers[$i].diff_id")" "diff_id of layer $((i + 1))"
		assert_eq unpacked "$(json ".images[0].layers[$i].status")" "status of layer $((i + 1))"
		# NOTE: assumes "size" is the uncompressed tar size, as the text
		# output's "13.4 MB" for layer 1 suggests.
		assert_eq "${TEACH_TAR_SIZES[$i]}" "$(json ".images[0].layers[$i].size")" "size of layer $((i + 1))"
	done
}

test_images_after_import() {
	need_shared
	need_strata
	need_cmd jq

	import -q "$CORPUS/teach.docker-archive.tar.gz"

	strata_store images --json
	assert_eq 0 "$RC" "images --json exit status"
	assert_eq 1 "$(json 'length')" "number of images"
	assert_eq "$TEACH_ID" "$(json '.[0].id')" "image ID"
	assert_eq "$TEACH_TAG" "$(json '.[0].tags | join(",")')" "tags"
	assert_eq 7 "$(json '.[0].layers')" "layers"
	assert_eq "$TEACH_TOTAL_SIZE" "$(json '.[0].size')" "size (sum of layer tars)"
	assert_eq "$TEACH_TOTAL_SIZE" "$(json '.[0].compressed_size')" "compressed_size of uncompressed blobs"
	assert_contains "$(json '.[0].created')" "2024-01-01T00:00:07" "created"

	strata_store images -q
	assert_eq "$TEACH_ID" "$(out)" "images -q"

	strata_store images
	assert_eq 0 "$RC" "images exit status"
	local header
	header=$(out | head -n 1)
	local column
	for column in REPOSITORY:TAG "IMAGE ID" CREATED LAYERS SIZE; do
		assert_contains "$header" "$column" "images header"
	done
	assert_contains "$(out)" "$TEACH_TAG" "images table"
	assert_contains "$(out)" "${TEACH_ID:7:12}" "images table"

	strata_store --list-images
	assert_eq "$TEACH_TAG" "$(out)" "--list-images"
}

test_layers_table() {
	need_shared
	need_strata

	import -q "$CORPUS/teach.docker-archive.tar.gz"

	strata_store layers --bytes "$TEACH_TAG"
	assert_eq 0 "$RC" "layers exit status" || return
	local column
	for column in "#" "DIFF ID" COMPRESSED SIZE ENTRIES SHARED "CREATED BY"; do
		assert_contains "$(out | head -n 1)" "$column" "layers header"
	done
	assert_eq 1 "$(grep -c '(empty layer)' "$TEST_TMP/out")" "number of '(empty layer)' rows"
	assert_contains "$(out)" 13394432 "layers --bytes output"
	assert_contains "$(out)" "${TEACH_DIFF_IDS[0]:7:12}" "layers output"

	strata_store layers --no-trunc "$TEACH_TAG"
	assert_eq 0 "$RC" "layers --no-trunc exit status"
	assert_contains "$(out)" "${TEACH_DIFF_IDS[0]}" "layers --no-trunc output"
}

test_layers_image_references() {
	need_shared
	need_strata
	need_cmd jq

	import -q "$CORPUS/teach.docker-archive.tar.gz"

	local ref
	for ref in teach teach:latest localhost/teach "$TEACH_ID" "${TEACH_ID#sha256:}" "${TEACH_ID:7:12}"; do
		strata_store layers --json "$ref"
		assert_eq 0 "$RC" "layers --json $ref exit status" || {
			diag_file stderr "$TEST_TMP/err"
			continue
		}
		assert_eq "$TEACH_ID" "$(json .id)" "image found by $ref"
	done
}

# --- re-imports and layer sharing -------------------------------------------------

test_reimport_reports_present() {
	need_shared
	need_strata
	need_cmd jq

	import "$CORPUS/teach.docker-archive.tar.gz"
	check_import_text_output unpacked

	import "$CORPUS/teach.docker-archive.tar.gz"
	check_import_text_output present
	assert_eq 0 "$(grep -c unpacked "$TEST_TMP/out")" "lines saying 'unpacked' on the second import"

	import --json "$CORPUS/teach.docker-archive.tar.gz"
	assert_eq present "$(json '[.images[0].layers[].status] | unique | join(",")')" "statuses on the third import"

	assert_eq 7 "$(layer_dir_count)" "number of layer directories"
	strata_store images -q
	assert_eq "$TEACH_ID" "$(out)" "images -q after three imports"
}

test_docker_then_oci_archive_shares_layers() {
	need_shared
	need_strata
	need_cmd jq

	import "$CORPUS/teach.docker-archive.tar.gz"
	import --json "$CORPUS/teach.oci-archive.tar"
	assert_eq "$TEACH_ID" "$(json '.images[0].id')" "image ID from the OCI archive"
	assert_eq present "$(json '[.images[0].layers[].status] | unique | join(",")')" \
		"statuses of the OCI archive's layers"

	assert_eq 7 "$(layer_dir_count)" "number of layer directories"
	strata_store images -q
	assert_eq "$TEACH_ID" "$(out)" "images -q"
}

# --- standard input -----------------------------------------------------------------

test_import_from_stdin() {
	need_shared
	need_strata
	need_cmd jq getfattr

	strata_store pull-from-tarball -q - <"$CORPUS/teach.oci-archive.tar"
	assert_eq 0 "$RC" "exit status of an import from a redirected file" || diag_file stderr "$TEST_TMP/err"
	assert_eq "$TEACH_ID" "$(out)" "image ID"
	check_teach_layers "$TEACH_TAG"
	check_teach_store_facts
}

test_import_gzip_from_pipe() {
	need_shared
	need_strata
	need_cmd jq

	# Process substitution gives strata a pipe, which it cannot seek.
	strata_store pull-from-tarball -q - < <(cat "$CORPUS/teach.docker-archive.tar.gz")
	assert_eq 0 "$RC" "exit status of an import of a gzip stream from a pipe" || diag_file stderr "$TEST_TMP/err"
	assert_eq "$TEACH_ID" "$(out)" "image ID"
	check_teach_layers "$TEACH_TAG"
	assert_empty_dir "$STORE/tmp" "store tmp/"
}

test_import_zstd_from_pipe() {
	need_shared
	need_strata
	need_cmd jq zstd

	strata_store pull-from-tarball -q - < <(gzip -dc "$CORPUS/teach.docker-save.tar.gz" | zstd -q -c)
	assert_eq 0 "$RC" "exit status of an import of a zstd stream from a pipe" || diag_file stderr "$TEST_TMP/err"
	assert_eq "$TEACH_ID" "$(out)" "image ID"
	check_teach_layers "$TEACH_TAG"
}

test_import_uncompressed_from_pipe() {
	need_shared
	need_strata
	need_cmd jq

	strata_store pull-from-tarball -q - < <(gzip -dc "$CORPUS/teach-multi.docker-archive.tar.gz")
	assert_eq 0 "$RC" "exit status of an import of a plain tar stream from a pipe" || diag_file stderr "$TEST_TMP/err"
	assert_eq 3 "$(out | wc -l)" "number of IDs printed by -q for three images"
	check_multi_images
}

# --- concurrency ----------------------------------------------------------------------

test_concurrent_imports_share_store() {
	need_shared
	need_strata
	need_cmd jq

	timeout "$STRATA_TIMEOUT" "$STRATA" --store "$STORE" pull-from-tarball -q \
		"$CORPUS/teach-multi.docker-archive.tar.gz" >"$TEST_TMP/out1" 2>"$TEST_TMP/err1" &
	local pid1=$!
	timeout "$STRATA_TIMEOUT" "$STRATA" --store "$STORE" pull-from-tarball -q \
		"$CORPUS/teach.oci-archive.tar" >"$TEST_TMP/out2" 2>"$TEST_TMP/err2" &
	local pid2=$!

	local rc1=0 rc2=0
	wait "$pid1" || rc1=$?
	wait "$pid2" || rc2=$?
	assert_eq 0 "$rc1" "exit status of the multi-image import" || diag_file stderr "$TEST_TMP/err1"
	assert_eq 0 "$rc2" "exit status of the OCI archive import" || diag_file stderr "$TEST_TMP/err2"

	# Store layout: each of the 7 distinct layers unpacked exactly once.
	assert_eq 7 "$(layer_dir_count)" "number of layer directories"
	local diff_id
	for diff_id in "${TEACH_DIFF_IDS[@]}"; do
		assert_dir "$(layer_root "$diff_id")" "layer root of $diff_id"
	done
	assert_empty_dir "$STORE/tmp" "store tmp/"

	check_multi_images
	check_teach_store_facts
}

# --- integrity ---------------------------------------------------------------------------

test_tampered_blob_rejected() {
	need_shared
	need_strata
	need_cmd jq

	local archive=$TEST_TMP/tampered.oci-archive.tar
	cp "$CORPUS/teach.oci-archive.tar" "$archive"
	chmod u+w "$archive"

	# Find the largest blob and its header block in the outer tar.
	local block size name
	read -r block size name < <(tar -tvRf "$archive" |
		awk '$NF ~ /^(\.\/)?blobs\/sha256\/[0-9a-f]+$/ { sub(":", "", $2); print $2, $5, $NF }' |
		sort -k2,2n | tail -n 1)
	[ -n "$name" ] || fatal "no blob found in $archive"
	local header_name
	header_name=$(dd if="$archive" bs=512 skip="$block" count=1 status=none | head -c 100 | tr -d '\0')
	assert_eq "$name" "$header_name" "tar header at block $block" || return

	# Flip every bit of one byte in the middle of the blob.
	local offset=$(((block + 1) * 512 + size / 2))
	local byte
	byte=$(dd if="$archive" bs=1 skip="$offset" count=1 status=none | od -An -tu1 | tr -d ' ')
	printf "\\$(printf '%03o' $((byte ^ 255)))" |
		dd of="$archive" bs=1 seek="$offset" conv=notrunc status=none
	cmp -s "$archive" "$CORPUS/teach.oci-archive.tar" && fatal "the archive copy was not changed"

	local blob_hex=${name##*/}
	assert_exit 1 strata_store pull-from-tarball "$archive"
	assert_error_line "${blob_hex:0:12}"

	# Nothing published: no image record, no tag, no layer for that blob.
	assert_empty_dir "$STORE/images" "store images/"
	assert_empty_dir "$STORE/tmp" "store tmp/"
	extract_oci_manifest "$archive"
	local index diff_id
	index=$(jq --arg d "sha256:$blob_hex" '[.layers[].digest] | index($d)' "$TEST_TMP/manifest.json")
	diff_id=${TEACH_DIFF_IDS[$index]}
	assert_missing "$STORE/layers/${diff_id#sha256:}" "layer directory of the tampered blob"

	if [ -d "$STORE" ]; then
		strata_store images -q
		assert_eq 0 "$RC" "images -q exit status after the failed import"
		assert_eq "" "$(out)" "images -q after the failed import"
	fi
}

# --- non-root ------------------------------------------------------------------------------

test_import_as_non_root_user() {
	need_shared
	need_strata
	need_root
	need_cmd jq setpriv getfattr

	make_user_store "$STORE"
	run_strata_as_user --store "$STORE" pull-from-tarball "$CORPUS/teach.docker-archive.tar.gz"
	if [ "$RC" != 0 ]; then
		diag_file stderr "$TEST_TMP/err"
		fatal "import as uid $TEST_USER_ID exited with $RC"
	fi
	check_import_text_output unpacked

	run_strata_as_user --store "$STORE" layers --json "$TEACH_TAG"
	assert_eq 0 "$RC" "layers --json as uid $TEST_USER_ID" || diag_file stderr "$TEST_TMP/err"
	assert_eq "$TEACH_ID" "$(json .id)" "image ID"
	assert_eq 7 "$(json '.layers | length')" "number of layers"

	check_teach_store_facts "$TEST_USER_ID"
}

# --- agreement with podman ------------------------------------------------------------------

test_podman_agrees_on_diff_ids() {
	need_shared
	need_strata
	need_root
	if ! command -v podman >/dev/null 2>&1; then
		skip "podman is not installed"
	fi
	need_cmd jq

	# A private podman store under $TEST_TMP; vfs needs no mounts, so
	# removing the directory cleans it up completely.
	local podman=(podman --root "$TEST_TMP/podman-root" --runroot "$TEST_TMP/podman-run"
		--storage-driver vfs --events-backend none --cgroup-manager cgroupfs)
	if ! "${podman[@]}" load -i "$CORPUS/teach.oci-archive.tar" >"$TEST_TMP/podman.log" 2>&1; then
		diag_file "podman load" "$TEST_TMP/podman.log"
		fatal "podman load failed"
	fi
	local podman_layers
	podman_layers=$("${podman[@]}" image inspect "$TEACH_TAG" | jq -c '.[0].RootFS.Layers')
	rm -rf "$TEST_TMP/podman-root" "$TEST_TMP/podman-run"

	import -q "$CORPUS/teach.oci-archive.tar"
	strata_store layers --json "$TEACH_TAG"
	assert_eq 0 "$RC" "layers --json exit status" || return
	assert_eq "$podman_layers" "$(json -c '[.layers[].diff_id]')" "diff_ids (podman vs strata)"
}

run_tests
