/*
 * strata verify: check an image's unpacked layers against their indexes.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "../core/path.h"
#include "../core/util.h"
#include "../core/verify.h"
#include "cmd.h"

const struct option_spec verify_options[] = {
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ 0 },
};

struct report_context {
	size_t layer;
	char digest[16];
};

static void print_problem(void *data, const char *path, const char *problem)
{
	struct report_context *ctx = data;
	auto_free char *safe = strata_path_escape(path);

	printf("layer %zu (%s): /%s: %s\n", ctx->layer, ctx->digest, safe, problem);
}

int cmd_verify(struct strata_store *store, struct cmd_args *args)
{
	struct strata_error *err = NULL;
	struct strata_digest id;
	struct strata_image *image;
	size_t total = 0;

	if (strata_store_resolve_image(store, args->argv[0], &id, &err) < 0)
		return report_error(err);
	image = strata_image_load(store, &id, &err);
	if (image == NULL)
		return report_error(err);
	for (size_t i = 0; i < image->nlayers; i++) {
		char hex[STRATA_DIGEST_HEX_LEN + 1];
		auto_free char *dir = NULL;
		auto_close int fd = -1;
		struct report_context ctx = { .layer = i + 1 };
		size_t problems = 0;

		strata_digest_hex(&image->layers[i].key, hex);
		snprintf(ctx.digest, sizeof(ctx.digest), "%.12s", hex);
		dir = xasprintf("layers/%s", hex);
		fd = openat(store->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || strata_layer_verify(fd, store->rootless, print_problem, &ctx, &problems, &err) < 0) {
			if (err == NULL)
				strata_error_set(&err, 0, "layer %zu (`%s/%s`) is missing from the store", i + 1,
						 store->path, dir);
			strata_image_free(image);
			return report_error(err);
		}
		total += problems;
	}
	printf("%zu layer%s checked, %zu problem%s\n", image->nlayers, image->nlayers == 1 ? "" : "s", total,
	       total == 1 ? "" : "s");
	strata_image_free(image);
	return total ? 1 : 0;
}
