/*
 * strata pull-from-tarball: import the images of an archive.
 */
#define _GNU_SOURCE
#include <stdio.h>
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
