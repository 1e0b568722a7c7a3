# shellcheck shell=bash
#
# Small test library for the strata CLI tests. A test script defines
# functions named test_* and ends with `run_tests`. Each test runs in its own
# subshell with a fresh temporary directory ($TEST_TMP) that is removed
# afterwards. $STORE is a path inside it and is not created in advance.
#
# Environment:
#   STRATA            path of the binary (default: <repo>/strata)
#   STRATA_SHARED     reference corpus folder (default: <repo>/../shared)
#   STRATA_TEST_KEEP  if set to 1, keep the temporary directories of tests
#   STRATA_TIMEOUT    seconds before a strata command is killed (default: 120)
#   STRATA_TEST_ONLY  run only the tests whose name contains this string
#
# Output: one line per test, `ok NAME`, `not ok NAME` or `skip NAME: reason`,
# with diagnostics on lines starting with `#`, then a summary line
# `N passed, N failed, N skipped`. The exit status is 1 if any test failed.

set -u

CLI_TEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLI_TEST_DIR/../.." && pwd)
STRATA=${STRATA:-$REPO_ROOT/strata}
SHARED=${STRATA_SHARED:-$REPO_ROOT/../shared}
STRATA_TIMEOUT=${STRATA_TIMEOUT:-120}

# The unprivileged account used by run_strata_as_user.
TEST_USER_ID=65534

# Exit status a test subshell uses to report a skip; the reason is written to
# $TEST_TMP/.skip-reason.
SKIP_STATUS=77

TESTS_PASSED=0
TESTS_FAILED=0
TESTS_SKIPPED=0

# Set inside a test subshell.
TEST_NAME=
TEST_TMP=
STORE=
TEST_FAILED=0
RC=0

diag() {
	local line
	while IFS= read -r line; do
		printf '#   %s\n' "$line"
	done <<<"$*"
}

# Print a file's content as diagnostics, at most 40 lines.
diag_file() {
	local label=$1 file=$2
	if [ -s "$file" ]; then
		printf '#   --- %s:\n' "$label"
		head -n 40 "$file" | sed 's/^/#   | /'
	else
		printf '#   --- %s: (empty)\n' "$label"
	fi
}

# Record a failed check without ending the test.
fail() {
	TEST_FAILED=1
	printf '# %s: %s\n' "$TEST_NAME" "$1"
	if [ $# -gt 1 ]; then
		shift
		diag "$@"
	fi
	return 1
}

# End the test at once as failed, for when later checks would make no sense.
fatal() {
	fail "$@"
	exit 1
}

# End the test as skipped, unless a check already failed: a test may run
# its portable checks first and skip only the rest.
skip() {
	if [ "$TEST_FAILED" = 1 ]; then
		printf '# %s: stopped before the remaining checks: %s\n' "$TEST_NAME" "$1"
		exit 1
	fi
	printf '%s\n' "$1" >"$TEST_TMP/.skip-reason"
	exit "$SKIP_STATUS"
}

# assert_eq EXPECTED ACTUAL [WHAT]
assert_eq() {
	local expected=$1 actual=$2 what=${3:-value}
	if [ "$expected" != "$actual" ]; then
		fail "$what: expected '$expected', got '$actual'"
		return 1
	fi
}

# assert_ne UNEXPECTED ACTUAL [WHAT]
assert_ne() {
	local unexpected=$1 actual=$2 what=${3:-value}
	if [ "$unexpected" = "$actual" ]; then
		fail "$what: did not expect '$actual'"
		return 1
	fi
}

# assert_contains HAYSTACK NEEDLE [WHAT]: fixed-string match.
assert_contains() {
	local haystack=$1 needle=$2 what=${3:-text}
	case $haystack in
	*"$needle"*) return 0 ;;
	esac
	fail "$what does not contain '$needle'" "$haystack"
}

