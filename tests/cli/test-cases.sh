#!/usr/bin/env bash
#
# pull-from-tarball with small hostile or tricky archives: path traversal,
# symlink and hard-link escapes, bad whiteouts, odd tar features and broken
# manifests. One test per archive of the cases corpus, plus variants built
# here for inputs the corpus archives combine in one layer.
#
# Every case runs with a canary tree at /tmp/strata-escape-canary, the
# directory all escape attempts in the corpus aim at, and a sibling file next
# to the store. After each case the canary must be unchanged, the sibling
# present, nothing new written next to the store, and strata finished within
# 60 seconds. Rejected archives must exit 1 with a `strata: error:` line
# naming the offending entry and leave no image, layer or staging file.
#
# Checks marked "store layout" look inside STORE/layers/<hex>/root and depend
# on the documented store layout rather than on command output.
#
# NOTE: the canary path is fixed, so two runs of this script at the same time
# on one machine interfere with each other.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CASES=$SHARED/cases
THIS_SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
CANARY=/tmp/strata-escape-canary

# Time limit for one import, in seconds.
CASE_TIMEOUT=60

# --- canary and invariants -------------------------------------------------------

plant_canary() {
	rm -rf "$CANARY"
	mkdir "$CANARY"
	chmod 0755 "$CANARY"
	printf 'ORIGINAL\n' >"$CANARY/victim"
	chmod 0644 "$CANARY/victim"
	mkdir "$CANARY/victimdir"
	chmod 0755 "$CANARY/victimdir"
	printf 'keep\n' >"$CANARY/victimdir/keep"
	mkfifo "$CANARY/fifo"
	cp "$CASES/canary/host-layer.tar" "$CANARY/host-layer.tar"
}

# Print names, types, sizes, modes, owners, mtimes, link counts and symlink
# targets of the canary tree, then the sha256 of each regular file. The FIFO
# is never opened.
canary_listing() {
	(
		cd "$CANARY" || exit 1
		find . -printf '%p|%y|%s|%m|%U|%G|%T@|%n|%l\n' | LC_ALL=C sort
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
	)
}

# Top-level entries of $TEST_TMP, without the store and the command output.
scratch_listing() {
	find "$TEST_TMP" -mindepth 1 -maxdepth 1 \
		! -name store ! -name out ! -name err ! -name '.skip-reason' -printf '%f\n' | LC_ALL=C sort
}

# Plant the canary and the sibling file and record their state.
case_setup() {
	need_shared
	need_strata
	need_cmd jq
	plant_canary
	printf 'sibling\n' >"$TEST_TMP/sibling"
	canary_listing >"$TEST_TMP/canary.before"
	: >"$TEST_TMP/out"
	: >"$TEST_TMP/err"
	scratch_listing >"$TEST_TMP/scratch.before"
}

# Check the invariants that hold after every case, whether the import
# succeeded or not.
check_invariants() {
	canary_listing >"$TEST_TMP/canary.after"
	if ! cmp -s "$TEST_TMP/canary.before" "$TEST_TMP/canary.after"; then
		fail "canary tree $CANARY changed" "$(diff "$TEST_TMP/canary.before" "$TEST_TMP/canary.after")"
	fi
	rm -f "$TEST_TMP/canary.after"

	assert_eq sibling "$(cat "$TEST_TMP/sibling" 2>&1)" "sibling file next to the store"

	local new_entries
	new_entries=$(scratch_listing | LC_ALL=C comm -13 "$TEST_TMP/scratch.before" -)
	assert_eq "" "$new_entries" "new entries next to the store"

	if [ "$RC" = 124 ]; then
		fail "strata did not finish within $CASE_TIMEOUT s"
	fi
}

# import_case ARCHIVE [ARGS...]: import with --json under the case time limit.
import_case() {
	local archive=$1
	shift
	local STRATA_TIMEOUT=$CASE_TIMEOUT
	strata_store pull-from-tarball --json "$@" "$archive"
	check_invariants
}

# import_case_as_user ARCHIVE: the same as uid 65534 into a store it owns.
import_case_as_user() {
	local archive=$1
	local STRATA_TIMEOUT=$CASE_TIMEOUT
	make_user_store "$STORE"
	run_strata_as_user --store "$STORE" pull-from-tarball --json "$archive"
	check_invariants
}

