#!/usr/bin/env bash
#
# The store survives crashes, a full disk and concurrent commands: imports
# killed with SIGKILL at many points, a store on a tiny file system, four
# imports at once, imports racing with run-view and rm-view, resource limits,
# fsck, and the import path under valgrind.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEMO=localhost/strata-demo:latest

# fsck_clean: fsck reports no problem (notes about interrupted staging are fine).
assert_fsck_clean() {
	strata_store fsck
	assert_eq 0 "$RC" "exit status of fsck ($1)" || diag_file stdout "$TEST_TMP/out"
	assert_not_contains "$(out)" "problem:" "fsck problems ($1)"
}

test_import_killed_at_many_points() {
	need_strata
	strata_store demo -o "$TEST_TMP/demo.tar"
	local archive=$TEST_TMP/demo.tar round delay pid
	if [ -f "${STRATA_DEBIAN_ARCHIVE:-/var/tmp/strata-corpus/images/debian.oci-archive.tar}" ]; then
		archive=${STRATA_DEBIAN_ARCHIVE:-/var/tmp/strata-corpus/images/debian.oci-archive.tar}
	fi
	for round in $(seq 1 12); do
		# Delays from 0 to about 0.6 s cover opening, unpacking and publishing.
		delay=$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", (r % 600) / 1000 }')
		"$STRATA" --store "$STORE" pull-from-tarball -q "$archive" >/dev/null 2>&1 &
		pid=$!
		sleep "$delay"
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		assert_fsck_clean "after a kill at ${delay} s"
		# Whatever was published must be whole: every layer verifies.
		strata_store fsck --json
		assert_eq 0 "$(out | jq '[.findings[] | select(.severity == "problem")] | length')" "problems in round $round"
	done
	strata_store pull-from-tarball -q "$archive"
	assert_eq 0 "$RC" "import after the kills" || diag_file stderr "$TEST_TMP/err"
	assert_fsck_clean "after the final import"
	assert_empty_dir "$STORE/tmp" "staging after a successful import"
}

test_full_disk_publishes_nothing() {
	need_root
	local mnt=$TEST_TMP/small
	mkdir "$mnt"
	mount -t tmpfs -o size=3m tmpfs "$mnt" || skip "cannot mount a tmpfs here"
	strata_store demo -o "$TEST_TMP/demo.tar"
	run_strata --store "$mnt/store" pull-from-tarball "$TEST_TMP/demo.tar"
	local rc=$RC err_text
	err_text=$(err)
	local images
	images=$(find "$mnt/store/images" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l | tr -d ' ')
	run_strata --store "$mnt/store" fsck
	local fsck_rc=$RC fsck_out
	fsck_out=$(out)
	umount "$mnt"
	assert_eq 1 "$rc" "exit status on a full disk"
	assert_contains "$err_text" "No space left on device" "the error says the disk is full"
	assert_eq 0 "$images" "no image published"
	assert_eq 0 "$fsck_rc" "fsck after the full disk"
	assert_not_contains "$fsck_out" "problem:" "fsck problems after the full disk"
}

test_four_imports_at_once() {
	need_shared
	local pids=() archive
	for archive in teach.oci-archive.tar teach.docker-archive.tar.gz teach-multi.docker-save.tar.gz \
		teach.oci-layout-zstd.tar; do
		"$STRATA" --store "$STORE" pull-from-tarball -q --tag "localhost/four:${archive%%.*}-$RANDOM" \
			"$SHARED/corpus/$archive" >"$TEST_TMP/$archive.out" 2>"$TEST_TMP/$archive.err" &
		pids+=($!)
	done 2>/dev/null
	local pid failed=0
	for pid in "${pids[@]}"; do
		wait "$pid" || failed=$((failed + 1))
	done
	# --tag needs a one-image archive, so the multi-image archive fails with a clear message.
	assert_eq 1 "$failed" "one import fails (the multi-image archive with --tag)"
	assert_contains "$(cat "$TEST_TMP/teach-multi.docker-save.tar.gz.err")" "--tag needs an archive with exactly one image" \
		"message of the failing import"
	assert_eq 7 "$(layer_dir_count)" "each of the 7 layers stored once"
	assert_fsck_clean "after concurrent imports"
}