# assert_not_contains HAYSTACK NEEDLE [WHAT]
assert_not_contains() {
	local haystack=$1 needle=$2 what=${3:-text}
	case $haystack in
	*"$needle"*)
		fail "$what contains '$needle'" "$haystack"
		return 1
		;;
	esac
}

# assert_file PATH [WHAT]: PATH exists and is a regular file.
assert_file() {
	local path=$1 what=${2:-file}
	if [ ! -f "$path" ] || [ -L "$path" ]; then
		fail "$what: '$path' is not a regular file" "$(ls -ld "$path" 2>&1)"
		return 1
	fi
}

# assert_dir PATH [WHAT]: PATH exists and is a directory (not a symlink).
assert_dir() {
	local path=$1 what=${2:-directory}
	if [ ! -d "$path" ] || [ -L "$path" ]; then
		fail "$what: '$path' is not a directory" "$(ls -ld "$path" 2>&1)"
		return 1
	fi
}

# assert_missing PATH [WHAT]: nothing exists at PATH, not even a dangling symlink.
assert_missing() {
	local path=$1 what=${2:-path}
	if [ -e "$path" ] || [ -L "$path" ]; then
		fail "$what: '$path' should not exist" "$(ls -ld "$path" 2>&1)"
		return 1
	fi
}

# assert_empty_dir PATH [WHAT]: PATH is absent or an empty directory.
assert_empty_dir() {
	local path=$1 what=${2:-directory}
	if [ -d "$path" ] && [ -n "$(ls -A "$path")" ]; then
		fail "$what: '$path' is not empty" "$(ls -lA "$path" 2>&1 | head -n 20)"
		return 1
	fi
}

# assert_stat FORMAT EXPECTED PATH [WHAT]: compare `stat -c FORMAT PATH`.
assert_stat() {
	local format=$1 expected=$2 path=$3
	local what=${4:-"stat $format of $path"}
	local actual
	if ! actual=$(stat -c "$format" -- "$path" 2>&1); then
		fail "$what: cannot stat '$path'" "$actual"
		return 1
	fi
	assert_eq "$expected" "$actual" "$what"
}

# run_strata ARGS...: run the binary under a timeout. Sets RC and writes
# stdout to $TEST_TMP/out and stderr to $TEST_TMP/err; stdin is inherited.
run_strata() {
	RC=0
	timeout "$STRATA_TIMEOUT" "$STRATA" "$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || RC=$?
	if [ "$RC" = 124 ]; then
		fail "strata $* timed out after $STRATA_TIMEOUT s"
	fi
	return 0
}

# strata_store ARGS...: run_strata with --store $STORE before the command.
strata_store() {
	run_strata --store "$STORE" "$@"
}

# assert_exit CODE CMD ARGS...: run CMD (use run_strata or strata_store for
# the binary) and check that the status is CODE; stdout and stderr of a
# failing command are shown.
assert_exit() {
	local expected=$1
	shift
	if [ "$1" = run_strata ] || [ "$1" = strata_store ]; then
		"$@"
	else
		RC=0
		"$@" >"$TEST_TMP/out" 2>"$TEST_TMP/err" || RC=$?
	fi
	if [ "$RC" != "$expected" ]; then
		fail "exit status of '$*': expected $expected, got $RC"
		diag_file stdout "$TEST_TMP/out"
		diag_file stderr "$TEST_TMP/err"
		return 1
	fi
}

out() { cat "$TEST_TMP/out"; }
err() { cat "$TEST_TMP/err"; }

# assert_error_line NEEDLE: stderr has a line starting `strata: error:` that
# contains NEEDLE.
assert_error_line() {
	local needle=$1
	if ! grep -e '^strata: error:' "$TEST_TMP/err" | grep -qF -- "$needle"; then
		fail "no 'strata: error:' line naming '$needle'"
		diag_file stderr "$TEST_TMP/err"
		return 1
	fi
}

