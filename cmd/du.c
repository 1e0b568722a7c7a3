/*
 * strata du: where an image's bytes are and why it grew; what a view would
 * add; what the store saves by sharing.  With rules, a CI gate (exit 3).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/du.h"
#include "../core/path.h"
#include "../core/util.h"
#include "cmd.h"

/* Exit status when the image fails a --max-* or --min-* rule. */
#define EXIT_RULE_FAILED 3

const struct option_spec du_options[] = {
	{ "base", 0, "N", OPT_BASE, "treat the bottom N layers as the base image: report their waste, do not gate it" },
	{ "bytes", 0, NULL, OPT_BYTES, "print sizes as exact byte counts" },
	{ "ignore", 0, "GLOB", OPT_IGNORE, "leave paths matching GLOB out of the rules (repeatable)" },
	{ "json", 0, NULL, OPT_JSON, "print the report as JSON" },
	{ "max-layer-size", 0, "BYTES", OPT_MAX_LAYER_SIZE, "fail (exit 3) when a layer's tar is larger" },
	{ "max-wasted", 0, "BYTES|PERCENT", OPT_MAX_WASTED, "fail (exit 3) when wasted bytes exceed this (e.g. 10MB, 5%)" },
	{ "min-efficiency", 0, "RATIO", OPT_MIN_EFFICIENCY, "fail (exit 3) when live/shipped is below this (0 to 1)" },
	{ "store", 0, NULL, OPT_STORE_REPORT, "report the store: bytes on disk, per-image unique and shared bytes" },
	{ "top", 0, "N", OPT_TOP, "list the N files that waste the most bytes (default 10)" },
	{ 0 },
};

struct rules {
	bool any;
	bool wasted_percent;
	double max_wasted;          /* bytes, or percent of shipped */
	bool has_max_wasted;
	double min_efficiency;
	bool has_min_efficiency;
	uint64_t max_layer_size;
	bool has_max_layer_size;
	size_t base;
	const char **ignore;
	size_t nignore;
};

/* Parses "123", "10MB", "1.5 GiB", "4k": SI units are powers of 1000, IEC units of 1024. */
static int parse_bytes(const char *text, double *out)
{
	static const struct {
		const char *suffix;
		double factor;
	} units[] = {
		{ "", 1 }, { "b", 1 }, { "k", 1e3 }, { "kb", 1e3 }, { "m", 1e6 }, { "mb", 1e6 }, { "g", 1e9 },
		{ "gb", 1e9 }, { "t", 1e12 }, { "tb", 1e12 }, { "kib", 1024.0 }, { "mib", 1048576.0 },
		{ "gib", 1073741824.0 }, { "tib", 1099511627776.0 },
	};
	char *end;
	double v;

	/* Plain decimal only: strtod would also take "nan", "inf", exponents and hexadecimal. */
	if (text[0] < '0' || text[0] > '9' || strpbrk(text, "xXeE+-") != NULL)
		return -1;
	v = strtod(text, &end);
	if (end == text || v < 0)
		return -1;
	while (*end == ' ')
		end++;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].suffix) == 0) {
			*out = v * units[i].factor;
			return 0;
		}
	}
	return -1;
}