# assert_rejected NAME...: the import failed cleanly, and its error line
# contains every NAME.
assert_rejected() {
	assert_eq 1 "$RC" "exit status" || diag_file stderr "$TEST_TMP/err"
	local name
	for name in "$@"; do
		assert_error_line "$name"
	done
	assert_eq "" "$(out)" "stdout of a failed import"

	# Store layout: no image record, no layer directory, nothing staged.
	assert_empty_dir "$STORE/images" "store images/"
	assert_eq 0 "$(layer_dir_count)" "number of layer directories"
	assert_empty_dir "$STORE/tmp" "store tmp/"
	if [ -d "$STORE" ]; then
		assert_eq "" "$(find "$STORE" -path '*/root/*' | head -n 5)" "unpacked files in the store"
		if [ -f "$STORE/tags.json" ]; then
			assert_not_contains "$(cat "$STORE/tags.json")" "strata-case/" "tags.json"
		fi
	fi
}

# --- expected values from the archive itself ------------------------------------

# Print the diff_ids of the archive's first image from its config, one a line.
archive_diff_ids() {
	local archive=$1 dir
	dir=$(mktemp -d "$TEST_TMP/archive.XXXXXX")
	tar -xf "$archive" -C "$dir" 2>/dev/null || fatal "cannot extract $archive"

	local config
	if [ -f "$dir/manifest.json" ] && jq -e 'type == "array" and length > 0' "$dir/manifest.json" >/dev/null; then
		config=$dir/$(jq -r '.[0].Config' "$dir/manifest.json")
	else
		local manifest
		manifest=$(jq -r '.manifests[0].digest' "$dir/index.json")
		config=$dir/blobs/sha256/$(jq -r '.config.digest' "$dir/blobs/sha256/${manifest#sha256:}" | cut -d: -f2)
	fi
	jq -r '.rootfs.diff_ids[]' "$config"
	rm -rf "$dir"
}

# assert_imported ARCHIVE: exit 0, and the --json output lists the archive's
# diff_ids in order. Sets DIFF_IDS (array) and IMAGE_ID.
assert_imported() {
	local archive=$1
	if [ "$RC" != 0 ]; then
		diag_file stderr "$TEST_TMP/err"
		fatal "import of $(basename "$archive") exited with $RC"
	fi

	mapfile -t DIFF_IDS < <(archive_diff_ids "$archive")
	IMAGE_ID=$(jq -r '.images[0].id' "$TEST_TMP/out" 2>/dev/null) ||
		fail "pull-from-tarball --json output is not JSON" "$(out)"
	local listed
	listed=$(jq -r '.images[0].layers[].diff_id' "$TEST_TMP/out" 2>/dev/null)
	assert_eq "$(printf '%s\n' "${DIFF_IDS[@]}")" "$listed" "diff_ids in the import output"
	assert_empty_dir "$STORE/tmp" "store tmp/"
}

