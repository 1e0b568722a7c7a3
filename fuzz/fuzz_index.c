/* libFuzzer target: loading a layer index file and looking paths up in it. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int dirfd = -1;
	struct strata_error *err = NULL;
	struct strata_index idx;
	int fd;

	if (dirfd < 0) {
		char tmpl[] = "/tmp/strata-fuzz-index-XXXXXX";

		if (mkdtemp(tmpl) == NULL)
			abort();
		dirfd = open(tmpl, O_RDONLY | O_DIRECTORY);
	}
	fd = openat(dirfd, "index", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if (strata_index_load(dirfd, "index", &idx, &err) == 0) {
		/* Every record must be readable without going out of bounds. */
		for (uint32_t i = 0; i < idx.count; i++) {
			size_t len;
			const char *path = strata_index_path(&idx, i, &len);

			strata_index_find(&idx, path, len);
			strata_index_link(&idx, i, &len);
		}
		strata_index_release(&idx);
	}
	strata_error_free(err);
	return 0;
}
