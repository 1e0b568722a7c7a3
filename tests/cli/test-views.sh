#!/usr/bin/env bash
#
# Container views with real overlay mounts: run-view, views, rm-view, mount,
# umount and verify, as root and as an unprivileged user. Most tests use the
# built-in teaching image (strata demo), so they need no corpus; the --chroot
# tests run the teach image's own busybox.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEMO=localhost/strata-demo:latest
BIG_SIZE=4194304
CHMOD_SIZE=2097152

# import_demo [as-user]: import the teaching image into $STORE.
import_demo() {
	if [ "${1:-}" = as-user ]; then
		make_user_store "$STORE"
		run_strata_as_user --store "$STORE" demo
	else
		strata_store demo
	fi
	assert_eq 0 "$RC" "exit status of strata demo" || return 1
}

# run_view ARGS...: strata run-view as root or, with RUN_AS_USER=1, as the test user.
run_view() {
	if [ "${RUN_AS_USER:-0}" = 1 ]; then
		run_strata_as_user --store "$STORE" run-view "$@"
	else
		strata_store run-view "$@"
	fi
}

upper() {
	printf '%s/views/%s/upper' "$STORE" "$1"
}

# Fails when any mount of the store is still visible on the host.
assert_no_mount_leak() {
	if grep -q -F "$STORE" /proc/self/mountinfo; then
		fail "a mount of the store leaked to the host" "$(grep -F "$STORE" /proc/self/mountinfo)"
	fi
}

assert_layers_verified() {
	strata_store verify "$DEMO"
	assert_eq 0 "$RC" "exit status of strata verify" || diag_file stdout "$TEST_TMP/out"
	assert_contains "$(out)" "0 problems" "verify summary"
}

check_delete_leaves_whiteout() {
	run_view "$DEMO" --name del -q -- rm data/big.bin
	assert_eq 0 "$RC" "exit status of run-view" || { diag_file stderr "$TEST_TMP/err"; return; }
	assert_stat '%F %t %T' 'character special file 0 0' "$(upper del)/data/big.bin" "upper holds a whiteout"
	# The layer that shipped the file still has all of it.
	assert_eq 1 "$(find "$STORE/layers" -path '*/root/data/big.bin' -type f -size ${BIG_SIZE}c | wc -l | tr -d ' ' |
		sed 's/^[2-9]$/1/')" "big.bin still in a layer"
	assert_no_mount_leak
}

test_view_delete_leaves_whiteout() {
	need_root
	import_demo || return
	check_delete_leaves_whiteout
	assert_layers_verified
}

test_view_delete_leaves_whiteout_as_user() {
	need_root
	import_demo as-user || return
	RUN_AS_USER=1 check_delete_leaves_whiteout
	run_strata_as_user --store "$STORE" verify "$DEMO"
	assert_eq 0 "$RC" "exit status of strata verify as user"
}

check_copy_ups() {
	# One byte changed, and a chmod only: both copy the whole file up.
	run_view "$DEMO" --name edit -q -- sh -c 'printf X | dd of=data/big.bin bs=1 count=1 conv=notrunc 2>/dev/null'
	assert_eq 0 "$RC" "exit status of the edit" || { diag_file stderr "$TEST_TMP/err"; return; }
	run_view "$DEMO" --name mode -q -- chmod 0644 data/chmod-me.bin
	assert_eq 0 "$RC" "exit status of the chmod" || { diag_file stderr "$TEST_TMP/err"; return; }

	assert_stat '%s' "$BIG_SIZE" "$(upper edit)/data/big.bin" "size of the edited copy-up"
	assert_eq "X" "$(head -c 1 "$(upper edit)/data/big.bin")" "first byte of the edited copy-up"
	assert_stat '%s %a' "$CHMOD_SIZE 644" "$(upper mode)/data/chmod-me.bin" "size and mode of the chmod copy-up"
	local lower
	lower=$(find "$STORE/layers" -path '*/root/data/chmod-me.bin' -perm 0600 | head -n 1)
	assert_eq "$(sha256sum <"$lower")" "$(sha256sum <"$(upper mode)/data/chmod-me.bin")" \
		"chmod copy-up has the same content"
}