# Print the mode (octal) a directory with MODE has in a store written by the
# current user. Store layout: a non-root store adds u+rwx to directories so
# that it can read and remove the tree later.
dir_mode() {
	if is_root; then
		echo "$1"
	else
		printf '%o\n' $((8#$1 | 8#700))
	fi
}

# Layer root of layer N (1-based) of the imported case, by diff_id.
root_of() {
	layer_root "${DIFF_IDS[$(($1 - 1))]}"
}

# --- archive builder for variants --------------------------------------------------

# craft_layer OUT SPEC...: write a layer tar with Python's tarfile, which keeps
# names and link targets exactly as given. SPEC is TYPE:NAME[:VALUE] with TYPE
# f (regular file, VALUE = content), d (directory), h (hard link, VALUE =
# target) or s (symlink, VALUE = target).
craft_layer() {
	need_cmd python3
	python3 - "$@" <<'EOF' || fatal "cannot build layer $1"
import io, sys, tarfile

out, specs = sys.argv[1], sys.argv[2:]
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
    for spec in specs:
        kind, name, value = (spec.split(":", 2) + [""])[:3]
        info = tarfile.TarInfo(name)
        info.mtime = 1700000000
        data = None
        if kind == "f":
            data = value.encode()
            info.size = len(data)
            info.mode = 0o644
        elif kind == "d":
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
        elif kind == "h":
            info.type = tarfile.LNKTYPE
            info.linkname = value
            info.mode = 0o644
        elif kind == "s":
            info.type = tarfile.SYMTYPE
            info.linkname = value
            info.mode = 0o777
        else:
            sys.exit("unknown entry type " + kind)
        tar.addfile(info, io.BytesIO(data) if data is not None else None)
EOF
}

# Print N copies of "../".
dotdots() {
	local i
	for ((i = 0; i < $1; i++)); do
		printf '../'
	done
}

# --- cases that must be rejected ------------------------------------------------------

test_case_01_path_dotdot_entry() {
	case_setup
	import_case "$CASES/01-path-dotdot-entry.tar"
	assert_rejected dotdot-pwned
	assert_missing "$CANARY/dotdot-pwned" "escaped file"
	if [ -d "$STORE" ]; then
		assert_eq "" "$(find "$STORE" -name hostname -o -name dotdot-pwned)" "files of the rejected layer in the store"
	fi
}

test_case_01_slash_dotdot_spelling() {
	case_setup
	craft_layer "$TEST_TMP/layer.tar" "d:etc" "f:etc/hostname:strata" \
		"f:/$(dotdots 23)tmp/strata-escape-canary/slash-dotdot-pwned:pwned" "f:etc/after:after"
	make_docker_archive "$TEST_TMP/variant.tar" strata-case/slash-dotdot:latest "$TEST_TMP/layer.tar"
	canary_listing >"$TEST_TMP/canary.before"
	scratch_listing >"$TEST_TMP/scratch.before"

	import_case "$TEST_TMP/variant.tar"
	assert_rejected slash-dotdot-pwned
}

test_case_02_symlink_dir_then_write() {
	case_setup
	import_case "$CASES/02-symlink-dir-then-write.tar"
	assert_rejected pwned-rel
	assert_missing "$CANARY/newdir" "directory created through the symlink"
	assert_missing "$CANARY/pwned-abs" "file written through the absolute symlink"
}

test_case_02_absolute_symlink_alone() {
	case_setup
	craft_layer "$TEST_TMP/layer.tar" "s:loophole:/tmp/strata-escape-canary" "f:loophole/pwned-abs:pwned"
	make_docker_archive "$TEST_TMP/variant.tar" strata-case/loophole:latest "$TEST_TMP/layer.tar"
	canary_listing >"$TEST_TMP/canary.before"
	scratch_listing >"$TEST_TMP/scratch.before"

	import_case "$TEST_TMP/variant.tar"
	assert_rejected pwned-abs
}

test_case_05_hardlink_dotdot_target() {
	case_setup
	import_case "$CASES/05-hardlink-dotdot-target.tar"
	assert_rejected dotdot-link
	assert_stat %h 1 "$CANARY/victim" "link count of the canary victim"
}

test_case_08_whiteout_dot_dotdot_names() {
	case_setup
	import_case "$CASES/08-whiteout-dot-dotdot-names.tar"
	assert_rejected ".wh."
}

# Each invalid whiteout name of 08-whiteout-dot-dotdot-names.tar on its own,
# above a valid layer.
check_whiteout_name_alone() {
	local entry=$1 shown=$2
	case_setup
	craft_layer "$TEST_TMP/l1.tar" "d:etc" "f:etc/passwd:root:x:0:0::/root:/bin/sh"
	craft_layer "$TEST_TMP/l2.tar" "f:$entry:"
	make_docker_archive "$TEST_TMP/variant.tar" strata-case/whiteout-name:latest "$TEST_TMP/l1.tar" "$TEST_TMP/l2.tar"
	canary_listing >"$TEST_TMP/canary.before"
	scratch_listing >"$TEST_TMP/scratch.before"

	import_case "$TEST_TMP/variant.tar"
	assert_rejected "$shown"
}

test_case_08_whiteout_root_parent_alone() {
	check_whiteout_name_alone ".wh..." ".wh..."
}

test_case_08_whiteout_parent_alone() {
	check_whiteout_name_alone "etc/.wh.." ".wh.."
}

test_case_08_bare_whiteout_prefix_alone() {
	check_whiteout_name_alone ".wh." ".wh."
}

test_case_17_hardlink_self_and_forward() {
	case_setup
	import_case "$CASES/17-hardlink-self-and-forward.tar"
	assert_rejected victim
}

test_case_17_forward_hardlink_alone() {
	case_setup
	craft_layer "$TEST_TMP/layer.tar" "h:fwd:later" "f:later:later"
	make_docker_archive "$TEST_TMP/variant.tar" strata-case/forward-link:latest "$TEST_TMP/layer.tar"
	canary_listing >"$TEST_TMP/canary.before"
	scratch_listing >"$TEST_TMP/scratch.before"

	import_case "$TEST_TMP/variant.tar"
	assert_rejected fwd
}

test_case_25_diffid_mismatch() {
	case_setup
	import_case "$CASES/25-diffid-mismatch.tar"
	# The config lists sha256:7d2bee3cccb6… for layer 2; its tar hashes to
	# sha256:618afd5040aa….
	assert_rejected diff_id 7d2bee3cccb6 618afd5040aa
}

test_case_28_null_manifest() {
	case_setup
	import_case "$CASES/28-null-manifest.tar"
	assert_rejected manifest.json
}

test_case_28_empty_manifest_list() {
	case_setup
	mkdir "$TEST_TMP/build"
	printf '[]' >"$TEST_TMP/build/manifest.json"
	tar -C "$TEST_TMP/build" -cf "$TEST_TMP/variant.tar" manifest.json
	rm -rf "$TEST_TMP/build"
	scratch_listing >"$TEST_TMP/scratch.before"

	import_case "$TEST_TMP/variant.tar"
	# "[]" lists no image. The exit status is not fixed, but strata must not
	# crash or record anything.
	case $RC in
	0 | 1) ;;
	*) fail "exit status $RC for a manifest.json with no images" "$(err)" ;;
	esac
	assert_empty_dir "$STORE/images" "store images/"
	assert_eq 0 "$(layer_dir_count)" "number of layer directories"
	assert_empty_dir "$STORE/tmp" "store tmp/"
}

