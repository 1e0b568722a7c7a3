#define _GNU_SOURCE
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static strata_warn_fn warn_handler;

static char *vformat(const char *fmt, va_list ap)
{
	char *text = NULL;

	if (vasprintf(&text, fmt, ap) < 0)
		return NULL;
	return text;
}

int strata_error_set(struct strata_error **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	struct strata_error *e;

	if (err == NULL || *err != NULL)
		return -1;

	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -1;
	va_start(ap, fmt);
	e->message = vformat(fmt, ap);
	va_end(ap);
	e->errnum = errnum;
	*err = e;
	return -1;
}

int strata_error_wrap(struct strata_error **err, const char *fmt, ...)
{
	va_list ap;
	char *prefix;
	char *joined = NULL;

	if (err == NULL || *err == NULL)
		return -1;

	va_start(ap, fmt);
	prefix = vformat(fmt, ap);
	va_end(ap);
	if (prefix == NULL)
		return -1;

	if (asprintf(&joined, "%s: %s", prefix, (*err)->message ? (*err)->message : "") >= 0) {
		free((*err)->message);
		(*err)->message = joined;
	}
	free(prefix);
	return -1;
}

void strata_error_free(struct strata_error *err)
{
	if (err == NULL)
		return;
	free(err->message);
	free(err);
}

char *strata_error_format(const struct strata_error *err)
{
	char *text = NULL;
	const char *message = err && err->message ? err->message : "unknown error";

	if (err && err->errnum != 0) {
		if (asprintf(&text, "%s: %s", message, strerror(err->errnum)) < 0)
			return NULL;
		return text;
	}
	return strdup(message);
}

void strata_set_warn_handler(strata_warn_fn fn)
{
	warn_handler = fn;
}

void strata_warn(const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	text = vformat(fmt, ap);
	va_end(ap);
	if (text == NULL)
		return;
	if (warn_handler)
		warn_handler(text);
	free(text);
}

void strata_bug(const char *file, int line, const char *what)
{
	fprintf(stderr, "strata: BUG: %s:%d: %s\n", file, line, what);
	abort();
}
