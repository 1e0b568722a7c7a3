#!/usr/bin/env bash
#
# Help, version, command listing and usage errors of the strata CLI.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Print the command names from `strata --list-commands`.
list_commands() {
	"$STRATA" --list-commands | cut -f1
}

TINY_TAG=localhost/tiny:latest

# Create $STORE by importing a one-layer image whose layer is the empty tar
# (1024 zero bytes). Sets TINY_ID to the image ID.
make_tiny_store() {
	need_cmd jq
	head -c 1024 /dev/zero >"$TEST_TMP/empty-layer.tar"
	make_docker_archive "$TEST_TMP/tiny.tar" "$TINY_TAG" "$TEST_TMP/empty-layer.tar"
	strata_store pull-from-tarball -q "$TEST_TMP/tiny.tar"
	if [ "$RC" != 0 ]; then
		diag_file stderr "$TEST_TMP/err"
		fatal "import of a one-layer image exited with $RC"
	fi
	TINY_ID=$(out)
}

test_version_prints_name_and_version() {
	need_strata
	assert_exit 0 run_strata --version || return
	assert_eq 1 "$(out | wc -l)" "number of --version output lines"
	[[ $(out) =~ ^strata\ [^[:space:]]+$ ]] ||
		fail "--version output is not 'strata VERSION'" "$(out)"
	assert_eq "" "$(err)" "--version stderr"
}

test_top_level_help() {
	need_strata
	assert_exit 0 run_strata --help || return
	[ -s "$TEST_TMP/out" ] || fail "strata --help printed nothing on stdout"
	assert_eq "" "$(err)" "strata --help stderr"
}

test_list_commands_format() {
	need_strata
	assert_exit 0 run_strata --list-commands || return
	[ -s "$TEST_TMP/out" ] || fatal "--list-commands printed nothing"
	assert_eq "" "$(err)" "--list-commands stderr"

	local line
	while IFS= read -r line; do
		[[ $line =~ ^[a-z][a-z0-9-]*$'\t'[^$'\t']+$ ]] ||
			fail "--list-commands line is not NAME<TAB>SUMMARY: '$line'"
	done <"$TEST_TMP/out"

	local names
	names=$(cut -f1 "$TEST_TMP/out")
	local expected
	for expected in pull-from-tarball images layers; do
		grep -qxF -- "$expected" <<<"$names" ||
			fail "--list-commands does not list '$expected'" "$names"
	done
}

test_help_for_every_command() {
	need_strata
	local commands cmd
	commands=$(list_commands) || fatal "strata --list-commands failed"
	[ -n "$commands" ] || fatal "strata --list-commands listed no command"

	for cmd in $commands; do
		assert_exit 0 run_strata "$cmd" --help || continue
		[ -s "$TEST_TMP/out" ] || fail "strata $cmd --help printed nothing on stdout"
		assert_eq "" "$(err)" "stderr of strata $cmd --help"
		assert_contains "$(out)" "$cmd" "strata $cmd --help output"
		if grep -q $'\e' "$TEST_TMP/out"; then
			fail "strata $cmd --help writes escape sequences to a pipe"
		fi
	done
}

test_list_options_for_every_command() {
	need_strata
	local commands cmd line option help
	commands=$(list_commands) || fatal "strata --list-commands failed"

	for cmd in $commands; do
		assert_exit 0 run_strata "$cmd" --list-options || continue
		assert_eq "" "$(err)" "stderr of strata $cmd --list-options"
		cp "$TEST_TMP/out" "$TEST_TMP/options"

		run_strata "$cmd" --help
		help=$(out)

		# OPTION<TAB>ARG<TAB>DESCRIPTION, ARG possibly empty.
		while IFS= read -r line; do
			if ! [[ $line =~ ^(-[A-Za-z0-9]|--[a-z0-9][a-z0-9-]*)$'\t'[^$'\t']*$'\t'[^$'\t']+$ ]]; then
				fail "strata $cmd --list-options line is not OPTION<TAB>ARG<TAB>DESCRIPTION: '$line'"
				continue
			fi
			option=${line%%$'\t'*}
			assert_contains "$help" "$option" "strata $cmd --help output"
		done <"$TEST_TMP/options"
	done
}

test_unknown_global_option_exits_2() {
	need_strata
	assert_exit 2 run_strata --no-such-option
	grep -q '^strata: usage error:' "$TEST_TMP/err" ||
		fail "no 'strata: usage error:' line" "$(err)"
	assert_eq "" "$(out)" "stdout after a usage error"
}

test_unknown_command_exits_2() {
	need_strata
	assert_exit 2 run_strata no-such-command
	grep -q '^strata: usage error:' "$TEST_TMP/err" ||
		fail "no 'strata: usage error:' line" "$(err)"
	assert_contains "$(err)" "no-such-command" "stderr"
}