test_case_37_missing_layer_file() {
	case_setup
	import_case "$CASES/37-missing-layer-file.tar"
	assert_rejected "Layers[1]"
}

test_case_38_oci_blob_digest_mismatch() {
	case_setup
	import_case "$CASES/38-oci-blob-digest-mismatch.tar"
	assert_rejected 85acae2c
	if [ -d "$STORE" ]; then
		assert_eq "" "$(find "$STORE" -name evil)" "files named evil in the store"
	fi
}

test_case_39_char00_device_not_whiteout() {
	case_setup
	import_case "$CASES/39-char00-device-not-whiteout.tar"
	assert_rejected etc/keep
}

test_case_41_truncated_layer_entry() {
	case_setup
	import_case "$CASES/41-truncated-layer-entry.tar"
	assert_rejected big
	if [ -d "$STORE" ]; then
		assert_eq "" "$(find "$STORE" -name ok -o -name big)" "files of the truncated layer in the store"
	fi
}

# --- cases that must import -----------------------------------------------------------

test_case_11_whiteout_dir_recreate_nested() {
	case_setup
	local archive=$CASES/11-whiteout-dir-recreate-nested.tar
	import_case "$archive"
	assert_imported "$archive"

	# Store layout: L1 has the file, L2 whiteouts dir1 with a char 0/0
	# device, L3 re-creates dir1/dir2 empty.
	assert_stat %s 4096 "$(root_of 1)/dir1/dir2/foo"
	assert_stat '%F %t:%T' 'character special file 0:0' "$(root_of 2)/dir1" "L2 dir1 whiteout"
	assert_missing "$(root_of 2)/.wh.dir1" "L2 .wh.dir1 file"
	assert_dir "$(root_of 3)/dir1/dir2" "L3 dir1/dir2"
	assert_empty_dir "$(root_of 3)/dir1/dir2" "L3 dir1/dir2"
}

test_case_13_whiteout_dangling_accounting() {
	case_setup
	local archive=$CASES/13-whiteout-dangling-accounting.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1 r2
	r1=$(root_of 1)
	r2=$(root_of 2)
	# Store layout: the files, and no whiteout left as a .wh. file.
	assert_file "$r1/keep" "L1 keep"
	assert_stat %s 4096 "$r1/dup.bin"
	assert_stat %s 4096 "$r2/dup.bin"
	assert_eq "" "$(find "$r2" -name '.wh.*')" "L2 paths named .wh.*"
	# L2 may keep nodir/ as the parent of the whiteout x, because a layer
	# directory cannot depend on the layers below it. It must contain nothing
	# but whiteouts, so that nothing under /nodir is visible.
	# NOTE: the merged view must not show /nodir at all; no command shows
	# the merged view yet, so that part is unchecked.
	if [ -e "$r2/nodir" ]; then
		assert_eq "" "$(find "$r2/nodir" -mindepth 1 ! -type c)" "L2 nodir entries other than whiteouts"
		assert_eq "" "$(find "$r2/nodir" -mindepth 1 -type c ! -name x)" "L2 nodir whiteouts other than x"
	fi
}

