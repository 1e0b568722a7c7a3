/*
 * Runs every unit test suite.  All temporary directories of one run live
 * below a single run directory, which main() removes at the end, because
 * under CK_FORK a failed assertion ends the test's process before its own
 * cleanup runs.
 *
 * Environment: CK_VERBOSITY (silent, minimal, normal, verbose) sets the
 * output, CK_RUN_SUITE and CK_RUN_CASE pick tests, CK_FORK=no runs every test
 * in one process (for valgrind), TMPDIR sets where the run directory goes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/error.h"
#include "../../core/util.h"
#include "suites.h"

static char run_dir[PATH_MAX];

char *unit_tempdir_new(void)
{
	char *path = xasprintf("%s/test-XXXXXX", run_dir);

	ck_assert_msg(mkdtemp(path) != NULL, "cannot create a temporary directory below `%s`", run_dir);
	return path;
}

void unit_tempdir_remove(char *path)
{
	struct strata_error *err = NULL;
	int rc = rmtree_at(AT_FDCWD, path, &err);

	ck_assert_msg(rc == 0, "cannot remove `%s`: %s", path, err ? err->message : "unknown error");
	free(path);
}

void unit_skip(const char *test, const char *reason)
{
	fprintf(stderr, "skipped: %s (%s)\n", test, reason);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	struct strata_error *err = NULL;
	SRunner *runner;
	int failed;

	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	if (snprintf(run_dir, sizeof(run_dir), "%s/strata-unit-XXXXXX", tmp) >= (int)sizeof(run_dir) ||
	    mkdtemp(run_dir) == NULL) {
		perror("strata unit tests: cannot create the run directory");
		return EXIT_FAILURE;
	}

	runner = srunner_create(digest_suite());
	srunner_add_suite(runner, index_suite());
	srunner_add_suite(runner, path_suite());
	srunner_add_suite(runner, ref_suite());
	srunner_add_suite(runner, unpack_suite());
	srunner_run_all(runner, CK_ENV);
	failed = srunner_ntests_failed(runner);
	srunner_free(runner);

	if (rmtree_at(AT_FDCWD, run_dir, &err) < 0) {
		char *message = strata_error_format(err);

		fprintf(stderr, "strata unit tests: %s\n", message ? message : "cannot remove the run directory");
		free(message);
		strata_error_free(err);
		return EXIT_FAILURE;
	}
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