test_view_edits_copy_whole_files() {
	need_root
	import_demo || return
	check_copy_ups
	assert_layers_verified
	assert_no_mount_leak
}

test_view_edits_copy_whole_files_as_user() {
	need_root
	import_demo as-user || return
	RUN_AS_USER=1 check_copy_ups
}

test_views_are_isolated() {
	need_root
	import_demo || return
	run_view "$DEMO" --name one -q -- sh -c 'echo changed > data/keep.txt'
	assert_eq 0 "$RC" "exit status in view one"
	run_view "$DEMO" --name two -q -- cat data/keep.txt
	assert_eq 0 "$RC" "exit status in view two"
	assert_not_contains "$(out)" "changed" "view two sees view one's change"
	run_view "$DEMO" --name one -q -- cat data/keep.txt
	assert_eq "changed" "$(out)" "view one keeps its change"
}

test_run_view_passes_exit_status() {
	need_root
	import_demo || return
	run_view "$DEMO" --name st -q -- sh -c 'exit 7'
	assert_eq 7 "$RC" "exit status passed through"
	run_view "$DEMO" --name st -q -- no-such-command-here
	assert_eq 127 "$RC" "exit status of a missing command"
	run_view "$DEMO" --name st -q -- sh -c 'kill -TERM $$'
	assert_eq 143 "$RC" "exit status of a command killed by SIGTERM"
}

test_run_view_reuses_named_view() {
	need_root
	import_demo || return
	run_view "$DEMO" --name keep -- sh -c 'echo 1 > data/counter'
	assert_contains "$(err)" "created view \`keep\`" "first run creates the view"
	run_view "$DEMO" --name keep -- sh -c 'cat data/counter'
	assert_eq 1 "$(out)" "second run sees the first run's file"
	assert_contains "$(err)" "reusing view \`keep\`" "second run reuses the view"
	strata_store views --json
	assert_eq 1 "$(out | jq length)" "one view listed"
	assert_eq keep "$(out | jq -r '.[0].name')" "view name"
	assert_eq 2 "$(out | jq -r '.[0].size')" "view size counts the upper dir's file bytes"
}

test_run_view_rm_leaves_nothing() {
	need_root
	import_demo || return
	run_view "$DEMO" --rm --name gone -q -- sh -c 'echo x > data/new.txt'
	assert_eq 0 "$RC" "exit status"
	assert_missing "$STORE/views/gone" "view directory after --rm"
	strata_store views -q
	assert_eq "" "$(out)" "views after --rm"
	assert_empty_dir "$STORE/tmp" "staging after --rm"
	assert_no_mount_leak
}

test_rm_view_removes_and_reports_missing() {
	need_root
	import_demo || return
	run_view "$DEMO" --name a -q -- true
	run_view "$DEMO" --name b -q -- true
	strata_store rm-view a missing b
	assert_eq 1 "$RC" "exit status when one name is missing"
	assert_error_line "missing"
	assert_eq "$(printf 'a\nb')" "$(out)" "removed views are listed"
	assert_missing "$STORE/views/a" "view a"
	assert_missing "$STORE/views/b" "view b"
}