test_unknown_command_option_exits_2() {
	need_strata
	local commands cmd
	commands=$(list_commands) || fatal "strata --list-commands failed"

	for cmd in $commands; do
		assert_exit 2 run_strata "$cmd" --no-such-option || continue
		grep -q '^strata: usage error:' "$TEST_TMP/err" ||
			fail "strata $cmd: no 'strata: usage error:' line" "$(err)"
		assert_contains "$(err)" "see 'strata $cmd --help'" "strata $cmd stderr"
	done
}

test_missing_operand_exits_2() {
	need_strata
	make_tiny_store

	assert_exit 2 strata_store pull-from-tarball
	grep -q '^strata: usage error:' "$TEST_TMP/err" ||
		fail "pull-from-tarball without FILE: no usage error line" "$(err)"

	assert_exit 2 strata_store layers
	grep -q '^strata: usage error:' "$TEST_TMP/err" ||
		fail "layers without IMAGE: no usage error line" "$(err)"
}

test_store_option_before_and_after_command() {
	need_strata
	make_tiny_store

	assert_exit 0 run_strata --store "$STORE" images --json || return
	local before
	before=$(out)
	assert_contains "$before" "$TINY_ID" "images --json with --store before the command"

	assert_exit 0 run_strata images --json --store "$STORE" || return
	assert_eq "$before" "$(out)" "images --json with --store after the command"

	RC=0
	STRATA_STORE=$STORE timeout "$STRATA_TIMEOUT" "$STRATA" images --json \
		>"$TEST_TMP/out" 2>"$TEST_TMP/err" || RC=$?
	assert_eq 0 "$RC" "exit status of images with STRATA_STORE"
	assert_eq "$before" "$(out)" "images --json with STRATA_STORE"
}

test_images_lists_imported_image() {
	need_strata
	make_tiny_store
	[[ $TINY_ID =~ ^sha256:[0-9a-f]{64}$ ]] || fail "pull-from-tarball -q did not print one full ID" "$TINY_ID"

	assert_exit 0 strata_store images --json || return
	assert_eq 1 "$(jq 'length' "$TEST_TMP/out")" "number of images"
	assert_eq "$TINY_ID" "$(jq -r '.[0].id' "$TEST_TMP/out")" "image ID"
	assert_eq 1024 "$(jq -r '.[0].size' "$TEST_TMP/out")" "image size"

	assert_exit 0 strata_store images -q || return
	assert_eq "$TINY_ID" "$(out)" "images -q"

	assert_exit 0 strata_store --list-images || return
	assert_eq "$TINY_TAG" "$(out)" "--list-images"
}

# synopsis_of CMD: the SYNOPSIS of CMD in its man page, roff markup removed and
# whitespace collapsed, from the `.SY "strata CMD"` block of any page.
synopsis_of() {
	local cmd=$1
	local escaped=${cmd//-/\\-}
	cat "$REPO_ROOT"/man/*.1 | awk -v head=".SY \"strata $escaped\"" '
		$0 == head { on = 1; next }
		on && /^\.(YS|SY)/ { exit }
		on { print }' |
		sed -e 's/\\f[BRI]//g' -e 's/\\%//g' -e 's/\\-/-/g' -e 's/\\ / /g' -e 's/\\&//g' |
		tr -s ' \n' '  ' | sed -e 's/^ //' -e 's/ $//'
}

test_man_synopsis_matches_help() {
	need_strata
	local cmd usage synopsis
	while IFS=$'\t' read -r cmd _; do
		usage=$("$STRATA" "$cmd" --help | sed -n '1s/^usage: strata [^ ]* *//p')
		synopsis=$(synopsis_of "$cmd")
		assert_ne "" "$synopsis" "man page SYNOPSIS of $cmd"
		assert_eq "$usage" "$synopsis" "SYNOPSIS of $cmd matches its --help usage"
	done < <("$STRATA" --list-commands)
}

test_images_on_missing_store_is_empty() {
	need_strata
	assert_exit 0 strata_store images
	assert_eq "1" "$(out | wc -l)" "only the header row"
	assert_exit 0 strata_store images --json
	assert_eq "0" "$(out | jq length)" "empty JSON list"
	assert_missing "$STORE" "store created by a read-only command"
}

test_layers_on_missing_store_fails() {
	need_strata
	assert_exit 1 strata_store layers teach
	assert_error_line "$STORE"
	assert_missing "$STORE" "store created by a read-only command"
}

test_layers_unknown_image_fails() {
	need_strata
	make_tiny_store
	assert_exit 1 strata_store layers no-such-image:latest
	assert_error_line "no-such-image"
}

run_tests
