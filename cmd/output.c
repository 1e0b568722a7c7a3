#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../core/path.h"
#include "../core/util.h"
#include "cmd.h"

int report_error(struct strata_error *err)
{
	char *text = strata_error_format(err);
	char *safe = strata_path_escape(text ? text : "unknown error");

	fprintf(stderr, "strata: error: %s\n", safe);
	free(safe);
	free(text);
	strata_error_free(err);
	return 1;
}

int usage_error(const char *command, const char *fmt, ...)
{
	va_list ap;

	fputs("strata: usage error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (command)
		fprintf(stderr, "\nsee 'strata %s --help'\n", command);
	else
		fputs("\nsee 'strata --help'\n", stderr);
	return 2;
}

const char *format_size(uint64_t bytes, bool exact, char *buf, size_t len)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB", "PB", "EB" };
	double value = (double)bytes;
	size_t unit = 0;

	if (exact || bytes < 1000) {
		snprintf(buf, len, exact ? "%llu" : "%llu B", (unsigned long long)bytes);
		return buf;
	}
	while (value >= 1000 && unit + 1 < sizeof(units) / sizeof(units[0])) {
		value /= 1000;
		unit++;
	}
	/* Three significant digits; 999.6 kB rounds up to the next unit, not to "1e+03 kB". */
	if (value >= 999.5 && unit + 1 < sizeof(units) / sizeof(units[0])) {
		value /= 1000;
		unit++;
	}
	snprintf(buf, len, "%.3g %s", value, units[unit]);
	return buf;
}

const char *format_digest(const struct strata_digest *d, bool full, char *buf, size_t len)
{
	char hex[STRATA_DIGEST_HEX_LEN + 1];

	strata_digest_hex(d, hex);
	if (full)
		snprintf(buf, len, "sha256:%s", hex);
	else
		snprintf(buf, len, "%.12s", hex);
	return buf;
}

int print_json(json_t *json)
{
	if (json_dumpf(json, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII) < 0)
		return -1;
	fputc('\n', stdout);
	return 0;
}

const char *format_age(const char *rfc3339, char *buf, size_t len)
{
	struct tm tm = {0};
	const char *rest;
	time_t then;
	time_t now = time(NULL);
	long long diff;
	long long count;
	const char *unit;

	if (rfc3339 == NULL || rfc3339[0] == '\0') {
		snprintf(buf, len, "-");
		return buf;
	}
	rest = strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm);
	if (rest == NULL) {
		snprintf(buf, len, "%s", rfc3339);
		return buf;
	}
	then = timegm(&tm);
	diff = (long long)(now - then);
	if (diff < 0) {
		snprintf(buf, len, "in the future");
		return buf;
	}
	if (diff < 120)
		count = diff, unit = "second";
	else if (diff < 7200)
		count = diff / 60, unit = "minute";
	else if (diff < 2 * 86400)
		count = diff / 3600, unit = "hour";
	else if (diff < 60 * 86400)
		count = diff / 86400, unit = "day";
	else if (diff < 730 * 86400)
		count = diff / (30 * 86400), unit = "month";
	else
		count = diff / (365 * 86400), unit = "year";
	snprintf(buf, len, "%lld %s%s ago", count, unit, count == 1 ? "" : "s");
	return buf;
}

void table_init(struct table *t, size_t ncols, const char *const *header)
{
	t->ncols = ncols;
	t->nrows = 0;
	t->cells = NULL;
	table_add(t, header);
}

void table_add(struct table *t, const char *const *cells)
{
	char **row = xcalloc(t->ncols, sizeof(char *));

	for (size_t i = 0; i < t->ncols; i++)
		row[i] = strata_path_escape(cells[i] ? cells[i] : "");
	t->cells = xrealloc(t->cells, (t->nrows + 1) * sizeof(char **));
	t->cells[t->nrows++] = row;
}

/* Display width of a UTF-8 string, counting each code point as one column. */
static size_t display_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void table_print(struct table *t, FILE *out)
{
	size_t *widths = xcalloc(t->ncols, sizeof(size_t));

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++)
			if (display_width(t->cells[r][c]) > widths[c])
				widths[c] = display_width(t->cells[r][c]);
	for (size_t r = 0; r < t->nrows; r++) {
		bool header = r == 0;

		if (header && stdout_colour)
			fputs("\033[1m", out);
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r][c];
			bool last = c + 1 == t->ncols;

			fputs(cell, out);
			if (!last)
				for (size_t pad = display_width(cell); pad < widths[c] + 2; pad++)
					fputc(' ', out);
		}
		if (header && stdout_colour)
			fputs("\033[0m", out);
		fputc('\n', out);
	}
	free(widths);
}

void table_release(struct table *t)
{
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++)
			free(t->cells[r][c]);
		free(t->cells[r]);
	}
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

bool history_map(json_t *history, size_t nlayers, long *layer_of_entry)
{
	size_t next = 0;

	for (size_t i = 0; i < json_array_size(history); i++) {
		bool empty = json_is_true(json_object_get(json_array_get(history, i), "empty_layer"));

		layer_of_entry[i] = empty ? -1 : (long)next;
		if (!empty)
			next++;
	}
	return next == nlayers;
}

const char *history_created_by(json_t *config, size_t nlayers, size_t layer)
{
	json_t *history = json_object_get(config, "history");
	size_t n = json_array_size(history);
	long *map = xcalloc(n + 1, sizeof(long));
	const char *by = NULL;

	if (history_map(history, nlayers, map)) {
		for (size_t i = 0; i < n; i++)
			if (map[i] == (long)layer)
				by = json_string_value(json_object_get(json_array_get(history, i), "created_by"));
	}
	free(map);
	return by;
}