static int parse_count(const char *text, size_t *out)
{
	char *end;
	unsigned long v = strtoul(text, &end, 10);

	if (*text == '\0' || *end != '\0' || text[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static int parse_rules(struct cmd_args *args, struct rules *r)
{
	memset(r, 0, sizeof(*r));
	if (args->value[OPT_MAX_WASTED]) {
		const char *v = args->value[OPT_MAX_WASTED];
		size_t len = strlen(v);

		r->has_max_wasted = true;
		if (len > 0 && v[len - 1] == '%') {
			auto_free char *num = xstrndup(v, len - 1);
			char *end;

			r->wasted_percent = true;
			if (num[0] < '0' || num[0] > '9')
				return usage_error("du", "invalid --max-wasted `%s` (a percentage from 0%% to 100%%)", v);
			r->max_wasted = strtod(num, &end);
			if (end == num || *end != '\0' || r->max_wasted < 0 || r->max_wasted > 100)
				return usage_error("du", "invalid --max-wasted `%s` (a percentage from 0%% to 100%%)", v);
		} else if (parse_bytes(v, &r->max_wasted) < 0) {
			return usage_error("du", "invalid --max-wasted `%s` (bytes such as 50MB, or a percentage such as 10%%)", v);
		}
	}
	if (args->value[OPT_MIN_EFFICIENCY]) {
		char *end;

		r->has_min_efficiency = true;
		if (args->value[OPT_MIN_EFFICIENCY][0] < '0' || args->value[OPT_MIN_EFFICIENCY][0] > '9')
			return usage_error("du", "invalid --min-efficiency `%s` (a ratio from 0 to 1, such as 0.9)",
					   args->value[OPT_MIN_EFFICIENCY]);
		r->min_efficiency = strtod(args->value[OPT_MIN_EFFICIENCY], &end);
		if (end == args->value[OPT_MIN_EFFICIENCY] || *end != '\0' || r->min_efficiency < 0 || r->min_efficiency > 1)
			return usage_error("du", "invalid --min-efficiency `%s` (a ratio from 0 to 1, such as 0.9)",
					   args->value[OPT_MIN_EFFICIENCY]);
	}
	if (args->value[OPT_MAX_LAYER_SIZE]) {
		double v;

		r->has_max_layer_size = true;
		if (parse_bytes(args->value[OPT_MAX_LAYER_SIZE], &v) < 0)
			return usage_error("du", "invalid --max-layer-size `%s` (bytes such as 100MB)",
					   args->value[OPT_MAX_LAYER_SIZE]);
		r->max_layer_size = (uint64_t)v;
	}
	if (args->value[OPT_BASE] && parse_count(args->value[OPT_BASE], &r->base) < 0)
		return usage_error("du", "invalid --base `%s` (a number of layers)", args->value[OPT_BASE]);
	r->ignore = args->list[OPT_IGNORE];
	r->nignore = args->nlist[OPT_IGNORE];
	r->any = r->has_max_wasted || r->has_min_efficiency || r->has_max_layer_size;
	return 0;
}

static bool ignored(const struct rules *r, const char *path)
{
	auto_free char *absolute = xasprintf("/%s", path);

	for (size_t i = 0; i < r->nignore; i++)
		if (fnmatch(r->ignore[i], absolute, 0) == 0 || fnmatch(r->ignore[i], path, 0) == 0)
			return true;
	return false;
}

/* Waste the rules count: not ignored, and made by a layer above the base. */
static bool gated(const struct rules *r, const struct strata_waste *w)
{
	return w->hidden_layer > r->base && !ignored(r, w->path);
}

/* Says why a wasted copy is unreachable, as the report and the rule messages both print it. */
static const char *waste_why(const struct strata_waste *w)
{
	switch (w->reason) {
	case STRATA_WASTE_SUPERSEDED:
		return w->metadata_only ? "copied again unchanged (metadata-only copy-up)" : "copied again with new content";
	case STRATA_WASTE_DELETED:
		return "deleted by a whiteout";
	case STRATA_WASTE_OPAQUE:
		return "hidden by an opaque directory";
	case STRATA_WASTE_REPLACED:
		return "replaced by another type of file";
	}
	return "";
}

static char *describe_waste(const struct strata_waste *w, bool exact)
{
	char size[32];
	auto_free char *path = strata_path_escape(w->path);

	return xasprintf("%s /%s (shipped in layer %u, %s in layer %u)", format_size(w->size, exact, size, sizeof(size)),
			 path, w->added_layer, waste_why(w), w->hidden_layer);
}

struct rule_result {
	const char *rule;
	const char *unit;           /* of limit_number and value_number: "bytes", "percent" or "ratio" */
	char *limit;                /* for people */
	char *value;
	double limit_number;        /* for --json: bytes, percent or ratio, as the rule takes */
	double value_number;
	bool passed;
	json_t *offenders;
	char *line;
};

/* Evaluates the rules; fills results and returns how many failed. */
static size_t check_rules(const struct rules *r, const struct strata_du_report *rep, bool exact,
			  struct rule_result *results, size_t *nresults)
{
	uint64_t shipped = rep->shipped;
	uint64_t wasted = 0;
	size_t failed = 0;
	size_t n = 0;
	char a[32];
	char b[32];

	/* A wasted copy at an ignored path leaves the rules: it counts neither as shipped nor as wasted. */
	for (size_t i = 0; i < rep->nwaste; i++) {
		if (ignored(r, rep->waste[i].path))
			shipped -= rep->waste[i].size;
		else if (gated(r, &rep->waste[i]))
			wasted += rep->waste[i].size;
	}

	if (r->has_max_wasted || r->has_min_efficiency) {
		json_t *offenders = json_array();
		struct strbuf worst = {0};
		size_t shown = 0;

		for (size_t i = 0; i < rep->nwaste && shown < 3; i++) {
			if (!gated(r, &rep->waste[i]))
				continue;
			{
				auto_free char *d = describe_waste(&rep->waste[i], exact);

				auto_free char *path = xasprintf("/%s", rep->waste[i].path);
				auto_free char *escaped = strata_path_escape(path);
				json_t *jpath = json_string(path);

				json_array_append_new(offenders, json_pack("{s:o, s:I}", "path",
									    jpath ? jpath : json_string(escaped), "size",
									    (json_int_t)rep->waste[i].size));
				strbuf_addf(&worst, "%s%s", shown ? "; " : "", d);
				shown++;
			}
		}
		if (r->has_max_wasted) {
			double value = r->wasted_percent ? (shipped ? 100.0 * (double)wasted / (double)shipped : 0)
							 : (double)wasted;
			struct rule_result *res = &results[n++];

			res->rule = "max-wasted";
			res->unit = r->wasted_percent ? "percent" : "bytes";
			res->passed = value <= r->max_wasted;
			res->limit = r->wasted_percent ? xasprintf("%g%%", r->max_wasted)
						       : xstrdup(format_size((uint64_t)r->max_wasted, exact, a, sizeof(a)));
			res->value = r->wasted_percent ? xasprintf("%.1f%%", value)
						       : xstrdup(format_size(wasted, exact, b, sizeof(b)));
			if (!res->passed && strcmp(res->value, res->limit) == 0) {
				/* Rounded alike but over the limit: show the exact figures. */
				free(res->limit);
				free(res->value);
				res->limit = r->wasted_percent ? xasprintf("%g%%", r->max_wasted)
							       : xasprintf("%llu bytes", (unsigned long long)r->max_wasted);
				res->value = r->wasted_percent ? xasprintf("%.4f%%", value)
							       : xasprintf("%llu bytes", (unsigned long long)wasted);
			}
			res->offenders = json_incref(offenders);
			res->limit_number = r->max_wasted;
			res->value_number = value;
			if (!res->passed)
				res->line = xasprintf("wasted %s is over --max-wasted %s; largest: %s", res->value, res->limit,
						      worst.data ? worst.data : "-");
		}
		if (r->has_min_efficiency) {
			double value = shipped ? (double)(shipped - wasted) / (double)shipped : 1.0;
			struct rule_result *res = &results[n++];

			res->rule = "min-efficiency";
			res->unit = "ratio";
			res->passed = value >= r->min_efficiency;
			res->limit = xasprintf("%g", r->min_efficiency);
			res->value = xasprintf("%.3f", value);
			res->offenders = json_incref(offenders);
			res->limit_number = r->min_efficiency;
			res->value_number = value;
			if (!res->passed)
				res->line = xasprintf("efficiency %s is below --min-efficiency %s; largest waste: %s", res->value,
						      res->limit, worst.data ? worst.data : "-");
		}
		json_decref(offenders);
		strbuf_release(&worst);
	}
	if (r->has_max_layer_size) {
		struct rule_result *res = &results[n++];
		struct strbuf over = {0};
		uint64_t largest = 0;

		res->rule = "max-layer-size";
		res->unit = "bytes";
		res->offenders = json_array();
		res->passed = true;
		for (size_t i = r->base; i < rep->nlayers; i++) {
			if (rep->layers[i].tar_size > largest)
				largest = rep->layers[i].tar_size;
			if (rep->layers[i].tar_size <= r->max_layer_size)
				continue;
			res->passed = false;
			json_array_append_new(res->offenders, json_pack("{s:I, s:I}", "layer", (json_int_t)(i + 1), "size",
									(json_int_t)rep->layers[i].tar_size));
			strbuf_addf(&over, "%slayer %zu (%s)", over.len ? ", " : "", i + 1,
				    format_size(rep->layers[i].tar_size, exact, a, sizeof(a)));
		}
		res->limit = xstrdup(format_size(r->max_layer_size, exact, a, sizeof(a)));
		res->value = xstrdup(format_size(largest, exact, b, sizeof(b)));
		res->limit_number = (double)r->max_layer_size;
		res->value_number = (double)largest;
		if (!res->passed)
			res->line = xasprintf("%s over --max-layer-size %s", over.data, res->limit);
		strbuf_release(&over);
	}
	for (size_t i = 0; i < n; i++)
		failed += !results[i].passed;
	*nresults = n;
	return failed;
}

static void release_results(struct rule_result *results, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(results[i].limit);
		free(results[i].value);
		free(results[i].line);
		json_decref(results[i].offenders);
	}
}

static const char *percent(uint64_t part, uint64_t whole, char *buf, size_t len)
{
	snprintf(buf, len, "%.1f %%", whole ? 100.0 * (double)part / (double)whole : 0.0);
	return buf;
}

/* Says in words what each layer cost beyond new files, for people learning how images grow. */
static void print_layer_notes(const struct strata_du_report *rep, bool exact)
{
	bool any = false;

	for (size_t i = 0; i < rep->nlayers; i++) {
		const struct strata_du_layer *l = &rep->layers[i];
		char a[32];
		const char *on = stdout_colour ? "\033[1;33m" : "";
		const char *off = stdout_colour ? "\033[0m" : "";

		if (l->copyup_bytes) {
			printf("%slayer %zu ships %s again to change the content of %llu file%s%s\n", any ? "" : "\n", i + 1,
			       format_size(l->copyup_bytes, exact, a, sizeof(a)), (unsigned long long)l->copyup_files,
			       l->copyup_files == 1 ? "" : "s", "");
			any = true;
		}
		if (l->meta_bytes) {
			printf("%s%slayer %zu ships %s again for %llu file%s whose content did not change "
			       "(chmod, chown or touch)%s\n", any ? "" : "\n", on, i + 1,
			       format_size(l->meta_bytes, exact, a, sizeof(a)), (unsigned long long)l->meta_files,
			       l->meta_files == 1 ? "" : "s", off);
			any = true;
		}
		if (l->hidden_by_whiteouts) {
			printf("%s%slayer %zu deletes or hides %s that still ship in the layers below: the image did not "
			       "shrink%s\n", any ? "" : "\n", on, i + 1,
			       format_size(l->hidden_by_whiteouts, exact, a, sizeof(a)), off);
			any = true;
		}
	}
}

static void print_image_report(const struct strata_image *image, const struct strata_du_report *rep, size_t top,
			       bool exact)
{
	static const char *const header[] = { "#", "SIZE", "ADDED", "COPY-UP", "META-ONLY", "DELETES", "HIDES",
					      "CREATED BY" };
	struct table table;
	char a[32];
	char b[32];
	char c[32];

	table_init(&table, 8, header);
	for (size_t i = 0; i < rep->nlayers; i++) {
		const struct strata_du_layer *l = &rep->layers[i];
		char pos[24];
		char size[32];
		char added[32];
		char copyup[32];
		char meta[32];
		char deletes[32];
		char hides[32];
		auto_free char *by = xstrdup(history_created_by(image->config, image->nlayers, i) ?: "");
		const char *cells[8] = { pos, size, added, copyup, meta, deletes, hides, by };

		if (strlen(by) > 48)
			strcpy(by + 45, "...");
		snprintf(pos, sizeof(pos), "%zu", i + 1);
		format_size(l->tar_size, exact, size, sizeof(size));
		format_size(l->added_bytes, exact, added, sizeof(added));
		format_size(l->copyup_bytes, exact, copyup, sizeof(copyup));
		format_size(l->meta_bytes, exact, meta, sizeof(meta));
		snprintf(deletes, sizeof(deletes), "%llu", (unsigned long long)(l->whiteouts + l->opaque_dirs));
		format_size(l->hidden_bytes, exact, hides, sizeof(hides));
		table_add(&table, cells);
	}
	table_print(&table, stdout);
	table_release(&table);
	print_layer_notes(rep, exact);

	printf("\nimage size   %s uncompressed, %s compressed, %zu layer%s\n",
	       format_size(rep->tar_size, exact, a, sizeof(a)), format_size(rep->compressed_size, exact, b, sizeof(b)),
	       rep->nlayers, rep->nlayers == 1 ? "" : "s");
	printf("file bytes   %s shipped, %s live, %s wasted (%s)\n", format_size(rep->shipped, exact, a, sizeof(a)),
	       format_size(rep->live, exact, b, sizeof(b)), format_size(rep->wasted, exact, c, sizeof(c)),
	       percent(rep->wasted, rep->shipped, (char[16]){0}, 16));
	printf("efficiency   %s (live / shipped)\n", percent(rep->live, rep->shipped, (char[16]){0}, 16));

	if (rep->nwaste > 0 && top > 0) {
		printf("\nlargest waste: bytes that ship but that the final tree cannot see\n");
		for (size_t i = 0; i < rep->nwaste && i < top; i++) {
			const struct strata_waste *w = &rep->waste[i];
			auto_free char *path = strata_path_escape(w->path);
			bool highlight = stdout_colour && (w->metadata_only || w->reason == STRATA_WASTE_DELETED);

			printf("  %s%9s  /%s  shipped in layer %u, %s in layer %u%s\n", highlight ? "\033[1;33m" : "",
			       format_size(w->size, exact, a, sizeof(a)), path, w->added_layer, waste_why(w), w->hidden_layer,
			       highlight ? "\033[0m" : "");
		}
	}
}

static json_t *image_report_json(const struct strata_image *image, const struct strata_du_report *rep, size_t top)
{
	json_t *layers = json_array();
	json_t *waste = json_array();
	json_t *tags = json_array();
	char id[STRATA_DIGEST_STR_LEN];

	strata_digest_string(&image->id, id);
	for (size_t t = 0; t < image->ntags; t++)
		json_array_append_new(tags, json_string(image->tags[t]));
	for (size_t i = 0; i < rep->nlayers; i++) {
		const struct strata_du_layer *l = &rep->layers[i];
		char diff[STRATA_DIGEST_STR_LEN];
		json_t *o;

		strata_digest_string(&image->layers[i].diff_id, diff);
		o = json_pack("{s:I, s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			      "position", (json_int_t)(i + 1), "diff_id", diff, "created_by",
			      history_created_by(image->config, image->nlayers, i), "size", (json_int_t)l->tar_size,
			      "compressed_size", (json_int_t)l->compressed_size, "added_bytes", (json_int_t)l->added_bytes,
			      "added_files", (json_int_t)l->added_files, "copyup_bytes", (json_int_t)l->copyup_bytes,
			      "copyup_files", (json_int_t)l->copyup_files, "metadata_only_bytes", (json_int_t)l->meta_bytes,
			      "metadata_only_files", (json_int_t)l->meta_files, "whiteouts", (json_int_t)l->whiteouts,
			      "opaque_dirs", (json_int_t)l->opaque_dirs, "hidden_bytes", (json_int_t)l->hidden_bytes,
			      "hidden_files", (json_int_t)l->hidden_files);
		json_array_append_new(layers, o);
	}
	for (size_t i = 0; i < rep->nwaste && i < top; i++) {
		const struct strata_waste *w = &rep->waste[i];
		auto_free char *path = xasprintf("/%s", w->path);
		json_t *jpath = json_string(path);

		if (jpath == NULL) {
			auto_free char *escaped = strata_path_escape(path);

			jpath = json_string(escaped);
		}
		json_array_append_new(waste, json_pack("{s:o, s:I, s:I, s:I, s:s, s:b}", "path", jpath, "size",
						       (json_int_t)w->size, "added_layer", (json_int_t)w->added_layer,
						       "hidden_layer", (json_int_t)w->hidden_layer, "reason",
						       strata_waste_reason_name(w->reason), "metadata_only", w->metadata_only));
	}
	return json_pack("{s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:f, s:o}", "image", id, "tags", tags, "layers", layers,
			 "size", (json_int_t)rep->tar_size, "compressed_size", (json_int_t)rep->compressed_size,
			 "shipped", (json_int_t)rep->shipped, "live", (json_int_t)rep->live, "wasted",
			 (json_int_t)rep->wasted, "efficiency", rep->shipped ? (double)rep->live / (double)rep->shipped : 1.0,
			 "top_waste", waste);
}

static int du_image(struct strata_store *store, struct cmd_args *args, const struct rules *rules, size_t top)
{
	struct strata_error *err = NULL;
	struct strata_digest id;
	struct strata_image *image;
	struct strata_du_report rep;
	struct rule_result results[3] = {0};
	size_t nresults = 0;
	size_t failed;
	bool exact = args->count[OPT_BYTES] > 0;

	if (strata_store_resolve_image(store, args->argv[0], &id, &err) < 0)
		return report_error(err);
	image = strata_image_load(store, &id, &err);
	if (image == NULL)
		return report_error(err);
	if (rules->base > image->nlayers) {
		int rc = usage_error("du", "--base %zu is more than the %zu layers of `%s`", rules->base, image->nlayers,
				     args->argv[0]);

		strata_image_free(image);
		return rc;
	}
	if (strata_du_image(store, image, &rep, &err) < 0) {
		strata_image_free(image);
		return report_error(err);
	}
	failed = check_rules(rules, &rep, exact, results, &nresults);

	if (args->count[OPT_JSON]) {
		json_t *json = image_report_json(image, &rep, top);

		if (rules->any) {
			json_t *list = json_array();

			for (size_t i = 0; i < nresults; i++)
				json_array_append_new(list, json_pack("{s:s, s:s, s:f, s:f, s:b, s:O}", "rule",
								      results[i].rule, "unit", results[i].unit, "limit",
								      results[i].limit_number, "value", results[i].value_number,
								      "passed", results[i].passed, "offenders",
								      results[i].offenders));
			json_object_set_new(json, "rules", list);
		}
		print_json(json);
		json_decref(json);
	} else {
		print_image_report(image, &rep, top, exact);
	}
	for (size_t i = 0; i < nresults; i++)
		if (!results[i].passed)
			fprintf(stderr, "strata: du: %s: %s\n", results[i].rule, results[i].line);
	release_results(results, nresults);
	strata_du_report_release(&rep);
	strata_image_free(image);
	return failed ? EXIT_RULE_FAILED : 0;
}

static int du_view(struct strata_store *store, struct cmd_args *args, const struct strata_view *view)
{
	struct strata_error *err = NULL;
	struct strata_du_view out;
	bool exact = args->count[OPT_BYTES] > 0;
	char a[32];
	char b[32];
	uint64_t would_add;

	if (strata_du_view(store, view, &out, NULL, NULL, &err) < 0)
		return report_error(err);
	would_add = out.added_bytes + out.copyup_bytes + out.meta_bytes;
	if (args->count[OPT_JSON]) {
		json_t *json = json_pack("{s:s, s:{s:I, s:I}, s:{s:I, s:I}, s:{s:I, s:I}, s:{s:I, s:I}, s:I, s:I}",
					 "view", view->name,
					 "added", "files", (json_int_t)out.added_files, "bytes", (json_int_t)out.added_bytes,
					 "copyup", "files", (json_int_t)out.copyup_files, "bytes", (json_int_t)out.copyup_bytes,
					 "metadata_only", "files", (json_int_t)out.meta_files, "bytes", (json_int_t)out.meta_bytes,
					 "deleted", "paths", (json_int_t)out.whiteouts, "bytes_still_shipped",
					 (json_int_t)out.whiteout_bytes,
					 "other_changes", (json_int_t)out.other_changes, "would_add", (json_int_t)would_add);

		print_json(json);
		json_decref(json);
		return 0;
	}
	printf("view %s: what a layer made from it would ship\n", view->name);
	printf("  new files               %6llu  %s\n", (unsigned long long)out.added_files,
	       format_size(out.added_bytes, exact, a, sizeof(a)));
	printf("  full-file copy-ups      %6llu  %s  (content changed)\n", (unsigned long long)out.copyup_files,
	       format_size(out.copyup_bytes, exact, a, sizeof(a)));
	printf("  %smetadata-only copy-ups  %6llu  %s  (chmod, chown or touch copied the whole file)%s\n",
	       stdout_colour && out.meta_files ? "\033[1;33m" : "", (unsigned long long)out.meta_files,
	       format_size(out.meta_bytes, exact, a, sizeof(a)), stdout_colour && out.meta_files ? "\033[0m" : "");
	printf("  %sdeletions (whiteouts)   %6llu  %s still shipped in the image's layers, freed: 0 B%s\n",
	       stdout_colour && out.whiteout_bytes ? "\033[1;33m" : "", (unsigned long long)out.whiteouts,
	       format_size(out.whiteout_bytes, exact, b, sizeof(b)), stdout_colour && out.whiteout_bytes ? "\033[0m" : "");
	printf("  other changes           %6llu  (directories, links, devices)\n",
	       (unsigned long long)out.other_changes);
	printf("committed, this view would add %s to the image and free nothing\n",
	       format_size(would_add, exact, a, sizeof(a)));
	return 0;
}

static int du_store(struct strata_store *store, struct cmd_args *args)
{
	static const char *const header[] = { "REPOSITORY:TAG", "IMAGE ID", "LAYERS", "SIZE", "UNIQUE", "SHARED" };
	struct strata_error *err = NULL;
	struct strata_digest *ids = NULL;
	size_t count = 0;
	json_t *usage;
	json_t *sizes = json_object();      /* layer key -> tar size */
	json_t *list = json_array();
	struct table table;
	uint64_t logical = 0;
	uint64_t stored = 0;
	uint64_t disk;
	bool exact = args->count[OPT_BYTES] > 0;
	char a[32];
	char b[32];
	char c[32];
	int rc = 0;

	if (strata_store_list_images(store, &ids, &count, &err) < 0 || (usage = strata_store_layer_usage(store, &err)) == NULL) {
		json_decref(sizes);
		json_decref(list);
		free(ids);
		return report_error(err);
	}
	table_init(&table, 6, header);
	for (size_t i = 0; i < count; i++) {
		struct strata_image *image = strata_image_load(store, &ids[i], &err);
		uint64_t unique = 0;
		uint64_t shared = 0;
		uint64_t size = 0;
		char id[STRATA_DIGEST_STR_LEN];
		char shortid[16];
		char layers[16];
		json_t *tags = json_array();
		json_t *seen_keys = json_object();

		if (image == NULL) {
			rc = report_error(err);
			err = NULL;
			continue;
		}
		for (size_t l = 0; l < image->nlayers; l++) {
			char key[STRATA_DIGEST_HEX_LEN + 1];

			strata_digest_hex(&image->layers[l].key, key);
			size += image->layers[l].tar_size;
			if (json_object_get(seen_keys, key))
				continue;  /* a layer listed twice is stored once */
			json_object_set_new(seen_keys, key, json_true());
			json_object_set_new(sizes, key, json_integer((json_int_t)image->layers[l].tar_size));
			if (json_integer_value(json_object_get(usage, key)) > 1)
				shared += image->layers[l].tar_size;
			else
				unique += image->layers[l].tar_size;
		}
		json_decref(seen_keys);
		logical += size;
		strata_digest_string(&image->id, id);
		snprintf(shortid, sizeof(shortid), "%.12s", id + 7);
		snprintf(layers, sizeof(layers), "%zu", image->nlayers);
		for (size_t t = 0; t < image->ntags; t++)
			json_array_append_new(tags, json_string(image->tags[t]));
		json_array_append_new(list, json_pack("{s:s, s:o, s:I, s:I, s:I, s:I}", "id", id, "tags", tags, "layers",
						      (json_int_t)image->nlayers, "size", (json_int_t)size, "unique",
						      (json_int_t)unique, "shared", (json_int_t)shared));
		{
			const char *cells[6] = { image->ntags ? image->tags[0] : "<none>", shortid, layers,
						 format_size(size, exact, a, sizeof(a)), format_size(unique, exact, b, sizeof(b)),
						 format_size(shared, exact, c, sizeof(c)) };

			table_add(&table, cells);
		}
		strata_image_free(image);
	}
	{
		const char *key;
		json_t *v;

		json_object_foreach(sizes, key, v)
			stored += (uint64_t)json_integer_value(v);
	}
	disk = dir_usage_at(store->dirfd, true);

	if (args->count[OPT_JSON]) {
		json_t *json = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o}", "store", store->path, "disk_bytes",
					 (json_int_t)disk, "layers", (json_int_t)json_object_size(sizes), "logical_bytes",
					 (json_int_t)logical, "stored_bytes", (json_int_t)stored, "saved_bytes",
					 (json_int_t)(logical - stored), "images", json_incref(list));

		print_json(json);
		json_decref(json);
	} else {
		table_print(&table, stdout);
		printf("\nstore %s: %s on disk\n", store->path, format_size(disk, exact, a, sizeof(a)));
		printf("images %s in all, layers stored once %s (%zu layers): sharing saves %s\n",
		       format_size(logical, exact, a, sizeof(a)), format_size(stored, exact, b, sizeof(b)),
		       json_object_size(sizes), format_size(logical - stored, exact, c, sizeof(c)));
	}
	table_release(&table);
	json_decref(sizes);
	json_decref(list);
	json_decref(usage);
	free(ids);
	return rc;
}

