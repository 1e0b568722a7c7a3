/* libFuzzer target: importing an archive (manifest, index and config parsing included) into a fresh store. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/import.h"
#include "../core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char tmpl[] = "/tmp/strata-fuzz-import-XXXXXX";
	struct strata_import_options opts = {0};
	struct strata_import_result result;
	struct strata_error *err = NULL;
	struct strata_store *store;
	char *archive;
	char *store_path;
	int fd;

	if (mkdtemp(tmpl) == NULL)
		abort();
	archive = xasprintf("%s/archive.tar", tmpl);
	store_path = xasprintf("%s/store", tmpl);
	fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);

	store = strata_store_open(store_path, STRATA_STORE_CREATE | STRATA_STORE_LOCK, &err);
	if (store == NULL)
		abort();
	opts.path = archive;
	strata_unpack_limits_default(&opts.limits);
	opts.limits.max_entries = 10000;
	opts.limits.max_layer_bytes = 64u << 20;
	if (strata_import(store, &opts, &result, &err) == 0)
		strata_import_result_release(&result);
	strata_error_free(err);
	err = NULL;
	strata_store_free(store);
	if (rmtree_at(AT_FDCWD, tmpl, &err) < 0)
		abort();
	free(archive);
	free(store_path);
	return 0;
}