test_case_15_hardlink_to_lower_layer() {
	case_setup
	local archive=$CASES/15-hardlink-to-lower-layer.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1 r2
	r1=$(root_of 1)
	# Store layout: a layer that hard-links to a file only a lower layer has
	# is stored under its chain ID, with the target's content copied in.
	r2=$(layer_root "$(chain_id "${DIFF_IDS[0]}" "${DIFF_IDS[1]}")")
	assert_file "$r1/usr/bin/tool" "L1 usr/bin/tool"
	assert_stat %s 8192 "$r1/usr/bin/tool"
	assert_stat %h 1 "$r1/usr/bin/tool" "link count of L1 usr/bin/tool"
	assert_file "$r2/usr/bin/tool-alias" "L2 usr/bin/tool-alias (chain ID directory)" || return
	cmp -s "$r1/usr/bin/tool" "$r2/usr/bin/tool-alias" ||
		fail "L2 usr/bin/tool-alias content differs from L1 usr/bin/tool"
	assert_ne "$(stat -c %d:%i "$r1/usr/bin/tool")" "$(stat -c %d:%i "$r2/usr/bin/tool-alias")" \
		"inode of L2 tool-alias (must not be L1's)"
}

test_case_16_hardlink_counted_once() {
	case_setup
	local archive=$CASES/16-hardlink-counted-once.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1 inode name
	r1=$(root_of 1)
	# Store layout: four names for one inode.
	assert_file "$r1/bin/app" "bin/app" || return
	assert_stat %s 65536 "$r1/bin/app"
	assert_stat %h 4 "$r1/bin/app" "link count of bin/app"
	inode=$(stat -c %i "$r1/bin/app")
	for name in a/b/c/app-link bin/app-abs bin/app-dot; do
		assert_eq "$inode" "$(stat -c %i "$r1/$name" 2>&1)" "inode of $name"
	done
	for name in a a/b a/b/c; do
		assert_stat '%F %a' 'directory 755' "$r1/$name" "implicit directory $name"
		if is_root; then
			assert_stat %u:%g 0:0 "$r1/$name" "owner of implicit directory $name"
		fi
	done
}

test_case_19_pax_xattrs_capability() {
	case_setup
	need_getfattr
	local archive=$CASES/19-pax-xattrs-capability.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1 r2
	r1=$(root_of 1)
	r2=$(root_of 2)
	# Store layout: user xattrs kept; overlay xattrs from the image never
	# applied, so opq1/hidden and opq2/hidden stay visible.
	assert_file "$r1/opq1/hidden" "L1 opq1/hidden"
	assert_file "$r1/opq2/hidden" "L1 opq2/hidden"
	assert_eq hello "$(xattr_text user.comment "$r2/etc/app.conf")" "user.comment of etc/app.conf"
	assert_eq "" "$(xattr_text trusted.overlay.opaque "$r2/opq1")" "trusted.overlay.opaque of L2 opq1 (from the image)"
	assert_eq "" "$(xattr_text user.overlay.opaque "$r2/opq2")" "user.overlay.opaque of L2 opq2 (from the image)"

	need_root
	# cap_net_raw+ep, set after the owner so that chown does not clear it.
	assert_eq 0x0100000200200000000000000000000000000000 \
		"$(xattr_hex security.capability "$r2/usr/bin/ping")" "security.capability of usr/bin/ping"
	assert_stat %a 755 "$r2/usr/bin/ping"
}

test_case_19_xattrs_as_non_root_user() {
	case_setup
	need_root
	need_getfattr
	local archive=$CASES/19-pax-xattrs-capability.tar
	import_case_as_user "$archive"
	assert_imported "$archive"

	local r2
	r2=$(root_of 2)
	assert_eq hello "$(xattr_text user.comment "$r2/etc/app.conf")" "user.comment of etc/app.conf"
	# In a non-root store user.overlay.opaque is the live opaque marker, so
	# copying it from the image would hide L1's opq2/hidden.
	assert_eq "" "$(xattr_text user.overlay.opaque "$r2/opq2")" "user.overlay.opaque of L2 opq2 (from the image)"
	# An unprivileged user cannot set security.capability, so strata must warn.
	# NOTE: assumes the warning names the file.
	grep '^strata: warning:' "$TEST_TMP/err" | grep -q ping ||
		fail "no warning about the capability of usr/bin/ping" "$(err)"
}

