#!/usr/bin/env bash
#
# strata diff: views against podman diff for the same operations, layer
# diffs of the teach image against its documented per-layer changes, and
# image-to-image diffs.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEMO=localhost/strata-demo:latest

# Operations on the teaching image, one scripted sequence each. They run with
# the root of the tree as working directory, in a strata view and in a podman
# container's mounted root file system.
declare -A SCRIPTS=(
	[create]='echo new > data/created.txt; mkdir -p data/newdir/sub; echo x > data/newdir/sub/f'
	[append]='echo more >> data/keep.txt'
	[truncate]=': > data/big.bin'
	[chmod]='chmod 0644 data/chmod-me.bin'
	[chown]='chown 1000:1000 data/dir1/a.txt'
	[touch]='touch -d @1800000000 data/keep.txt'
	[rename]='mv data/dir1/a.txt data/dir1/renamed.txt'
	[rm_r]='rm -r data/replace-dir'
	[rmdir]='rm data/replace-dir/keep.txt data/replace-dir/new.txt; rmdir data/replace-dir'
	[mkdir_over_deleted]='rm -r data/dir1; mkdir data/dir1; echo again > data/dir1/a.txt'
	[hardlink]='ln data/keep.txt data/keep-link'
	[symlink_retarget]='ln -sfn keep.txt data/latest'
)

need_podman() {
	need_root
	need_cmd podman
}

podman_private() {
	# The overlay driver, as in a default podman setup: its diff reads the container's upper directory.
	podman --root "$TEST_TMP/podman/root" --runroot "$TEST_TMP/podman/run" --storage-driver overlay "$@"
}

# podman_diff SCRIPT: podman diff of a container of the demo image after SCRIPT.
podman_diff() {
	local script=$1 ctr mnt
	ctr=$(podman_private create -q "$DEMO" /bin/true) || return 1
	mnt=$(podman_private mount "$ctr") || return 1
	(cd "$mnt" && sh -c "$script") || return 1
	podman_private diff "$ctr" | sort
	podman_private umount "$ctr" >/dev/null
	podman_private rm -f "$ctr" >/dev/null
}

load_demo_into_both() {
	strata_store demo -o "$TEST_TMP/demo.tar"
	assert_eq 0 "$RC" "exit status of demo -o" || return 1
	strata_store pull-from-tarball -q "$TEST_TMP/demo.tar"
	assert_eq 0 "$RC" "exit status of the import" || return 1
	podman_private load -q -i "$TEST_TMP/demo.tar" >/dev/null 2>"$TEST_TMP/podman-load.err" ||
		fatal "podman load failed: $(cat "$TEST_TMP/podman-load.err")"
}

test_view_diff_matches_podman() {
	need_podman
	load_demo_into_both || return
	local name expected actual
	for name in "${!SCRIPTS[@]}"; do
		expected=$(podman_diff "${SCRIPTS[$name]}") || { fail "podman run of '$name' failed"; continue; }
		strata_store run-view "$DEMO" --name "$name" -q -- sh -c "${SCRIPTS[$name]}"
		assert_eq 0 "$RC" "exit status of '$name' in a view" || continue
		strata_store diff "$name"
		assert_eq "$expected" "$(out | sort)" "strata and podman diff after '$name'"
	done
}

test_copy_view_diff_matches_overlay() {
	need_root
	strata_store demo
	local name
	for name in "${!SCRIPTS[@]}"; do
		strata_store run-view "$DEMO" --name "ov-$name" -q -- sh -c "${SCRIPTS[$name]}"
		strata_store run-view "$DEMO" --driver copy --name "cp-$name" -q -- sh -c "${SCRIPTS[$name]}"
		assert_eq 0 "$RC" "exit status of '$name' in a copy view" || continue
		strata_store diff "ov-$name"
		local overlay
		overlay=$(out)
		strata_store diff "cp-$name"
		assert_eq "$overlay" "$(out)" "overlay and copy diff after '$name'"
		strata_store rm-view "ov-$name" "cp-$name"
	done
}

test_view_diff_long_and_stat() {
	need_root
	strata_store demo
	strata_store run-view "$DEMO" --name v -q -- sh -c 'chmod 0644 data/chmod-me.bin; : > data/big.bin; rm data/keep.txt'
	strata_store diff v --long
	assert_contains "$(out)" "C /data/chmod-me.bin  metadata" "chmod is a metadata-only change"
	assert_contains "$(out)" "C /data/big.bin  content" "truncate is a content change"
	assert_contains "$(out)" "D /data/keep.txt  deleted" "deletion"
	strata_store diff v --stat --json --bytes
	# Metadata only: chmod-me.bin, and /data, whose mtime the deletion changed.
	assert_eq 2 "$(out | jq .metadata.paths)" "metadata-only paths"
	assert_eq 1 "$(out | jq .deleted.paths)" "deleted paths"
	assert_eq 1 "$(out | jq .content.paths)" "content paths"
	assert_eq 0 "$(out | jq .content.bytes)" "bytes of the truncated file"
}

