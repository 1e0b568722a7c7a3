/*
 * strata diff: what a view changed, what a layer did, how two images differ.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/diff.h"
#include "../core/path.h"
#include "../core/util.h"
#include "cmd.h"

const struct option_spec diff_options[] = {
	{ "bytes", 0, NULL, OPT_BYTES, "print sizes as exact byte counts" },
	{ "json", 0, NULL, OPT_JSON, "print one JSON object per change (JSON Lines)" },
	{ "layer", 0, "N", OPT_LAYER, "show what layer N of IMAGE did (1 = bottom, -1 = top)" },
	{ "long", 0, NULL, OPT_LONG, "add the kind of change, sizes before and after, and the source layer" },
	{ "name-only", 0, NULL, OPT_NAME_ONLY, "print paths only" },
	{ "null", 'z', NULL, OPT_NULL, "end each line with NUL instead of a newline (with --name-only or plain)" },
	{ "stat", 0, NULL, OPT_STAT, "print counts and bytes per kind of change" },
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ 0 },
};

enum stat_bucket { BUCKET_ADDED, BUCKET_CONTENT, BUCKET_METADATA, BUCKET_OTHER, BUCKET_DELETED, BUCKET_COUNT };

struct printer {
	struct cmd_args *args;
	char end;                   /* line terminator */
	uint64_t counts[BUCKET_COUNT];
	uint64_t bytes[BUCKET_COUNT];
};

static const char *type_name(enum strata_entry_type type)
{
	return strata_entry_type_name(type);
}

static const char *change_name(const struct strata_change *c)
{
	if (c->kind == STRATA_CHANGE_ADDED)
		return "added";
	if (c->kind == STRATA_CHANGE_DELETED)
		return "deleted";
	return strata_change_detail_name(c->detail);
}

/* Returns the path with a leading "/" as raw bytes (malloc'd). */
static char *absolute_path(const struct strata_change *c)
{
	char *p = xmalloc(c->path_len + 2);

	p[0] = '/';
	memcpy(p + 1, c->path, c->path_len);
	p[c->path_len + 1] = '\0';
	return p;
}

static json_t *side_json(const struct strata_change_side *side)
{
	char mode[8];

	if (!side->present)
		return json_null();
	snprintf(mode, sizeof(mode), "%04o", side->mode & 07777);
	return json_pack("{s:s, s:I, s:s, s:i}", "type", type_name(side->type), "size", (json_int_t)side->size,
			 "mode", mode, "layer", side->layer);
}

static char *base64(const unsigned char *data, size_t len)
{
	static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	struct strbuf out = {0};

	strbuf_append(&out, "", 0);
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)data[i] << 16;
		char quad[4];

		if (i + 1 < len)
			v |= (uint32_t)data[i + 1] << 8;
		if (i + 2 < len)
			v |= data[i + 2];
		quad[0] = table[(v >> 18) & 63];
		quad[1] = table[(v >> 12) & 63];
		quad[2] = i + 1 < len ? table[(v >> 6) & 63] : '=';
		quad[3] = i + 2 < len ? table[v & 63] : '=';
		strbuf_append(&out, quad, 4);
	}
	return out.data;
}