test_case_20_device_nodes_fifo() {
	case_setup
	need_root
	local archive=$CASES/20-device-nodes-fifo.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1
	r1=$(root_of 1)
	# Store layout: device nodes with their exact type, numbers and mode.
	assert_stat '%F %t:%T %a' 'character special file 1:3 666' "$r1/dev/null" "dev/null"
	assert_stat '%F %t:%T %a' 'character special file 5:0 666' "$r1/dev/tty" "dev/tty"
	assert_stat '%F %t:%T %a' 'block special file 8:0 660' "$r1/dev/sda" "dev/sda"
	assert_stat '%F %a' 'fifo 644' "$r1/run/fifo" "run/fifo"
	assert_file "$r1/etc/marker" "etc/marker"
	assert_eq "devices layer" "$(cat "$r1/etc/marker" 2>&1)" "etc/marker content"
}

test_case_20_devices_as_non_root_user() {
	case_setup
	need_root
	local archive=$CASES/20-device-nodes-fifo.tar
	import_case_as_user "$archive"
	assert_imported "$archive"

	local r1
	r1=$(root_of 1)
	# Devices cannot be created without CAP_MKNOD: not fatal, one warning.
	assert_stat %F fifo "$r1/run/fifo" "run/fifo"
	assert_file "$r1/etc/marker" "etc/marker"
	grep -q '^strata: warning:' "$TEST_TMP/err" ||
		fail "no warning about the device nodes" "$(err)"
}

test_case_21_sparse_pax10_file() {
	case_setup
	local archive=$CASES/21-sparse-pax10-file.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1 file
	r1=$(root_of 1)
	file=$r1/var/log/lastlog
	# Store layout: the sparse file under its real name, with holes.
	assert_file "$file" "var/log/lastlog" || return
	assert_stat %s 67108864 "$file" "apparent size of var/log/lastlog"
	assert_eq "" "$(head -c 4096 "$file" | tr -d L)" "bytes [0, 4096) other than 'L'"
	assert_eq "" "$(tail -c 4096 "$file" | tr -d Z)" "last 4096 bytes other than 'Z'"
	cmp -s -n $((67108864 - 8192)) <(tail -c +4097 "$file") /dev/zero ||
		fail "bytes between the two data blocks are not all zero"
	local allocated
	allocated=$(($(stat -c '%b * %B' "$file")))
	[ "$allocated" -lt 1048576 ] ||
		fail "var/log/lastlog allocates $allocated bytes; expected holes (well under 1 MiB)"
	assert_eq "" "$(find "$r1" -name 'GNUSparseFile*')" "GNUSparseFile paths"
	assert_file "$r1/var/log/normal" "var/log/normal"
}

test_case_23_child_before_parent_dir_modes() {
	case_setup
	local archive=$CASES/23-child-before-parent-dir-modes.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1
	r1=$(root_of 1)
	# Store layout: names normalized; explicit directory entries applied
	# after their children.
	assert_file "$r1/abs/file" "abs/file"
	assert_file "$r1/dot/file" "dot/file"
	assert_file "$r1/x/y/z" "x/y/z"
	assert_stat %a 700 "$r1/a" "mode of a"
	if is_root; then
		assert_stat %u:%g 1000:1000 "$r1/a" "owner of a"
	fi
	assert_stat %Y 1699913600 "$r1/a" "mtime of a (from its header)"
	assert_stat %a "$(dir_mode 750)" "$r1/a/b" "mode of a/b"
	assert_stat %a 755 "$r1/a/b/c" "mode of implicit a/b/c"
	if is_root; then
		assert_stat %u:%g 0:0 "$r1/a/b/c" "owner of implicit a/b/c"
	fi
	assert_file "$r1/a/b/c/file" "a/b/c/file"
	assert_stat %a "$(dir_mode 555)" "$r1/ro" "mode of ro"
	assert_file "$r1/ro/file" "ro/file"
}