int cmd_du(struct strata_store *store, struct cmd_args *args)
{
	struct rules rules;
	size_t top = 10;
	int rc;

	rc = parse_rules(args, &rules);
	if (rc != 0)
		return rc;
	if (args->value[OPT_TOP] && parse_count(args->value[OPT_TOP], &top) < 0)
		return usage_error("du", "invalid --top `%s` (a number of files)", args->value[OPT_TOP]);
	if (args->count[OPT_STORE_REPORT]) {
		if (rules.any || args->value[OPT_BASE] || args->nlist[OPT_IGNORE] || args->value[OPT_TOP])
			return usage_error("du", "--base, --ignore, --top and the --max-* and --min-* rules apply to "
					   "images, not to the --store report");
		if (args->argc != 0)
			return usage_error("du", "--store reports the whole store and takes no IMAGE or VIEW "
					   "(give the store's location before the command: strata --store DIR du --store)");
		return du_store(store, args);
	}
	if (args->argc != 1)
		return usage_error("du", "give one IMAGE or VIEW, or --store");
	if (strata_view_exists(store, args->argv[0])) {
		struct strata_view view;
		struct strata_error *err = NULL;

		if (rules.any || args->value[OPT_BASE] || args->nlist[OPT_IGNORE] || args->value[OPT_TOP])
			return usage_error("du", "--base, --ignore, --top and the --max-* and --min-* rules apply to "
					   "images, not to views");
		if (strata_view_load(store, args->argv[0], &view, &err) < 0)
			return report_error(err);
		rc = du_view(store, args, &view);
		strata_view_release(&view);
		return rc;
	}
	{
		struct strata_digest id;
		struct strata_error *err = NULL;

		if (strata_store_resolve_image(store, args->argv[0], &id, &err) < 0) {
			strata_error_free(err);
			err = NULL;
			strata_error_set(&err, 0, "no view or image named `%s` (see `strata views` and `strata images`)",
					 args->argv[0]);
			return report_error(err);
		}
	}
	return du_image(store, args, &rules, top);
}
