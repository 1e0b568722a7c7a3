/*
 * strata demo: write the built-in teaching image, import it, and show it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/demo.h"
#include "../core/import.h"
#include "../core/util.h"
#include "cmd.h"

const struct option_spec demo_options[] = {
	{ "output", 'o', "FILE", OPT_OUTPUT, "only write the teaching image archive to FILE (- for stdout)" },
	{ "store", 0, "DIR", OPT_STORE, "store directory" },
	{ 0 },
};

static int import_demo(struct strata_store *store, const char *path)
{
	struct strata_import_options opts = { .path = path };
	struct strata_import_result result;
	struct strata_error *err = NULL;

	strata_unpack_limits_default(&opts.limits);
	if (strata_import(store, &opts, &result, &err) < 0)
		return report_error(err);
	for (size_t i = 0; i < result.nimages; i++) {
		size_t unpacked = 0;

		for (size_t l = 0; l < result.images[i].nlayers; l++)
			unpacked += result.images[i].layers[l].unpacked;
		printf("Imported %s: %zu layers, %zu unpacked, %zu already in the store\n\n", STRATA_DEMO_TAG,
		       result.images[i].nlayers, unpacked, result.images[i].nlayers - unpacked);
	}
	strata_import_result_release(&result);
	return 0;
}

int cmd_demo(struct strata_store *store, struct cmd_args *args)
{
	struct strata_error *err = NULL;
	const char *tmpdir = getenv("TMPDIR");
	auto_free char *path = NULL;
	struct cmd_args sub = {0};
	char *sub_argv[] = { (char *)STRATA_DEMO_TAG, NULL };
	int fd;
	int rc;

	if (args->value[OPT_OUTPUT]) {
		if (strata_demo_write_archive(args->value[OPT_OUTPUT], &err) < 0)
			return report_error(err);
		return 0;
	}

	path = xasprintf("%s/strata-demo-XXXXXX", tmpdir && tmpdir[0] ? tmpdir : "/tmp");
	fd = mkstemp(path);
	if (fd < 0) {
		strata_error_set(&err, errno, "cannot create a temporary file `%s`", path);
		return report_error(err);
	}
	close(fd);
	if (strata_demo_write_archive(path, &err) < 0) {
		unlink(path);
		return report_error(err);
	}
	rc = import_demo(store, path);
	unlink(path);
	if (rc != 0)
		return rc;

	printf("$ strata images\n");
	rc = cmd_images(store, &sub);
	if (rc != 0)
		return rc;
	printf("\n$ strata layers %s\n", STRATA_DEMO_TAG);
	sub.argc = 1;
	sub.argv = sub_argv;
	rc = cmd_layers(store, &sub);
	if (rc != 0)
		return rc;
	printf("\n$ strata du %s\n", STRATA_DEMO_TAG);
	return cmd_du(store, &sub);
}
