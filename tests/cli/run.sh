#!/usr/bin/env bash
#
# Run every tests/cli/test-*.sh script and print the total as
# `N passed, N failed, N skipped`. Exits 1 if any test failed or a script
# ended without printing its summary line.
#
# Usage: tests/cli/run.sh [SCRIPT...]   (default: all test-*.sh scripts)

set -u

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ $# -gt 0 ]; then
	scripts=("$@")
else
	scripts=("$dir"/test-*.sh)
fi

passed=0
failed=0
skipped=0
summary_re='^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$'

for script in "${scripts[@]}"; do
	echo "# $(basename "$script")"
	log=$(mktemp "${TMPDIR:-/tmp}/strata-cli-run.XXXXXX")

	status=0
	# Per-script summaries are shown as comments so that only the total has
	# the summary form.
	bash "$script" 2>&1 | tee "$log" | sed -E "s/$summary_re/# &/"
	status=${PIPESTATUS[0]}

	summary=$(grep -E "$summary_re" "$log" | tail -n 1)
	rm -f "$log"

	if [[ $summary =~ $summary_re ]]; then
		passed=$((passed + BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[2]))
		skipped=$((skipped + BASH_REMATCH[3]))
		if [ "$status" != 0 ] && [ "${BASH_REMATCH[2]}" = 0 ]; then
			echo "not ok $(basename "$script"): exit status $status without a failed test"
			failed=$((failed + 1))
		fi
	else
		echo "not ok $(basename "$script"): ended (status $status) without a summary line"
		failed=$((failed + 1))
	fi
done

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