test_imports_race_views() {
	need_root
	strata_store demo
	strata_store demo -o "$TEST_TMP/demo.tar"
	local pids=() i
	for i in 1 2 3; do
		"$STRATA" --store "$STORE" pull-from-tarball -q --tag "localhost/race:$i" "$TEST_TMP/demo.tar" \
			>/dev/null 2>"$TEST_TMP/import-$i.err" &
		pids+=($!)
		"$STRATA" --store "$STORE" run-view "$DEMO" --name "race-$i" -q -- sh -c 'rm data/big.bin' \
			>/dev/null 2>"$TEST_TMP/view-$i.err" &
		pids+=($!)
	done
	local pid failed=0
	for pid in "${pids[@]}"; do
		wait "$pid" || failed=$((failed + 1))
	done
	assert_eq 0 "$failed" "imports and views at once"
	for i in 1 2 3; do
		"$STRATA" --store "$STORE" rm-view "race-$i" >/dev/null 2>"$TEST_TMP/rm-$i.err" &
		pids+=($!)
		"$STRATA" --store "$STORE" run-view "$DEMO" --name "late-$i" -q -- true >/dev/null 2>&1 &
	done
	wait
	assert_eq 6 "$(layer_dir_count)" "each layer stored once"
	strata_store views -q
	assert_eq "$(printf 'late-1\nlate-2\nlate-3')" "$(out)" "views left"
	assert_fsck_clean "after imports racing views"
}

test_limits_reject_and_publish_nothing() {
	need_strata
	strata_store demo -o "$TEST_TMP/demo.tar"
	strata_store pull-from-tarball --max-layer-bytes 1MB "$TEST_TMP/demo.tar"
	assert_eq 1 "$RC" "exit status over --max-layer-bytes"
	assert_error_line "--max-layer-bytes"
	strata_store pull-from-tarball --max-entries 5 "$TEST_TMP/demo.tar"
	assert_error_line "--max-entries"
	strata_store pull-from-tarball --max-image-bytes 10MB "$TEST_TMP/demo.tar"
	assert_error_line "--max-image-bytes"
	strata_store pull-from-tarball --max-path-depth 1 "$TEST_TMP/demo.tar"
	assert_error_line "--max-path-depth"
	strata_store pull-from-tarball --max-path-length 8 "$TEST_TMP/demo.tar"
	assert_error_line "--max-path-length"
	strata_store pull-from-tarball --max-entries lots "$TEST_TMP/demo.tar"
	assert_eq 2 "$RC" "invalid limit value"
	assert_eq 0 "$(find "$STORE/images" -mindepth 1 -maxdepth 1 | wc -l | tr -d ' ')" "no image published"
	assert_eq 0 "$(layer_dir_count)" "no layer published"
	strata_store pull-from-tarball -q --max-layer-bytes 16MiB --max-entries 20 "$TEST_TMP/demo.tar"
	assert_eq 0 "$RC" "import within the limits"
}

test_fsck_finds_and_repairs_damage() {
	need_strata
	strata_store demo
	local file
	file=$(find "$STORE/layers" -path '*/root/data/keep.txt' | head -n 1)
	echo damaged >>"$file"
	mkdir -p "$STORE/tmp/import-1-killed/blob-1"
	strata_store fsck
	assert_eq 1 "$RC" "fsck on a damaged store"
	assert_contains "$(out)" "differs from its index" "damaged layer reported"
	assert_contains "$(out)" "staging left by an interrupted command" "stale staging reported"
	assert_contains "$(out)" "localhost/strata-demo:latest: tag points" "tag of the broken image reported"
	strata_store fsck --repair
	assert_eq 0 "$RC" "fsck --repair"
	assert_contains "$(out)" "(removed)" "removals listed"
	assert_missing "$STORE/tmp/import-1-killed" "stale staging removed"
	strata_store fsck
	assert_eq 0 "$RC" "fsck after repair"
	strata_store demo
	assert_eq 0 "$RC" "import again after repair"
	strata_store verify "$DEMO"
	assert_eq 0 "$RC" "layers verify after re-import"
}

test_import_under_valgrind() {
	need_cmd valgrind
	[ -z "${STRATA_SANITIZED:-}" ] || skip "the sanitizer build cannot run under valgrind"
	strata_store demo -o "$TEST_TMP/demo.tar"
	local archive
	for archive in "$TEST_TMP/demo.tar" "$REPO_ROOT/tests/fuzz-seeds/import/docker-archive.tar"; do
		rm -rf "$STORE"
		RC=0
		valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
			"$STRATA" --store "$STORE" pull-from-tarball -q "$archive" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || RC=$?
		assert_eq 0 "$RC" "valgrind run of the import of $(basename "$archive")" || diag_file stderr "$TEST_TMP/err"
		assert_not_contains "$(err)" "Invalid read" "invalid reads"
		assert_not_contains "$(err)" "definitely lost" "leaks"
	done
}

run_tests