test_view_diff_json_and_z() {
	need_root
	strata_store demo
	strata_store run-view "$DEMO" --name v -q -- sh -c "printf x > \"data/\$(printf 'bad\\377name')\"; printf y > 'data/new
line'"
	assert_eq 0 "$RC" "exit status of run-view"
	strata_store diff v --json
	assert_eq 3 "$(out | wc -l | tr -d ' ')" "one JSON object per line"
	assert_eq "$(printf '/data/bad\377name' | base64)" \
		"$(out | jq -r 'select(.path_base64) | .path_base64')" "non-UTF-8 path kept exactly in base64"
	assert_eq '/data/bad\xffname' "$(out | jq -r 'select(.path_base64) | .path')" "escaped path for people"
	assert_eq '/data/new
line' "$(out | jq -r 'select(.path | startswith("/data/new")) | .path')" "newline kept in JSON"
	strata_store diff v --name-only -z
	assert_eq 3 "$(out | tr -cd '\0' | wc -c | tr -d ' ')" "NUL-terminated records"
	strata_store diff v
	assert_contains "$(out)" 'A /data/new\x0aline' "newline escaped in human output"
}

# Per-layer path sets of the teach image, from its documented podman diffs.
# Layer 5 deletes and re-creates a directory (an opaque directory): like
# podman, strata reports it as deleted and lists its new contents below it.
test_layer_diffs_of_teach() {
	need_shared
	strata_store pull-from-tarball -q "$SHARED/corpus/teach.oci-archive.tar"
	local expected=(
		""
		$'C /data\nC /data/big.bin'
		$'C /data\nC /data/chmod-me.bin\nC /data/chown-me.bin'
		$'C /data\nD /data/delete-me.bin\nD /data/gone-dir'
		$'C /data\nD /data/replace-dir\nC /data/replace-dir/keep.txt\nA /data/replace-dir/new-1.txt\nA /data/replace-dir/new-2.bin'
		$'C /data\nC /data/dir1\nC /data/dir1/b.txt\nA /data/links\nA /data/links/b-hard\nA /data/links/dangling\nA /data/links/dir-link\nA /data/links/hard-1\nA /data/links/hard-2\nA /data/links/orig.bin\nA /data/links/sym-abs\nA /data/links/sym-rel'
		""
	)
	local n
	for n in 2 3 4 5 6 7; do
		strata_store diff localhost/teach:latest --layer "$n"
		assert_eq 0 "$RC" "exit status for layer $n"
		assert_eq "${expected[$((n - 1))]}" "$(out)" "diff of layer $n"
	done
	strata_store diff localhost/teach:latest --layer 1
	assert_eq 45 "$(out | grep -c '^A ')" "layer 1 adds its 45 entries"
	strata_store diff localhost/teach:latest --layer -1
	assert_eq "" "$(out)" "top layer (-1) is the empty layer 7"
	strata_store diff localhost/teach:latest --layer 8
	assert_eq 2 "$RC" "layer out of range"
	strata_store diff localhost/teach:latest --layer 3 --long
	assert_contains "$(out)" "C /data/chmod-me.bin  metadata, 3.15 MB -> 3.15 MB, in layer 3, over layer 1" \
		"chmod-only layer entry"
}

test_image_diff_against_itself_and_parent() {
	need_shared
	strata_store pull-from-tarball -q "$SHARED/corpus/teach-multi.docker-archive.tar.gz"
	strata_store diff localhost/teach:latest localhost/teach:latest
	assert_eq 0 "$RC" "exit status"
	assert_eq "" "$(out)" "an image against itself"
	strata_store diff localhost/teach:l1 localhost/teach:l4
	local combined
	combined=$(out)
	assert_contains "$combined" "D /data/delete-me.bin" "deletion across layers 2 to 4"
	assert_contains "$combined" "C /data/big.bin" "edit across layers 2 to 4"
	assert_not_contains "$combined" "/data/gone-dir/" "contents of a deleted directory are not listed"
}