test_rm_view_rejects_running_view() {
	need_root
	import_demo || return
	"$STRATA" --store "$STORE" run-view "$DEMO" --name busy -q -- sleep 30 >/dev/null 2>&1 &
	local pid=$!
	local tries=0
	while ! grep -q -F "$STORE" /proc/$pid/mountinfo 2>/dev/null && [ $tries -lt 50 ]; do
		sleep 0.1
		tries=$((tries + 1))
	done
	strata_store rm-view busy
	assert_eq 1 "$RC" "exit status of rm-view on a running view"
	assert_error_line "in use"
	assert_dir "$STORE/views/busy/upper" "running view kept"
	pkill -TERM -P "$pid" sleep 2>/dev/null
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

test_run_view_rejects_other_image_for_name() {
	need_root
	need_shared
	import_demo || return
	strata_store pull-from-tarball -q "$SHARED/corpus/teach.oci-archive.tar"
	run_view "$DEMO" --name taken -q -- true
	run_view localhost/teach:latest --name taken -q -- true
	assert_eq 1 "$RC" "exit status"
	assert_error_line "taken"
}

test_run_view_chroot_runs_image_busybox() {
	need_root
	need_shared
	strata_store pull-from-tarball -q "$SHARED/corpus/teach.oci-archive.tar"
	run_view localhost/teach:latest --chroot --name c -q -- sh -c 'echo "$STRATA_TEACH $(pwd)"; ls /bin/busybox'
	assert_eq 0 "$RC" "exit status" || { diag_file stderr "$TEST_TMP/err"; return; }
	assert_eq "$(printf '1 /data\n/bin/busybox')" "$(out)" "image Env and WorkingDir apply"
	# No COMMAND: the image's Cmd (/bin/sh) reads its script from stdin.
	RC=0
	echo 'echo from-cmd; exit 4' | timeout 30 "$STRATA" --store "$STORE" run-view localhost/teach:latest \
		--chroot --name c -q >"$TEST_TMP/out" 2>"$TEST_TMP/err" || RC=$?
	assert_eq 4 "$RC" "exit status of the image's Cmd"
	assert_eq from-cmd "$(out)" "output of the image's Cmd"
}

test_run_view_chroot_as_user() {
	need_root
	need_shared
	make_user_store "$STORE"
	run_strata_as_user --store "$STORE" pull-from-tarball -q "$SHARED/corpus/teach.oci-archive.tar"
	run_strata_as_user --store "$STORE" run-view localhost/teach:latest --chroot --name c -q -- \
		sh -c 'id -u; stat -c %u /bin/busybox; rm /data/big.bin'
	assert_eq 0 "$RC" "exit status" || { diag_file stderr "$TEST_TMP/err"; return; }
	assert_eq "$(printf '0\n0')" "$(out)" "user and image files appear as root"
	assert_stat '%F %u' "character special file $TEST_USER_ID" "$(upper c)/data/big.bin" \
		"whiteout owned by the user on the host"
}

# Build an image of N layers, each adding the file fK, with tar and sha256sum.
make_many_layer_archive() {
	local out=$1 n=$2 k
	local layers=()
	mkdir -p "$TEST_TMP/many"
	for k in $(seq 1 "$n"); do
		mkdir -p "$TEST_TMP/many/src$k"
		echo "layer $k" >"$TEST_TMP/many/src$k/f$k"
		tar -C "$TEST_TMP/many/src$k" -cf "$TEST_TMP/many/l$k.tar" "f$k"
		layers+=("$TEST_TMP/many/l$k.tar")
	done
	make_docker_archive "$out" localhost/many:latest "${layers[@]}"
}

test_view_of_128_layers_mounts() {
	need_root
	make_many_layer_archive "$TEST_TMP/many.tar" 128
	strata_store pull-from-tarball -q "$TEST_TMP/many.tar"
	assert_eq 0 "$RC" "exit status of the import" || return
	run_view localhost/many --name m -q -- sh -c 'ls | wc -l; cat f1 f64 f128'
	assert_eq 0 "$RC" "exit status" || { diag_file stderr "$TEST_TMP/err"; return; }
	assert_eq "$(printf '128\nlayer 1\nlayer 64\nlayer 128')" "$(out)" "all 128 layers visible"
	assert_no_mount_leak
}

test_view_of_128_layers_with_mount2() {
	need_root
	make_many_layer_archive "$TEST_TMP/many.tar" 128
	strata_store pull-from-tarball -q "$TEST_TMP/many.tar"
	STRATA_OVERLAY_MOUNT=legacy run_view localhost/many --name m -q -- sh -c 'ls | wc -l; cat f128'
	assert_eq 0 "$RC" "exit status" || { diag_file stderr "$TEST_TMP/err"; return; }
	assert_eq "$(printf '128\nlayer 128')" "$(out)" "all 128 layers visible through short symlinks"
	assert_eq 128 "$(find "$STORE/views/m/l" -type l | wc -l | tr -d ' ')" "one short symlink per layer"
}

test_view_of_128_layers_as_user() {
	need_root
	make_many_layer_archive "$TEST_TMP/many.tar" 128
	open_path_for_user "$TEST_TMP/many.tar"
	make_user_store "$STORE"
	run_strata_as_user --store "$STORE" pull-from-tarball -q "$TEST_TMP/many.tar"
	run_strata_as_user --store "$STORE" run-view localhost/many --name m -q -- sh -c 'ls | wc -l'
	assert_eq 0 "$RC" "exit status" || { diag_file stderr "$TEST_TMP/err"; return; }
	assert_eq 128 "$(out)" "all 128 layers visible"
}

# A listing of a tree that ignores timestamps of directories.
tree_listing() {
	(cd "$1" && find . -mindepth 1 -printf '%p %y %m %s %l\n' | sort)
}

test_copy_driver_matches_overlay() {
	need_root
	import_demo || return
	local script='rm -r data/dir1; chmod 0600 data/keep.txt; echo new > data/new.txt; ln -s keep.txt data/ln'
	run_view "$DEMO" --name ov -q -- sh -c "$script"
	assert_eq 0 "$RC" "exit status on overlay"
	run_view "$DEMO" --name cp --driver copy -q -- sh -c "$script"
	assert_eq 0 "$RC" "exit status on copy" || { diag_file stderr "$TEST_TMP/err"; return; }
	mkdir "$TEST_TMP/mnt"
	strata_store mount ov "$TEST_TMP/mnt"
	assert_eq 0 "$RC" "exit status of strata mount" || { diag_file stderr "$TEST_TMP/err"; return; }
	local overlay copy
	overlay=$(tree_listing "$TEST_TMP/mnt")
	copy=$(tree_listing "$STORE/views/cp/rootfs")
	strata_store umount "$TEST_TMP/mnt"
	assert_eq 0 "$RC" "exit status of strata umount"
	assert_eq "$overlay" "$copy" "merged trees of the overlay and copy views"
	assert_not_contains "$overlay" "./data/dir1" "deleted directory"
	assert_contains "$overlay" "./data/new.txt f 644 4" "new file"
	assert_no_mount_leak
	strata_store views --json
	assert_eq copy "$(out | jq -r '.[] | select(.name == "cp") | .driver')" "driver of view cp"
}

test_mounted_view_is_protected() {
	need_root
	import_demo || return
	run_view "$DEMO" --name v -q -- true
	mkdir "$TEST_TMP/mnt"
	strata_store mount v "$TEST_TMP/mnt"
	assert_eq 0 "$RC" "exit status of mount" || { diag_file stderr "$TEST_TMP/err"; return; }
	assert_file "$TEST_TMP/mnt/data/keep.txt" "view content under the mount point"
	strata_store views --json
	assert_eq "$(realpath "$TEST_TMP/mnt")" "$(out | jq -r '.[0].mounted_at')" "views shows the mount point"
	strata_store mount "$DEMO" "$TEST_TMP/mnt"
	assert_eq 1 "$RC" "mount of an image name"
	assert_error_line "is an image, not a view"
	run_view "$DEMO" --name v -q -- true
	assert_eq 1 "$RC" "run-view on a mounted view"
	assert_error_line "strata umount"
	strata_store rm-view v
	assert_eq 1 "$RC" "rm-view on a mounted view"
	assert_dir "$STORE/views/v/upper" "mounted view kept"
	strata_store umount "$TEST_TMP/mnt"
	assert_eq 0 "$RC" "exit status of umount"
	assert_no_mount_leak
	strata_store views --json
	assert_eq null "$(out | jq -r '.[0].mounted_at')" "not mounted after umount"
	strata_store rm-view v
	assert_eq 0 "$RC" "rm-view after umount"
}

test_left_running_process_keeps_view() {
	need_root
	import_demo || return
	# The command exits at once but leaves a process behind in the view.
	strata_store run-view "$DEMO" --name bg -q -- sh -c 'sleep 30 >/dev/null 2>&1 & echo $!'
	assert_eq 0 "$RC" "exit status of run-view"
	local left
	left=$(out)
	strata_store rm-view bg
	assert_eq 1 "$RC" "rm-view while a process of the view runs"
	assert_error_line "in use"
	run_view "$DEMO" --name bg -q -- true
	assert_eq 1 "$RC" "second command in a busy view"
	kill "$left" 2>/dev/null
	local tries=0
	while kill -0 "$left" 2>/dev/null && [ $tries -lt 50 ]; do
		sleep 0.1
		tries=$((tries + 1))
	done
	strata_store rm-view bg
	assert_eq 0 "$RC" "rm-view once the process ended"
}

test_root_cannot_write_user_store() {
	need_root
	import_demo as-user || return
	run_view "$DEMO" --name r -q -- true
	assert_eq 1 "$RC" "root run-view in a non-root store"
	assert_error_line "non-root store"
	assert_missing "$STORE/views/r" "view created by root"
	assert_stat '%u' "$TEST_USER_ID" "$STORE/tmp" "staging still owned by the user"
}

test_mount_needs_root() {
	need_root
	import_demo as-user || return
	RUN_AS_USER=1 run_view "$DEMO" --name v -q -- true
	mkdir "$TEST_TMP/mnt"
	chmod 0777 "$TEST_TMP/mnt"
	open_path_for_user "$TEST_TMP/mnt"
	run_strata_as_user --store "$STORE" mount v "$TEST_TMP/mnt"
	assert_eq 1 "$RC" "exit status of mount as user"
	assert_error_line "root"
}

test_verify_reports_changed_layer() {
	need_root
	import_demo || return
	local file
	file=$(find "$STORE/layers" -path '*/root/data/keep.txt' | head -n 1)
	echo tampered >>"$file"
	touch "$(dirname "$file")/stray"
	strata_store verify "$DEMO"
	assert_eq 1 "$RC" "exit status of verify on a changed layer"
	assert_contains "$(out)" "/data/keep.txt: size" "changed file reported"
	assert_contains "$(out)" "/data/stray: is not in the index" "extra file reported"
}

test_run_view_unknown_image() {
	need_root
	import_demo || return
	run_view no-such-image -q -- true
	assert_eq 1 "$RC" "exit status"
	assert_error_line "no-such-image"
	assert_missing "$STORE/views" "no view created for an unknown image"
}

test_run_view_invalid_name_and_driver() {
	need_root
	import_demo || return
	run_view "$DEMO" --name ../x -- true
	assert_eq 2 "$RC" "exit status for an invalid name"
	run_view "$DEMO" --driver zfs -- true
	assert_eq 2 "$RC" "exit status for an unknown driver"
}

# The real Debian image, when the corpus build script has produced it.
DEBIAN_ARCHIVE=${STRATA_DEBIAN_ARCHIVE:-/var/tmp/strata-corpus/images/debian.oci-archive.tar}

check_debian_view() {
	run_view localhost/debian:latest --chroot --name d -q -- sh -c 'rm -rf /usr/share/doc; chmod -R go-w /usr/bin'
	assert_eq 0 "$RC" "exit status of the Debian view" || { diag_file stderr "$TEST_TMP/err"; return; }
	if [ "${RUN_AS_USER:-0}" = 1 ]; then
		run_strata_as_user --store "$STORE" views --json
	else
		strata_store views --json
	fi
	assert_eq d "$(out | jq -r '.[0].name')" "view listed"
	if [ "${RUN_AS_USER:-0}" = 1 ]; then
		run_strata_as_user --store "$STORE" verify localhost/debian:latest
	else
		strata_store verify localhost/debian:latest
	fi
	assert_eq 0 "$RC" "layers unchanged after the view ran" || diag_file stdout "$TEST_TMP/out"
}

test_debian_view_as_root() {
	need_root
	[ -f "$DEBIAN_ARCHIVE" ] || skip "no Debian image at $DEBIAN_ARCHIVE (build it with build-real.sh)"
	strata_store pull-from-tarball -q "$DEBIAN_ARCHIVE"
	check_debian_view
}

test_debian_view_as_user() {
	need_root
	[ -f "$DEBIAN_ARCHIVE" ] || skip "no Debian image at $DEBIAN_ARCHIVE (build it with build-real.sh)"
	make_user_store "$STORE"
	run_strata_as_user --store "$STORE" pull-from-tarball -q "$DEBIAN_ARCHIVE"
	assert_eq 0 "$RC" "exit status of the import as user" || { diag_file stderr "$TEST_TMP/err"; return; }
	RUN_AS_USER=1 check_debian_view
}

run_tests
