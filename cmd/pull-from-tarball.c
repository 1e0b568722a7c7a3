/*
 * strata pull-from-tarball: import the images of an archive.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../core/import.h"
#include "../core/path.h"
#include "../core/ref.h"
#include "../core/util.h"
#include "cmd.h"

const struct option_spec pull_from_tarball_options[] = {
	{ "json", 0, NULL, OPT_JSON, "print the result as JSON" },
	{ "max-entries", 0, "N", OPT_MAX_ENTRIES, "reject a layer with more entries (default 4000000)" },
	{ "max-image-bytes", 0, "BYTES", OPT_MAX_IMAGE_BYTES,
	  "reject an archive whose layers hold more uncompressed bytes (default 1 TiB)" },
	{ "max-layer-bytes", 0, "BYTES", OPT_MAX_LAYER_BYTES,
	  "reject a layer with more uncompressed bytes (default 256 GiB)" },
	{ "max-path-depth", 0, "N", OPT_MAX_PATH_DEPTH, "reject entry names with more components (default 256)" },
	{ "max-path-length", 0, "N", OPT_MAX_PATH_LENGTH, "reject longer entry names, in bytes (default 4096)" },
	{ "max-xattr-size", 0, "BYTES", OPT_MAX_XATTR_SIZE, "reject a larger extended attribute value (default 65536)" },
	{ "platform", 0, "OS/ARCH[/VARIANT]", OPT_PLATFORM,
	  "pick this platform from a multi-platform index (default: the host's)" },
	{ "quiet", 'q', NULL, OPT_QUIET, "print only the image IDs" },
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ "tag", 0, "NAME:TAG", OPT_TAG, "also tag the image NAME:TAG (repeatable; one-image archives)" },
	{ 0 },
};

struct progress {
	uint64_t total;
	int64_t last_ns;
	bool shown;
};

/* Draws "[#####     ]  12.3 MB / 45.6 MB  current" on stderr, at most ten times a second. */
static void show_progress(void *data, uint64_t done, uint64_t total, const char *current)
{
	struct progress *p = data;
	int64_t now = now_ns();
	char a[32];
	char b[32];
	int width = 30;
	int filled;

	if (total)
		p->total = total;
	if (now - p->last_ns < 100000000)
		return;
	p->last_ns = now;
	filled = p->total ? (int)((double)done / (double)p->total * width) : 0;
	if (filled > width)
		filled = width;
	fprintf(stderr, "\r\033[K[%.*s%*s] %s", filled, "##############################", width - filled, "",
		format_size(done, false, a, sizeof(a)));
	if (p->total)
		fprintf(stderr, " / %s", format_size(p->total, false, b, sizeof(b)));
	if (current && current[0]) {
		auto_free char *safe = strata_path_escape(current);

		fprintf(stderr, "  %.40s", safe);
	}
	p->shown = true;
}

static json_t *result_json(const struct strata_import_result *result)
{
	json_t *images = json_array();

	for (size_t i = 0; i < result->nimages; i++) {
		const struct strata_import_image *img = &result->images[i];
		char id[STRATA_DIGEST_STR_LEN];
		json_t *tags = json_array();
		json_t *layers = json_array();

		strata_digest_string(&img->id, id);
		for (size_t t = 0; t < img->ntags; t++)
			json_array_append_new(tags, json_string(img->tags[t]));
		for (size_t l = 0; l < img->nlayers; l++) {
			char diff[STRATA_DIGEST_STR_LEN];

			strata_digest_string(&img->layers[l].diff_id, diff);
			json_array_append_new(layers, json_pack("{s:I, s:s, s:s, s:I}", "position", (json_int_t)(l + 1),
								"diff_id", diff, "status",
								img->layers[l].unpacked ? "unpacked" : "present",
								"size", (json_int_t)img->layers[l].tar_size));
		}
		json_array_append_new(images, json_pack("{s:s, s:o, s:o}", "id", id, "tags", tags, "layers", layers));
	}
	return json_pack("{s:o}", "images", images);
}

static void print_result(const struct strata_import_result *result)
{
	for (size_t i = 0; i < result->nimages; i++) {
		const struct strata_import_image *img = &result->images[i];
		char id[STRATA_DIGEST_STR_LEN];

		strata_digest_string(&img->id, id);
		printf("Loading %s (%zu layer%s)\n", img->ntags ? img->tags[0] : id, img->nlayers,
		       img->nlayers == 1 ? "" : "s");
		for (size_t l = 0; l < img->nlayers; l++) {
			char digest[32];
			char size[32];

			format_digest(&img->layers[l].diff_id, false, digest, sizeof(digest));
			if (img->layers[l].unpacked)
				printf("  layer %zu/%zu sha256:%s  unpacked  %s\n", l + 1, img->nlayers, digest,
				       format_size(img->layers[l].tar_size, false, size, sizeof(size)));
			else
				printf("  layer %zu/%zu sha256:%s  present\n", l + 1, img->nlayers, digest);
		}
		printf("Loaded image %s\n", id);
		for (size_t t = 0; t < img->ntags; t++)
			printf("Tagged %s\n", img->tags[t]);
	}
}