static void print_json_change(const struct strata_change *c)
{
	auto_free char *path = absolute_path(c);
	json_t *path_value = json_string(path);  /* NULL when the bytes are not UTF-8 */
	json_t *obj = json_object();
	char kind[2] = { (char)c->kind, '\0' };

	if (path_value == NULL) {
		/* Not UTF-8: an escaped form for people, the exact bytes in base64 for programs. */
		auto_free char *escaped = strata_path_escape(path);
		auto_free char *raw = base64((const unsigned char *)path, strlen(path));

		json_object_set_new(obj, "path", json_string(escaped));
		json_object_set_new(obj, "path_base64", json_string(raw));
	} else {
		json_object_set_new(obj, "path", path_value);
	}
	json_object_set_new(obj, "kind", json_string(kind));
	json_object_set_new(obj, "change", json_string(change_name(c)));
	json_object_set_new(obj, "before", side_json(&c->before));
	json_object_set_new(obj, "after", side_json(&c->after));
	json_dumpf(obj, stdout, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(obj);
}

static enum stat_bucket bucket_of(const struct strata_change *c)
{
	if (c->kind == STRATA_CHANGE_ADDED)
		return BUCKET_ADDED;
	if (c->kind == STRATA_CHANGE_DELETED)
		return BUCKET_DELETED;
	if (c->detail == STRATA_DETAIL_CONTENT || c->detail == STRATA_DETAIL_WRITTEN)
		return BUCKET_CONTENT;
	if (c->detail == STRATA_DETAIL_METADATA || c->detail == STRATA_DETAIL_REWRITTEN)
		return BUCKET_METADATA;
	return BUCKET_OTHER;
}

static void print_long(const struct strata_change *c, const char *shown, bool exact)
{
	char before[32];
	char after[32];

	printf("%c %s  %s", (char)c->kind, shown, change_name(c));
	if (c->before.present && c->after.present && c->before.type != c->after.type)
		printf(" (%s -> %s)", type_name(c->before.type), type_name(c->after.type));
	/* Directory sizes mean nothing here; files and links show bytes before and after. */
	if (c->before.present && c->after.present && c->after.type != STRATA_ENTRY_DIR)
		printf(", %s -> %s", format_size(c->before.size, exact, before, sizeof(before)),
		       format_size(c->after.size, exact, after, sizeof(after)));
	else if (c->after.present && c->after.type != STRATA_ENTRY_DIR)
		printf(", %s", format_size(c->after.size, exact, after, sizeof(after)));
	else if (!c->after.present && c->before.type != STRATA_ENTRY_DIR)
		printf(", %s", format_size(c->before.size, exact, before, sizeof(before)));
	if (c->after.layer)
		printf(", in layer %d", c->after.layer);
	if (c->before.present && c->before.layer)
		printf(", %s layer %d", c->after.layer ? "over" : "from", c->before.layer);
	putchar('\n');
}

static int print_change(void *data, const struct strata_change *c)
{
	struct printer *p = data;
	struct cmd_args *args = p->args;
	auto_free char *path = NULL;
	auto_free char *shown = NULL;
	enum stat_bucket b = bucket_of(c);

	p->counts[b]++;
	p->bytes[b] += c->kind == STRATA_CHANGE_DELETED ? c->before.size : c->after.size;
	if (args->count[OPT_STAT])
		return 0;
	if (args->count[OPT_JSON]) {
		print_json_change(c);
		return 0;
	}
	path = absolute_path(c);
	/* With -z the exact bytes go out, since NUL ends each record. */
	shown = args->count[OPT_NULL] ? xstrdup(path) : strata_path_escape(path);
	if (args->count[OPT_NAME_ONLY])
		printf("%s%c", shown, p->end);
	else if (args->count[OPT_LONG])
		print_long(c, shown, args->count[OPT_BYTES] > 0);
	else
		printf("%c %s%c", (char)c->kind, shown, p->end);
	return 0;
}

static void print_stat(const struct printer *p, bool json, bool exact)
{
	static const char *const names[BUCKET_COUNT] = { "added", "content", "metadata", "type or link", "deleted" };
	static const char *const keys[BUCKET_COUNT] = { "added", "content", "metadata", "other", "deleted" };

	if (json) {
		json_t *obj = json_object();

		for (int b = 0; b < BUCKET_COUNT; b++)
			json_object_set_new(obj, keys[b], json_pack("{s:I, s:I}", "paths", (json_int_t)p->counts[b],
								    "bytes", (json_int_t)p->bytes[b]));
		print_json(obj);
		json_decref(obj);
		return;
	}
	for (int b = 0; b < BUCKET_COUNT; b++) {
		char size[32];

		printf("%-13s %8llu %s  %s\n", names[b], (unsigned long long)p->counts[b],
		       p->counts[b] == 1 ? "path " : "paths",
		       format_size(p->bytes[b], exact, size, sizeof(size)));
	}
}

static int parse_layer(const char *text, size_t nlayers, size_t *out)
{
	char *end;
	long n = strtol(text, &end, 10);

	if (*text == '\0' || *end != '\0' || n == 0)
		return -1;
	if (n < 0)
		n += (long)nlayers + 1;
	if (n < 1 || (size_t)n > nlayers)
		return -1;
	*out = (size_t)n;
	return 0;
}

static int diff_images(struct strata_store *store, struct cmd_args *args, struct printer *p)
{
	struct strata_error *err = NULL;
	struct strata_digest id1;
	struct strata_digest id2;
	struct strata_image *image1 = NULL;
	struct strata_image *image2 = NULL;
	struct strata_tree before = {0};
	struct strata_tree after = {0};
	int rc = 1;

	if (strata_store_resolve_image(store, args->argv[0], &id1, &err) < 0)
		return report_error(err);
	image1 = strata_image_load(store, &id1, &err);
	if (image1 == NULL)
		return report_error(err);

	if (args->value[OPT_LAYER]) {
		size_t n;

		if (args->argc != 1) {
			strata_image_free(image1);
			return usage_error("diff", "--layer takes one image");
		}
		if (parse_layer(args->value[OPT_LAYER], image1->nlayers, &n) < 0) {
			rc = usage_error("diff", "invalid --layer `%s`: `%s` has layers 1 to %zu (or -1 to -%zu)",
					 args->value[OPT_LAYER], args->argv[0], image1->nlayers, image1->nlayers);
			strata_image_free(image1);
			return rc;
		}
		if (strata_tree_load(store, image1, n - 1, &before, &err) < 0 ||
		    strata_tree_load(store, image1, n, &after, &err) < 0)
			goto out;
	} else {
		if (strata_store_resolve_image(store, args->argv[1], &id2, &err) < 0)
			goto out;
		image2 = strata_image_load(store, &id2, &err);
		if (image2 == NULL)
			goto out;
		if (strata_tree_load(store, image1, image1->nlayers, &before, &err) < 0 ||
		    strata_tree_load(store, image2, image2->nlayers, &after, &err) < 0)
			goto out;
	}
	if (strata_diff_trees(&before, &after, print_change, p, &err) != 0)
		goto out;
	rc = 0;
out:
	if (err)
		rc = report_error(err);
	strata_tree_release(&before);
	strata_tree_release(&after);
	strata_image_free(image1);
	strata_image_free(image2);
	return rc;
}

int cmd_diff(struct strata_store *store, struct cmd_args *args)
{
	struct printer p = { .args = args, .end = args->count[OPT_NULL] ? '\0' : '\n' };
	struct strata_error *err = NULL;
	int modes = (args->count[OPT_LONG] > 0) + (args->count[OPT_STAT] > 0) + (args->count[OPT_NAME_ONLY] > 0);
	int rc;

	if (modes > 1)
		return usage_error("diff", "choose one of --long, --stat and --name-only");
	if (args->count[OPT_NULL] && (args->count[OPT_LONG] || args->count[OPT_STAT] || args->count[OPT_JSON]))
		return usage_error("diff", "-z goes with the plain or --name-only output");
	if (args->count[OPT_JSON] && (args->count[OPT_LONG] || args->count[OPT_NAME_ONLY]))
		return usage_error("diff", "--json already carries every detail; drop --long or --name-only");

	if (args->argc == 1 && !args->value[OPT_LAYER] && strata_view_exists(store, args->argv[0])) {
		struct strata_view view;

		if (strata_view_load(store, args->argv[0], &view, &err) < 0)
			return report_error(err);
		rc = strata_diff_view(store, &view, args->count[OPT_LONG] || args->count[OPT_STAT] ||
				      args->count[OPT_JSON], print_change, &p, &err);
		strata_view_release(&view);
		if (rc != 0)
			return report_error(err);
	} else if (args->argc == 2 || args->value[OPT_LAYER]) {
		rc = diff_images(store, args, &p);
		if (rc != 0)
			return rc;
	} else {
		struct strata_digest id;

		if (strata_store_resolve_image(store, args->argv[0], &id, &err) < 0) {
			strata_error_free(err);
			err = NULL;
			strata_error_set(&err, 0, "no view or image named `%s` (see `strata views` and `strata images`)",
					 args->argv[0]);
			return report_error(err);
		}
		return usage_error("diff", "`%s` is an image, not a view; compare images with `strata diff IMAGE1 "
				   "IMAGE2` or show a layer with `strata diff IMAGE --layer N`", args->argv[0]);
	}
	if (args->count[OPT_STAT])
		print_stat(&p, args->count[OPT_JSON] > 0, args->count[OPT_BYTES] > 0);
	return 0;
}