test_case_24_non_utf8_names() {
	case_setup
	local archive=$CASES/24-non-utf8-names.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1 r2
	r1=$(root_of 1)
	r2=$(root_of 2)
	# Store layout: names and link targets byte for byte.
	local latin1=$r1/data/file-$'\xe4' utf8=$r1/data/ok-$'\xc3\xa4'
	assert_file "$latin1" "data/file-\\xe4"
	assert_file "$utf8" "data/ok-\\xc3\\xa4"
	assert_eq latin1 "$(cat "$latin1" 2>&1)" "content of data/file-\\xe4"
	assert_eq utf8 "$(cat "$utf8" 2>&1)" "content of data/ok-\\xc3\\xa4"
	assert_file "$r1/data/"$'\xff\xfe' "data/\\xff\\xfe"
	local target
	target=$(readlink "$r1/data/lnk-"$'\xe9')
	[ "$target" = "file-"$'\xe4' ] ||
		fail "target of data/lnk-\\xe9 is not file-\\xe4" "$(printf '%s' "$target" | od -c | head -n 3)"
	assert_file "$r2/pax/"$'\xe9t\xe9' "pax/\\xe9t\\xe9"

	strata_store layers "$IMAGE_ID"
	assert_eq 0 "$RC" "exit status of layers for an image with non-UTF-8 names" || diag_file stderr "$TEST_TMP/err"
}

test_case_27_layer_listed_twice() {
	case_setup
	local archive=$CASES/27-layer-listed-twice.tar
	import_case "$archive"
	assert_imported "$archive"

	assert_eq 3 "${#DIFF_IDS[@]}" "number of diff_ids in the config"
	assert_eq "${DIFF_IDS[0]}" "${DIFF_IDS[2]}" "diff_ids of layers 1 and 3"

	strata_store layers --json "$IMAGE_ID"
	assert_eq 0 "$RC" "layers --json exit status" || return
	assert_eq "$(printf '%s\n' "${DIFF_IDS[@]}")" "$(jq -r '.layers[].diff_id' "$TEST_TMP/out")" \
		"diff_ids listed by layers"

	# Store layout: the repeated layer is stored once.
	assert_eq 2 "$(layer_dir_count)" "number of layer directories"
	assert_eq A "$(cat "$(root_of 1)/a" 2>&1)" "content of L1 a"
	assert_eq B "$(cat "$(root_of 2)/b" 2>&1)" "content of L2 b"
	assert_stat '%F %t:%T' 'character special file 0:0' "$(root_of 2)/a" "L2 whiteout of a"
}

test_case_30_empty_layers_and_history() {
	case_setup
	local archive=$CASES/30-empty-layers-and-history.tar
	import_case "$archive"
	assert_imported "$archive"

	assert_eq 3 "${#DIFF_IDS[@]}" "number of diff_ids in the config"
	strata_store layers --json "$IMAGE_ID"
	assert_eq 0 "$RC" "layers --json exit status" || return
	cp "$TEST_TMP/out" "$TEST_TMP/layers.json"
	local q=(jq -r)
	assert_eq 3 "$("${q[@]}" '.layers | length' "$TEST_TMP/layers.json")" "number of layers"
	assert_eq 5 "$("${q[@]}" '.history | length' "$TEST_TMP/layers.json")" "number of history entries"
	assert_eq 2 "$("${q[@]}" '[.history[] | select(.empty_layer)] | length' "$TEST_TMP/layers.json")" \
		"number of empty history entries"
	local i expected
	local created_by=("ADD rootfs.tar /" "RUN true" "RUN true # again")
	for i in 0 1 2; do
		expected=${created_by[$i]}
		assert_eq "$expected" "$("${q[@]}" ".layers[$i].history_index as \$h | .history[] | select(.index == \$h) | .created_by" "$TEST_TMP/layers.json")" \
			"history entry of layer $((i + 1))"
	done
	assert_eq 0 "$("${q[@]}" '.layers[1].entries' "$TEST_TMP/layers.json")" "entries of layer 2"
	assert_eq 0 "$("${q[@]}" '.layers[2].entries' "$TEST_TMP/layers.json")" "entries of layer 3"

	# Store layout: only L1 has files.
	assert_file "$(root_of 1)/etc/os-release" "L1 etc/os-release"
	assert_dir "$(root_of 2)" "L2 root"
	assert_empty_dir "$(root_of 2)" "L2 root"
	assert_dir "$(root_of 3)" "L3 root"
	assert_empty_dir "$(root_of 3)" "L3 root"
}

