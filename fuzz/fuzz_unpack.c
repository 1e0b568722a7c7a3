/* libFuzzer target: applying a layer tar into a fresh temporary root. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/unpack.h"
#include "../core/util.h"

struct reader {
	const uint8_t *data;
	size_t size;
	bool done;
};

static ssize_t read_all(void *ctx, const void **buf, struct strata_error **err)
{
	struct reader *r = ctx;

	(void)err;
	if (r->done)
		return 0;
	r->done = true;
	*buf = r->data;
	return (ssize_t)r->size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char tmpl[] = "/tmp/strata-fuzz-unpack-XXXXXX";
	struct reader r = { .data = data, .size = size };
	struct strata_unpack_options opts = { .rootless = geteuid() != 0, .layer_name = "fuzz layer" };
	struct strata_unpack_result result;
	struct strata_error *err = NULL;
	int dirfd;

	if (mkdtemp(tmpl) == NULL)
		abort();
	dirfd = open(tmpl, O_RDONLY | O_DIRECTORY);
	strata_unpack_limits_default(&opts.limits);
	opts.limits.max_entries = 10000;
	opts.limits.max_layer_bytes = 64u << 20;
	if (strata_layer_unpack(dirfd, read_all, &r, &opts, &result, &err) == 0) {
		/* A layer that unpacked must rebuild into a tar without error. */
		int out = open("/dev/null", O_WRONLY);
		struct strata_error *tar_err = NULL;

		if (strata_layer_write_tar(dirfd, out, &tar_err) < 0)
			abort();
		close(out);
	}
	strata_error_free(err);
	close(dirfd);
	if (rmtree_at(AT_FDCWD, tmpl, &err) < 0)
		abort();
	return 0;
}
