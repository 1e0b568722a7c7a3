#!/usr/bin/env bash
#
# strata du: exact figures for the teaching image and the teach corpus image,
# an independent count (tests/cli/du_count.py, Python's tarfile) on real
# archives, hard links, deletes, opaque directories, views, the store report
# and the CI rules.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DEMO=localhost/strata-demo:latest
COUNT="$CLI_TEST_DIR/du_count.py"

du_json() {
	strata_store du --json "$@"
	assert_eq 0 "$RC" "exit status of du $*" || diag_file stderr "$TEST_TMP/err"
}

# Per-layer columns of du --json as "added copyup meta whiteouts opaque hidden" lines.
layer_columns() {
	out | jq -r '.layers[] | "\(.added_bytes) \(.copyup_bytes) \(.metadata_only_bytes) \(.whiteouts) \(.opaque_dirs) \(.hidden_bytes)"'
}

test_du_demo_image_figures() {
	need_strata
	strata_store demo
	du_json "$DEMO"
	# Layer 1 adds 9796793 bytes. Layer 2 copies big.bin (4 MiB) with an edit.
	# Layer 3 copies chmod-me.bin (2 MiB) for a chmod. Layer 4 deletes
	# delete-me.bin (3 MiB) and gone-dir (150 KiB). Layer 5 replaces replace-dir
	# (200 KiB + 1 KiB files) with 2 KiB + 256 KiB. Layer 6 adds 512 KiB and a
	# hard link to it.
	assert_eq "9796793 0 0 0 0 0
0 4194304 0 0 0 4194304
0 0 2097152 0 0 2097152
0 0 0 2 0 3299328
264192 0 0 0 1 205824
524288 0 0 0 0 0" "$(layer_columns)" "per-layer figures"
	assert_eq 16876729 "$(out | jq .shipped)" "shipped bytes"
	assert_eq 7080121 "$(out | jq .live)" "live bytes"
	assert_eq 9796608 "$(out | jq .wasted)" "wasted bytes"
	assert_eq "$(out | jq '.shipped - .live')" "$(out | jq .wasted)" "wasted = shipped - live"
	need_cmd python3
	strata_store demo -o "$TEST_TMP/demo.tar"
	assert_eq "$(python3 "$COUNT" "$TEST_TMP/demo.tar")" \
		"$(strata_store du --json "$DEMO"; out | jq -c '{shipped, live, wasted}' | sed 's/:/: /g; s/,/, /g')" \
		"strata and the independent count"
	assert_eq data/big.bin "$(out | jq -r '.top_waste[0].path | ltrimstr("/")')" "largest waste"
	assert_eq true "$(out | jq '.top_waste[] | select(.path == "/data/chmod-me.bin") | .metadata_only')" \
		"the chmod is a metadata-only copy-up"
}

test_du_teach_matches_documented_figures() {
	need_shared
	strata_store pull-from-tarball -q "$SHARED/corpus/teach.oci-archive.tar"
	du_json localhost/teach:latest
	assert_eq 22435847 "$(out | jq .shipped)" "shipped"
	assert_eq 11127421 "$(out | jq .live)" "live"
	assert_eq 11308426 "$(out | jq .wasted)" "wasted"
	assert_eq "13366534 0 0 0 0 0
0 4194304 0 0 0 4194304
0 0 4194304 0 0 4194304
0 0 0 2 0 2629440
136417 0 0 0 1 270378
524288 0 20000 0 0 20000
0 0 0 0 0 0" "$(layer_columns)" "per-layer figures"
	assert_eq 10 "$(out | jq '.top_waste | length')" "default --top"
	strata_store du --json --top 3 localhost/teach:latest
	assert_eq 3 "$(out | jq '.top_waste | length')" "--top 3"
}

test_du_agrees_with_independent_count() {
	need_shared
	need_cmd python3
	local archive expected
	for archive in teach.oci-archive.tar teach.oci-layout-zstd.tar teach.docker-archive.tar.gz; do
		rm -rf "$STORE"
		need_cmd zstd
		expected=$(python3 "$COUNT" "$SHARED/corpus/$archive")
		strata_store pull-from-tarball -q --tag localhost/counted:latest "$SHARED/corpus/$archive"
		du_json localhost/counted:latest
		assert_eq "$expected" "$(out | jq -c '{shipped, live, wasted}' | sed 's/:/: /g; s/,/, /g')" \
			"strata and the independent count for $archive"
	done
}

DEBIAN_ARCHIVE=${STRATA_DEBIAN_ARCHIVE:-/var/tmp/strata-corpus/images/debian.oci-archive.tar}