test_case_32_deep_nesting_many_entries() {
	case_setup
	local archive=$CASES/32-deep-nesting-many-entries.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1
	r1=$(root_of 1)
	# Store layout: every entry unpacked, symlinks stored as they are.
	assert_eq 5000 "$(find "$r1/many" -type f | wc -l)" "files under many/"
	assert_eq 1 "$(find "$r1/d" -name leaf | wc -l)" "deep leaf file"
	assert_eq / "$(readlink "$r1/hostroot")" "hostroot symlink target"
	assert_eq self "$(readlink "$r1/loop/self")" "loop/self symlink target"
	assert_eq .. "$(readlink "$r1/loop/up")" "loop/up symlink target"
	assert_eq target "$(readlink "$r1/chain/l39")" "chain/l39 symlink target"

	strata_store layers --json "$IMAGE_ID"
	assert_eq 0 "$RC" "layers --json exit status" || return
	assert_eq 5170 "$(jq -r '.layers[0].entries' "$TEST_TMP/out")" "entries of the layer"
}

test_case_34_aufs_plnk_hardlinks() {
	case_setup
	local archive=$CASES/34-aufs-plnk-hardlinks.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1
	r1=$(root_of 1)
	# Store layout: AUFS meta entries dropped, not turned into whiteouts.
	assert_missing "$r1/.wh..wh.plnk" ".wh..wh.plnk"
	assert_missing "$r1/.wh..wh.aufs" ".wh..wh.aufs"
	assert_missing "$r1/etc/.wh..wh.orph" "etc/.wh..wh.orph"
	assert_eq "" "$(find "$r1" -name '.wh.*')" "paths named .wh.*"
	assert_eq "" "$(find "$r1" -type c)" "character devices (whiteouts)"
	assert_file "$r1/usr/bin/x" "usr/bin/x" || return
	assert_eq "$(printf 'plink-data\n' | od -An -c)" "$(od -An -c "$r1/usr/bin/x")" "content of usr/bin/x"
}

test_case_35_type_change_over_existing() {
	case_setup
	need_getfattr
	local archive=$CASES/35-type-change-over-existing.tar
	import_case "$archive"
	assert_imported "$archive"

	local r1 r2
	r1=$(root_of 1)
	r2=$(root_of 2)
	# Store layout: L1 keeps its symlink as is; L2 replaces types.
	assert_eq /tmp/strata-escape-canary/victimdir "$(readlink "$r1/s")" "L1 s symlink target"
	assert_file "$r1/t/keep" "L1 t/keep"
	assert_file "$r2/x" "L2 x"
	assert_eq now-a-file "$(cat "$r2/x" 2>&1)" "content of L2 x"
	assert_file "$r2/y/inner" "L2 y/inner"
	assert_dir "$r2/s" "L2 s"
	assert_eq f "$(ls -A "$r2/s" 2>&1)" "entries of L2 s"
	assert_dir "$r2/t" "L2 t"
	assert_stat %a 700 "$r2/t" "mode of L2 t"
	# t changes mode only, so /t/keep from L1 must stay visible.
	assert_eq "" "$(xattr_text trusted.overlay.opaque "$r2/t")" "trusted.overlay.opaque of L2 t"
	assert_eq "" "$(xattr_text user.overlay.opaque "$r2/t")" "user.overlay.opaque of L2 t"
}

# The corpus must not gain archives this script does not know about.
test_every_case_has_a_test() {
	need_shared
	need_cmd jq
	local file id
	for file in $(jq -r '.[].file' "$CASES/cases.json"); do
		id=${file%%-*}
		grep -qE "^test_case_${id}_" "$THIS_SCRIPT" ||
			fail "no test for $file"
		[ -f "$CASES/$file" ] || fail "$file is listed in cases.json but missing"
	done
	local expect
	for file in "$CASES"/*.tar; do
		expect=$(jq -r --arg f "$(basename "$file")" '.[] | select(.file == $f) | .expect' "$CASES/cases.json")
		case $expect in
		import-fails | import-succeeds) ;;
		*) fail "$(basename "$file") has no expect value in cases.json" ;;
		esac
	done
}

# Remove the canary when the script ends; it is re-planted before each case.
trap 'rm -rf "$CANARY"' EXIT

run_tests