# Skip the test unless the reference corpus folder exists.
need_shared() {
	if [ ! -d "$SHARED/corpus" ] || [ ! -d "$SHARED/cases" ]; then
		skip "reference corpus not found at $SHARED (set STRATA_SHARED)"
	fi
}

is_root() {
	[ "$(id -u)" = 0 ]
}

need_root() {
	if ! is_root; then
		skip "needs root"
	fi
}

need_cmd() {
	local cmd
	for cmd in "$@"; do
		if ! command -v "$cmd" >/dev/null 2>&1; then
			skip "needs '$cmd'"
		fi
	done
}

# Fail the test unless the binary exists. Every test that runs strata calls this first.
need_strata() {
	if [ ! -x "$STRATA" ]; then
		fatal "strata binary not found at $STRATA (run make or set STRATA)"
	fi
}

# Make the directories on the way to PATH traversable by other users, so
# that run_strata_as_user can reach files under $TEST_TMP.
open_path_for_user() {
	local path=$1
	chmod 0755 "$TEST_TMP"
	while [ "$path" != "$TEST_TMP" ] && [ "$path" != / ]; do
		if [ -d "$path" ]; then
			chmod o+rx "$path"
		fi
		path=$(dirname "$path")
	done
}

# make_user_store DIR: create DIR owned by the unprivileged test user.
make_user_store() {
	local dir=$1
	mkdir -p "$dir"
	chown "$TEST_USER_ID:$TEST_USER_ID" "$dir"
	open_path_for_user "$(dirname "$dir")"
}

# run_strata_as_user ARGS...: like run_strata, but as uid/gid 65534 with no
# supplementary groups and a reset environment. That account's HOME usually
# does not exist, so callers pass --store.
run_strata_as_user() {
	need_root
	need_cmd setpriv
	RC=0
	timeout "$STRATA_TIMEOUT" setpriv --reuid="$TEST_USER_ID" --regid="$TEST_USER_ID" \
		--clear-groups --reset-env "$STRATA" "$@" \
		>"$TEST_TMP/out" 2>"$TEST_TMP/err" || RC=$?
	if [ "$RC" = 124 ]; then
		fail "strata $* (as uid $TEST_USER_ID) timed out after $STRATA_TIMEOUT s"
	fi
	return 0
}

# --- store helpers -----------------------------------------------------------
# These encode the documented store layout: STORE/layers/<hex>/root is the
# unpacked layer and STORE/images/<id-hex>/ the image record.

layer_root() {
	local digest=$1
	printf '%s/layers/%s/root' "$STORE" "${digest#sha256:}"
}

# Number of entries in STORE/layers (0 if the directory does not exist).
layer_dir_count() {
	if [ -d "$STORE/layers" ]; then
		find "$STORE/layers" -mindepth 1 -maxdepth 1 | wc -l
	else
		echo 0
	fi
}

# Print the OCI chain ID of the layers given as diff_ids, bottom first.
chain_id() {
	local chain=$1
	shift
	local diff_id
	for diff_id in "$@"; do
		chain="sha256:$(printf '%s %s' "$chain" "$diff_id" | sha256sum | cut -d' ' -f1)"
	done
	printf '%s\n' "$chain"
}

# Print the value of extended attribute NAME of PATH in hex ("0x..."), or
# nothing if it is not set.
xattr_hex() {
	local name=$1 path=$2
	getfattr --absolute-names -h -e hex -n "$name" -- "$path" 2>/dev/null |
		sed -n "s/^$name=//p"
}

# Print the value of extended attribute NAME of PATH as text, or nothing.
xattr_text() {
	local name=$1 path=$2
	getfattr --absolute-names -h --only-values -n "$name" -- "$path" 2>/dev/null
}

# Install getfattr (Debian package attr) when missing and possible.
need_getfattr() {
	if ! command -v getfattr >/dev/null 2>&1 && [ "$(id -u)" = 0 ] &&
		command -v apt-get >/dev/null 2>&1; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q attr >/dev/null 2>&1
	fi
	need_cmd getfattr
}