/* Parses a positive size with an optional SI (kB, MB, GB, TB) or IEC (KiB, MiB, GiB, TiB) suffix. */
static int parse_size(const char *text, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t factor;
	} units[] = {
		{ "", 1 }, { "B", 1 }, { "kB", 1000 }, { "KB", 1000 }, { "MB", 1000000 }, { "GB", 1000000000 },
		{ "TB", UINT64_C(1000000000000) }, { "KiB", 1024 }, { "MiB", 1 << 20 }, { "GiB", 1 << 30 },
		{ "TiB", UINT64_C(1) << 40 },
	};
	char *end;
	unsigned long long v;

	if (text[0] < '0' || text[0] > '9')
		return -1;
	v = strtoull(text, &end, 10);
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) == 0 && v > 0 && v <= UINT64_MAX / units[i].factor) {
			*out = v * units[i].factor;
			return 0;
		}
	}
	return -1;
}

static int parse_limits(struct cmd_args *args, struct strata_unpack_limits *limits)
{
	static const struct {
		enum option_id id;
		const char *name;
	} names[] = {
		{ OPT_MAX_ENTRIES, "max-entries" }, { OPT_MAX_IMAGE_BYTES, "max-image-bytes" },
		{ OPT_MAX_LAYER_BYTES, "max-layer-bytes" }, { OPT_MAX_PATH_DEPTH, "max-path-depth" },
		{ OPT_MAX_PATH_LENGTH, "max-path-length" }, { OPT_MAX_XATTR_SIZE, "max-xattr-size" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *text = args->value[names[i].id];
		uint64_t v;

		if (text == NULL)
			continue;
		if (parse_size(text, &v) < 0)
			return usage_error("pull-from-tarball", "invalid --%s `%s` (a positive number, bytes may have a "
					   "suffix such as MB or GiB)", names[i].name, text);
		switch (names[i].id) {
		case OPT_MAX_ENTRIES:
			limits->max_entries = v;
			break;
		case OPT_MAX_IMAGE_BYTES:
			limits->max_image_bytes = v;
			break;
		case OPT_MAX_LAYER_BYTES:
			limits->max_layer_bytes = v;
			break;
		case OPT_MAX_PATH_DEPTH:
			limits->max_path_depth = (size_t)v;
			break;
		case OPT_MAX_PATH_LENGTH:
			limits->max_path_length = (size_t)v;
			break;
		default:
			limits->max_xattr_size = (size_t)v;
			break;
		}
	}
	return 0;
}

int cmd_pull_from_tarball(struct strata_store *store, struct cmd_args *args)
{
	struct strata_import_options opts = {0};
	struct strata_import_result result;
	struct strata_error *err = NULL;
	struct progress progress = {0};
	char **tags = xcalloc(args->nlist[OPT_TAG] + 1, sizeof(char *));
	int rc = 0;

	for (size_t i = 0; i < args->nlist[OPT_TAG]; i++) {
		tags[i] = strata_ref_normalize(args->list[OPT_TAG][i], &err);
		if (tags[i] == NULL) {
			rc = usage_error("pull-from-tarball", "%s", err->message);
			strata_error_free(err);
			goto out;
		}
	}
	if (args->value[OPT_PLATFORM] && strchr(args->value[OPT_PLATFORM], '/') == NULL) {
		rc = usage_error("pull-from-tarball", "invalid platform `%s` (expected OS/ARCH[/VARIANT], "
				 "e.g. linux/arm64)", args->value[OPT_PLATFORM]);
		goto out;
	}

	opts.path = args->argv[0];
	opts.tags = (const char *const *)tags;
	opts.ntags = args->nlist[OPT_TAG];
	opts.platform = args->value[OPT_PLATFORM];
	strata_unpack_limits_default(&opts.limits);
	rc = parse_limits(args, &opts.limits);
	if (rc != 0)
		goto out;
	if (isatty(STDERR_FILENO) && !args->count[OPT_QUIET] && !args->count[OPT_JSON] && verbosity >= 0) {
		opts.progress = show_progress;
		opts.progress_data = &progress;
	}

	if (strata_import(store, &opts, &result, &err) < 0) {
		if (progress.shown)
			fputs("\r\033[K", stderr);
		rc = report_error(err);
		goto out;
	}
	if (progress.shown)
		fputs("\r\033[K", stderr);

	if (args->count[OPT_JSON]) {
		json_t *json = result_json(&result);

		print_json(json);
		json_decref(json);
	} else if (args->count[OPT_QUIET]) {
		for (size_t i = 0; i < result.nimages; i++) {
			char id[STRATA_DIGEST_STR_LEN];

			strata_digest_string(&result.images[i].id, id);
			printf("%s\n", id);
		}
	} else {
		print_result(&result);
	}
	strata_import_result_release(&result);
out:
	for (size_t i = 0; i < args->nlist[OPT_TAG]; i++)
		free(tags[i]);
	free(tags);
	return rc;
}