test_du_debian_agrees_with_independent_count() {
	need_cmd python3
	[ -f "$DEBIAN_ARCHIVE" ] || skip "no Debian image at $DEBIAN_ARCHIVE (build it with build-real.sh)"
	local expected
	expected=$(python3 "$COUNT" "$DEBIAN_ARCHIVE")
	strata_store pull-from-tarball -q --tag localhost/debian-du:latest "$DEBIAN_ARCHIVE"
	du_json localhost/debian-du:latest
	assert_eq "$expected" "$(out | jq -c '{shipped, live, wasted}' | sed 's/:/: /g; s/,/, /g')" \
		"strata and the independent count"
	# The chmod -R layer copies files up without new content, and the rm -rf layer only whiteouts.
	assert_ne 0 "$(out | jq '.layers[2].metadata_only_bytes')" "metadata-only copy-ups of the chmod layer"
	assert_eq 0 "$(out | jq '.layers[1].added_bytes')" "the rm -rf layer adds nothing"
	assert_eq 3 "$(out | jq '.layers[1].whiteouts')" "the rm -rf layer has three whiteouts"
}

test_du_case_archives() {
	need_shared
	# Four names of one 64 KiB file count once. A file shipped twice with the same
	# bytes wastes one copy. A whiteout of a path that never existed hides nothing.
	# A deleted directory re-created empty wastes the files it contained.
	strata_store pull-from-tarball -q "$SHARED/cases/16-hardlink-counted-once.tar"
	du_json strata-case/16-hardlink-counted-once
	assert_eq "65536 65536 0" "$(out | jq -r '"\(.shipped) \(.live) \(.wasted)"')" "hard links count once"
	strata_store pull-from-tarball -q "$SHARED/cases/13-whiteout-dangling-accounting.tar"
	du_json strata-case/13-whiteout-dangling-accounting
	assert_eq "8194 4098 4096" "$(out | jq -r '"\(.shipped) \(.live) \(.wasted)"')" "file shipped twice"
	assert_eq 0 "$(out | jq '.layers[1].hidden_bytes - 4096')" "dangling whiteouts hide nothing"
	strata_store pull-from-tarball -q "$SHARED/cases/11-whiteout-dir-recreate-nested.tar"
	du_json strata-case/11-whiteout-dir-recreate-nested
	assert_eq "4096 0 4096" "$(out | jq -r '"\(.shipped) \(.live) \(.wasted)"')" "deleted and re-created directory"
}

test_du_hard_link_into_lower_layer_keeps_copy_live() {
	need_cmd python3
	# Layer 1 ships usr/bin/tool; layer 2 hard-links tool-alias to it; layer 3 deletes tool.
	python3 - "$TEST_TMP" <<'PY'
import io, sys, tarfile
out = sys.argv[1]
def layer(name, entries):
    with tarfile.open(f"{out}/{name}", "w", format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)
def file(path, data):
    i = tarfile.TarInfo(path); i.size = len(data); i.mode = 0o755; return i, data
def link(path, target):
    i = tarfile.TarInfo(path); i.type = tarfile.LNKTYPE; i.linkname = target; return i, None
layer("l1.tar", [file("usr/bin/tool", b"t" * 8192)])
layer("l2.tar", [link("usr/bin/tool-alias", "usr/bin/tool")])
layer("l3.tar", [file("usr/bin/.wh.tool", b"")])
PY
	make_docker_archive "$TEST_TMP/img.tar" localhost/alias:latest "$TEST_TMP/l1.tar" "$TEST_TMP/l2.tar" "$TEST_TMP/l3.tar"
	strata_store pull-from-tarball -q "$TEST_TMP/img.tar"
	assert_eq 0 "$RC" "exit status of the import" || { diag_file stderr "$TEST_TMP/err"; return; }
	du_json localhost/alias
	assert_eq "8192 8192 0" "$(out | jq -r '"\(.shipped) \(.live) \(.wasted)"')" \
		"the alias keeps the lower copy live after the original name is deleted"
	assert_eq "$(python3 "$COUNT" "$TEST_TMP/img.tar")" "$(out | jq -c '{shipped, live, wasted}' | sed 's/:/: /g; s/,/, /g')" \
		"strata and the independent count"
}