# --- archive builder ---------------------------------------------------------

# make_docker_archive OUT TAG LAYER_TAR...: write a docker-save style archive
# (manifest.json, config, <n>/layer.tar) whose config lists the layers'
# real diff_ids.
make_docker_archive() {
	local out=$1 tag=$2
	shift 2
	local dir
	dir=$(mktemp -d "$TEST_TMP/build.XXXXXX")

	local diff_ids=() paths=() n=0 layer
	for layer in "$@"; do
		n=$((n + 1))
		mkdir "$dir/$n"
		cp "$layer" "$dir/$n/layer.tar"
		diff_ids+=("sha256:$(sha256sum <"$layer" | cut -d' ' -f1)")
		paths+=("$n/layer.tar")
	done

	local config
	config=$(jq -cn --args '{architecture: "amd64", os: "linux", config: {},
		created: "2023-11-14T22:13:20Z",
		rootfs: {type: "layers", diff_ids: $ARGS.positional},
		history: [$ARGS.positional[] | {created: "2023-11-14T22:13:20Z", created_by: "variant layer"}]}' \
		"${diff_ids[@]}")
	local config_name
	config_name=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1).json
	printf '%s' "$config" >"$dir/$config_name"
	jq -cn --arg config "$config_name" --arg tag "$tag" --args \
		'[{Config: $config, RepoTags: [$tag], Layers: $ARGS.positional}]' "${paths[@]}" >"$dir/manifest.json"

	tar -C "$dir" -cf "$out" manifest.json "$config_name" "${paths[@]%/layer.tar}" ||
		fatal "cannot write $out"
	rm -rf "$dir"
}

# --- runner ------------------------------------------------------------------

run_one_test() {
	local name=$1 status=0 base
	base=${TMPDIR:-/tmp}
	local dir
	dir=$(mktemp -d "$base/strata-cli.XXXXXX") || {
		echo "not ok $name"
		echo "# cannot create a temporary directory under $base"
		TESTS_FAILED=$((TESTS_FAILED + 1))
		return
	}

	(
		TEST_NAME=$name
		TEST_TMP=$dir
		STORE=$dir/store
		TEST_FAILED=0
		cd "$dir" || exit 1
		"$name"
		exit "$TEST_FAILED"
	) || status=$?

	case $status in
	0)
		echo "ok $name"
		TESTS_PASSED=$((TESTS_PASSED + 1))
		;;
	"$SKIP_STATUS")
		echo "skip $name: $(cat "$dir/.skip-reason" 2>/dev/null)"
		TESTS_SKIPPED=$((TESTS_SKIPPED + 1))
		;;
	*)
		echo "not ok $name"
		TESTS_FAILED=$((TESTS_FAILED + 1))
		;;
	esac

	if [ "${STRATA_TEST_KEEP:-0}" = 1 ]; then
		echo "# kept $dir"
	elif ! rm -rf "$dir" 2>/dev/null; then
		# Read-only directories unpacked from a layer block removal by a
		# non-root user. chmod -R does not follow symlinks inside the tree.
		chmod -R u+w "$dir" 2>/dev/null
		rm -rf "$dir"
	fi
}

# Run every test_* function of the calling script, in file order, and print
# the summary line. Exits 1 if a test failed.
run_tests() {
	local script=${BASH_SOURCE[1]:-$0} name
	for name in $(grep -oE '^test_[A-Za-z0-9_]+[[:space:]]*\(\)' "$script" | tr -d '() \t'); do
		if [ -n "${STRATA_TEST_ONLY:-}" ] && [[ $name != *"$STRATA_TEST_ONLY"* ]]; then
			continue
		fi
		run_one_test "$name"
	done
	echo "$TESTS_PASSED passed, $TESTS_FAILED failed, $TESTS_SKIPPED skipped"
	[ "$TESTS_FAILED" = 0 ]
}
