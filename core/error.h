/*
 * Error reporting for the strata core library.
 *
 * Contract: a core function that can fail returns an int (0 on success, -1 on
 * failure) or a pointer (NULL on failure) and takes `struct strata_error **err`
 * as its last argument.  On failure it stores a newly allocated error in *err
 * (unless *err already contains one, in which case the first error is kept).  On
 * success it leaves *err alone.  The caller owns the error and frees it with
 * strata_error_free().
 *
 * Messages start lower-case, have no final period, name the subject in
 * backticks, and never contain the errno text: that is appended once, by the
 * code that prints the error (see strata_error_format()).
 */
#ifndef STRATA_ERROR_H
#define STRATA_ERROR_H

#include <stdarg.h>

struct strata_error {
	int errnum;     /* errno value behind the failure, or 0 */
	char *message;  /* full message, wrapping context first */
};

/* Stores a new error in *err unless one is already there; returns -1. */
int strata_error_set(struct strata_error **err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes context ("importing `x`: ") to an existing error; returns -1. */
int strata_error_wrap(struct strata_error **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void strata_error_free(struct strata_error *err);

/* Returns the message with ": <strerror>" appended when errnum is set (malloc'd). */
char *strata_error_format(const struct strata_error *err);

/* Warning hook: the core calls it for non-fatal problems; cmd/ installs a printer. */
typedef void (*strata_warn_fn)(const char *message);
void strata_set_warn_handler(strata_warn_fn fn);
void strata_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Aborts with a message: for states that are impossible unless strata has a bug. */
_Noreturn void strata_bug(const char *file, int line, const char *what);
#define STRATA_BUG(what) strata_bug(__FILE__, __LINE__, (what))

#endif