test_du_opaque_dir_over_big_tree() {
	need_strata
	local a=$TEST_TMP/a b=$TEST_TMP/b
	mkdir -p "$a/tree/sub" "$b/tree"
	head -c 1048576 /dev/urandom >"$a/tree/one"
	head -c 2097152 /dev/urandom >"$a/tree/sub/two"
	: >"$b/tree/.wh..wh..opq"
	echo small >"$b/tree/new"
	tar -C "$a" -cf "$TEST_TMP/a.tar" tree
	tar -C "$b" -cf "$TEST_TMP/b.tar" tree
	make_docker_archive "$TEST_TMP/img.tar" localhost/opaque:latest "$TEST_TMP/a.tar" "$TEST_TMP/b.tar"
	strata_store pull-from-tarball -q "$TEST_TMP/img.tar"
	du_json localhost/opaque
	assert_eq 3145728 "$(out | jq '.layers[1].hidden_bytes')" "opaque directory hides the whole lower tree"
	assert_eq 1 "$(out | jq '.layers[1].opaque_dirs')" "opaque directory counted"
	assert_eq 3145728 "$(out | jq .wasted)" "wasted"
	assert_eq 6 "$(out | jq .live)" "live: only the new file"
}

test_du_view_chmod_copies_whole_file() {
	need_root
	strata_store demo
	strata_store run-view "$DEMO" --name v -q -- sh -c 'chmod 0600 data/big.bin; rm data/keep.txt; echo hi > data/new.txt'
	du_json v
	assert_eq 4194304 "$(out | jq .metadata_only.bytes)" "chmod-only copy-up of a 4 MiB file"
	assert_eq 1 "$(out | jq .metadata_only.files)" "one metadata-only copy-up"
	assert_eq 3 "$(out | jq .added.bytes)" "new file"
	assert_eq 1 "$(out | jq .deleted.paths)" "one deletion"
	assert_eq "$(stat -c %s "$(find "$STORE/layers" -path '*root/data/keep.txt' | head -n 1)")" \
		"$(out | jq .deleted.bytes_still_shipped)" "deleting frees nothing"
	strata_store du v
	assert_contains "$(out)" "metadata-only copy-ups" "human report"
	assert_contains "$(out)" "free nothing" "human report says nothing is freed"
}

test_du_store_report() {
	need_shared
	strata_store pull-from-tarball -q "$SHARED/corpus/teach-multi.docker-archive.tar.gz"
	run_strata --store "$STORE" du --store --json
	assert_eq 0 "$RC" "exit status"
	assert_eq 3 "$(out | jq '.images | length')" "three images"
	assert_eq 7 "$(out | jq .layers)" "seven distinct layers"
	assert_eq 22483968 "$(out | jq .stored_bytes)" "layers stored once"
	assert_eq "$(out | jq '[.images[].size] | add')" "$(out | jq .logical_bytes)" "logical bytes"
	assert_eq "$(out | jq '.logical_bytes - .stored_bytes')" "$(out | jq .saved_bytes)" "saved bytes"
	assert_eq 0 "$(out | jq '.images[] | select(.tags == ["localhost/teach:l1"]) | .unique')" \
		"teach:l1 shares its only layer"
	assert_ne 0 "$(out | jq .disk_bytes)" "bytes on disk"
	strata_store du --store localhost/teach:l1
	assert_eq 2 "$RC" "--store takes no image"
}

test_du_rules_gate_with_exit_3() {
	need_strata
	strata_store demo
	strata_store du "$DEMO" --max-wasted 10%
	assert_eq 3 "$RC" "over --max-wasted percent"
	assert_contains "$(err)" "max-wasted" "failed rule named"
	assert_contains "$(err)" "/data/big.bin" "worst offender named"
	strata_store du "$DEMO" --max-wasted 70%
	assert_eq 0 "$RC" "under --max-wasted percent"
	strata_store du "$DEMO" --max-wasted 1MB
	assert_eq 3 "$RC" "over --max-wasted bytes"
	strata_store du "$DEMO" --min-efficiency 0.5
	assert_eq 3 "$RC" "below --min-efficiency"
	strata_store du "$DEMO" --min-efficiency 0.3
	assert_eq 0 "$RC" "above --min-efficiency"
	strata_store du "$DEMO" --max-layer-size 5MB
	assert_eq 3 "$RC" "a layer over --max-layer-size"
	assert_contains "$(err)" "layer 1" "large layer named"
	strata_store du "$DEMO" --max-layer-size 5MB --base 1
	assert_eq 0 "$RC" "--base leaves the base layer out"
	strata_store du "$DEMO" --max-wasted 1MB --ignore '/data/*'
	assert_eq 0 "$RC" "--ignore leaves the paths out"
	strata_store du --json "$DEMO" --max-wasted 10% --min-efficiency 0.3
	assert_eq 3 "$RC" "exit status with --json"
	assert_eq "false true" "$(out | jq -r '[.rules[].passed] | map(tostring) | join(" ")')" "rule results in JSON"
	strata_store du "$DEMO" --max-wasted lots
	assert_eq 2 "$RC" "invalid --max-wasted"
}

run_tests
