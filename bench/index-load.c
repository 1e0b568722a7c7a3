/*
 * Layer index load benchmark.
 *
 * Writes a layer tar of FILES small regular files (1,000 per directory) with
 * libarchive and unpacks it with strata_layer_unpack() into a temporary
 * directory.  Then it loads the layer's `index` with strata_index_load() LOADS
 * times and prints the minimum, median and maximum milliseconds per load.
 * The index file is in the page cache (it was just written), so a load is
 * one read() plus the bounds checks of every record.  The first load is also
 * printed on its own.  It is the only one that faults in a fresh buffer,
 * because glibc reuses the freed buffer for the later loads.  So it is the
 * closest to what a new strata process pays.
 *
 * usage: index-load [FILES [LOADS]]     defaults: 100000 files, 50 loads
 * The temporary directory is created below $TMPDIR (default /var/tmp) and
 * removed at the end.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../core/index.h"
#include "../core/unpack.h"
#include "../core/util.h"

#define FILES_PER_DIR 1000
#define READ_CHUNK (1 << 20)
#define ENTRY_MTIME 1704067200 /* 2024-01-01T00:00:00Z */

struct file_reader {
	int fd;
	const char *path;
	char *buf;
};

static ssize_t file_read(void *ctx, const void **buf, struct strata_error **err)
{
	struct file_reader *r = ctx;
	ssize_t n;

	do {
		n = read(r->fd, r->buf, READ_CHUNK);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return strata_error_set(err, errno, "cannot read `%s`", r->path);
	*buf = r->buf;
	return n;
}

static double elapsed_ms(const struct timespec *start, const struct timespec *end)
{
	return (double)(end->tv_sec - start->tv_sec) * 1e3 + (double)(end->tv_nsec - start->tv_nsec) / 1e6;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

static void print_error(struct strata_error *err)
{
	auto_free char *msg = strata_error_format(err);

	fprintf(stderr, "index-load: %s\n", msg);
	strata_error_free(err);
}

static int write_entry(struct archive *a, struct archive_entry *e, const char *data, size_t len)
{
	if (archive_write_header(a, e) != ARCHIVE_OK)
		return -1;
	if (len > 0 && archive_write_data(a, data, len) != (la_ssize_t)len)
		return -1;
	return 0;
}

/*
 * Writes a tar of `files` regular files named dNNNN/fNNNNNNN.txt, 16 to 271
 * bytes each, with an explicit entry for each directory.
 */
static int write_layer_tar(const char *path, unsigned long files, struct strata_error **err)
{
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	char name[64];
	char content[512];
	int rc = -1;

	archive_write_set_format_pax_restricted(a);
	if (archive_write_open_filename(a, path) != ARCHIVE_OK)
		goto out;

	for (unsigned long i = 0; i < files; i++) {
		size_t len = 16 + i % 256;
		int n;

		if (i % FILES_PER_DIR == 0) {
			archive_entry_clear(e);
			snprintf(name, sizeof(name), "d%04lu/", i / FILES_PER_DIR);
			archive_entry_set_pathname(e, name);
			archive_entry_set_filetype(e, AE_IFDIR);
			archive_entry_set_perm(e, 0755);
			archive_entry_set_mtime(e, ENTRY_MTIME, 0);
			if (write_entry(a, e, NULL, 0) < 0)
				goto out;
		}

		n = snprintf(content, sizeof(content), "file %lu\n", i);
		memset(content + n, 'a' + (int)(i % 26), len - (size_t)n - 1);
		content[len - 1] = '\n';

		archive_entry_clear(e);
		snprintf(name, sizeof(name), "d%04lu/f%07lu.txt", i / FILES_PER_DIR, i);
		archive_entry_set_pathname(e, name);
		archive_entry_set_filetype(e, AE_IFREG);
		archive_entry_set_perm(e, 0644);
		archive_entry_set_size(e, (la_int64_t)len);
		archive_entry_set_mtime(e, ENTRY_MTIME, 0);
		if (write_entry(a, e, content, len) < 0)
			goto out;
	}
	if (archive_write_close(a) != ARCHIVE_OK)
		goto out;
	rc = 0;
out:
	if (rc < 0)
		strata_error_set(err, la_errno(a), "cannot write `%s` (%s)", path, archive_error_string(a));
	archive_entry_free(e);
	archive_write_free(a);
	return rc;
}

/* Unpacks the tar at tar_path into the empty directory layerfd. */
static int unpack_layer(int layerfd, const char *tar_path, struct strata_unpack_result *result,
			double *unpack_ms, struct strata_error **err)
{
	struct strata_unpack_options opts = { .layer_name = "synthetic layer", .rootless = geteuid() != 0 };
	struct file_reader reader = { .path = tar_path };
	auto_free char *buf = xmalloc(READ_CHUNK);
	auto_close int fd = open(tar_path, O_RDONLY | O_CLOEXEC);
	struct timespec start, end;

	if (fd < 0)
		return strata_error_set(err, errno, "cannot open `%s`", tar_path);
	reader.fd = fd;
	reader.buf = buf;
	strata_unpack_limits_default(&opts.limits);

	clock_gettime(CLOCK_MONOTONIC, &start);
	if (strata_layer_unpack(layerfd, file_read, &reader, &opts, result, err) < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &end);
	*unpack_ms = elapsed_ms(&start, &end);
	return 0;
}

/*
 * Loads the index `loads` times; ms[] receives each load's duration, sorted,
 * and *first_ms the first one.
 */
static int time_loads(int layerfd, unsigned long loads, double *ms, double *first_ms, uint32_t *count,
		      struct strata_error **err)
{
	for (unsigned long i = 0; i < loads; i++) {
		struct strata_index idx;
		struct timespec start, end;

		clock_gettime(CLOCK_MONOTONIC, &start);
		if (strata_index_load(layerfd, "index", &idx, err) < 0)
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &end);
		ms[i] = elapsed_ms(&start, &end);
		if (i == 0)
			*first_ms = ms[0];
		*count = idx.count;
		strata_index_release(&idx);
	}
	qsort(ms, loads, sizeof(*ms), compare_doubles);
	return 0;
}

/* Runs the benchmark in the empty directory `dir` and prints the results. */
static int run(const char *dir, unsigned long files, unsigned long loads, struct strata_error **err)
{
	auto_free char *tar_path = xasprintf("%s/layer.tar", dir);
	auto_free char *layer_path = xasprintf("%s/layer", dir);
	auto_free double *ms = xcalloc(loads, sizeof(*ms));
	auto_close int layerfd = -1;
	struct strata_unpack_result result;
	struct stat st;
	double unpack_ms = 0;
	double first_ms = 0;
	uint32_t count = 0;

	if (write_layer_tar(tar_path, files, err) < 0)
		return -1;

	if (mkdir(layer_path, 0700) < 0)
		return strata_error_set(err, errno, "cannot create `%s`", layer_path);
	layerfd = open(layer_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (layerfd < 0)
		return strata_error_set(err, errno, "cannot open `%s`", layer_path);
	if (unpack_layer(layerfd, tar_path, &result, &unpack_ms, err) < 0)
		return -1;
	if (fstatat(layerfd, "index", &st, 0) < 0)
		return strata_error_set(err, errno, "cannot stat `%s/index`", layer_path);

	if (time_loads(layerfd, loads, ms, &first_ms, &count, err) < 0)
		return -1;

	printf("layer tar: %lu files, %lu directories, %" PRIu64 " bytes, unpacked in %.1f ms\n", files,
	       (files + FILES_PER_DIR - 1) / FILES_PER_DIR, result.tar_size, unpack_ms);
	printf("index: %" PRIu32 " entries, %jd bytes\n", count, (intmax_t)st.st_size);
	printf("strata_index_load, first call: %.3f ms\n", first_ms);
	printf("strata_index_load x %lu: min %.3f ms, median %.3f ms, max %.3f ms\n", loads, ms[0],
	       loads % 2 ? ms[loads / 2] : (ms[loads / 2 - 1] + ms[loads / 2]) / 2, ms[loads - 1]);
	return 0;
}

static unsigned long parse_count(const char *arg, const char *label)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || n == 0 || n > 10000000) {
		fprintf(stderr, "index-load: invalid %s `%s`: expected a number from 1 to 10000000\n", label, arg);
		exit(2);
	}
	return n;
}

int main(int argc, char **argv)
{
	unsigned long files = 100000;
	unsigned long loads = 50;
	const char *tmp = getenv("TMPDIR");
	struct strata_error *err = NULL;
	auto_free char *dir = NULL;
	int rc;

	if (argc > 3) {
		fprintf(stderr, "usage: index-load [FILES [LOADS]]\n");
		return 2;
	}
	if (argc > 1)
		files = parse_count(argv[1], "file count");
	if (argc > 2)
		loads = parse_count(argv[2], "load count");

	if (tmp == NULL || *tmp == '\0')
		tmp = "/var/tmp";
	dir = xasprintf("%s/strata-index-load.XXXXXX", tmp);
	if (mkdtemp(dir) == NULL) {
		fprintf(stderr, "index-load: cannot create a temporary directory below `%s`: %s\n", tmp,
			strerror(errno));
		return 1;
	}

	rc = run(dir, files, loads, &err);
	if (rc < 0) {
		print_error(err);
		err = NULL;
	}
	if (rmtree_at(AT_FDCWD, dir, &err) < 0) {
		print_error(err);
		rc = -1;
	}
	return rc < 0 ? 1 : 0;
}
