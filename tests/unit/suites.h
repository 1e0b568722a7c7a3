/*
 * Unit test suites (Check), one per core module, and the helpers they share.
 */
#ifndef STRATA_UNIT_SUITES_H
#define STRATA_UNIT_SUITES_H

#include <check.h>

Suite *digest_suite(void);
Suite *index_suite(void);
Suite *path_suite(void);
Suite *ref_suite(void);
Suite *unpack_suite(void);

/*
 * Creates a new empty directory below this run's temporary directory and
 * returns its path (malloc'd).  Fails the current test if it cannot.
 */
char *unit_tempdir_new(void);

/*
 * Removes a directory made by unit_tempdir_new() with everything in it, and
 * frees `path`.  A test that fails before calling it leaves the directory to
 * main(), which removes the whole run directory at exit.
 */
void unit_tempdir_remove(char *path);

/* Prints why a test was not added to its suite (Check has no skip status). */
void unit_skip(const char *test, const char *reason);

#endif