test_image_diff_parent_equals_top_layer() {
	need_strata
	local a=$TEST_TMP/a b=$TEST_TMP/b
	mkdir -p "$a/d" "$a/e" "$b/d" "$b/e"
	echo a >"$a/d/a"
	echo b >"$a/d/b"
	echo c >"$a/d/c"
	echo x >"$a/e/x"
	tar -C "$a" --mtime=@1700000000 -cf "$TEST_TMP/a.tar" d e
	# The child layer: new content, a chmod-only copy, a whiteout, an opaque
	# directory with a new file, and a new file at the top.
	echo a2 >"$b/d/a"
	echo b >"$b/d/b"
	chmod 0600 "$b/d/b"
	: >"$b/d/.wh.c"
	: >"$b/e/.wh..wh..opq"
	echo y >"$b/e/y"
	echo f >"$b/f"
	tar -C "$b" --mtime=@1700000100 -cf "$TEST_TMP/b.tar" d e f
	make_docker_archive "$TEST_TMP/parent.tar" localhost/parent:latest "$TEST_TMP/a.tar"
	make_docker_archive "$TEST_TMP/child.tar" localhost/child:latest "$TEST_TMP/a.tar" "$TEST_TMP/b.tar"
	strata_store pull-from-tarball -q "$TEST_TMP/parent.tar"
	strata_store pull-from-tarball -q "$TEST_TMP/child.tar"
	assert_eq 0 "$RC" "exit status of the imports" || return

	strata_store diff localhost/parent localhost/child
	local images
	images=$(out)
	strata_store diff localhost/child --layer -1
	assert_eq "$images" "$(out)" "image against its parent equals its top layer's diff"
	assert_eq "$(printf 'C /d\nC /d/a\nC /d/b\nD /d/c\nD /e\nA /e/y\nA /f')" "$images" \
		"changes of the child layer"
}

test_view_diff_as_user() {
	need_root
	make_user_store "$STORE"
	run_strata_as_user --store "$STORE" demo
	run_strata_as_user --store "$STORE" run-view "$DEMO" --name v -q -- sh -c "${SCRIPTS[mkdir_over_deleted]}; ${SCRIPTS[chmod]}"
	assert_eq 0 "$RC" "exit status of run-view as user" || { diag_file stderr "$TEST_TMP/err"; return; }
	run_strata_as_user --store "$STORE" diff v
	assert_eq "$(printf 'C /data\nC /data/chmod-me.bin\nD /data/dir1\nC /data/dir1/a.txt')" "$(out)" "diff as user"
}

# The real Debian image, when the corpus build script has produced it.
DEBIAN_ARCHIVE=${STRATA_DEBIAN_ARCHIVE:-/var/tmp/strata-corpus/images/debian.oci-archive.tar}

test_debian_view_diff_matches_podman() {
	need_podman
	[ -f "$DEBIAN_ARCHIVE" ] || skip "no Debian image at $DEBIAN_ARCHIVE (build it with build-real.sh)"
	local script='rm -rf usr/share/doc; chmod -R go-w usr/bin; rm -r usr/lib/x86_64-linux-gnu/perl-base; rm etc/issue'
	strata_store pull-from-tarball -q "$DEBIAN_ARCHIVE"
	podman_private load -q -i "$DEBIAN_ARCHIVE" >/dev/null 2>&1 || fatal "podman load of the Debian image failed"
	local ctr mnt expected
	ctr=$(podman_private create -q localhost/debian:latest /bin/true)
	mnt=$(podman_private mount "$ctr")
	(cd "$mnt" && sh -c "$script")
	expected=$(podman_private diff "$ctr" | sort)
	podman_private umount "$ctr" >/dev/null
	strata_store run-view localhost/debian:latest --name d -q -- sh -c "$script"
	assert_eq 0 "$RC" "exit status of the view"
	strata_store diff d
	assert_eq "$expected" "$(out | sort)" "strata and podman diff of the Debian view"
	assert_ne "" "$expected" "the commands changed something"
}

test_diff_usage_errors() {
	need_root
	strata_store demo
	strata_store diff "$DEMO"
	assert_eq 2 "$RC" "an image without --layer or a second image"
	strata_store diff no-such-name
	assert_eq 1 "$RC" "a name that is neither a view nor an image"
	assert_error_line "no-such-name"
	strata_store diff "$DEMO" --long --stat
	assert_eq 2 "$RC" "two output modes"
	strata_store diff no-such-view-or-image --layer 1
	assert_eq 1 "$RC" "unknown image"
	assert_error_line "no-such-view-or-image"
}

run_tests
