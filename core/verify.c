/*
 * Checking an unpacked layer against its index: what a view, a bug or a
 * disk fault changed in a layer directory shows up here.
 */
#define _GNU_SOURCE
#include "verify.h"

#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "digest.h"
#include "index.h"
#include "unpack.h"
#include "util.h"

struct verifier {
	const struct strata_index *idx;
	bool rootless;
	strata_problem_fn report;
	void *data;
	size_t problems;
};

static void problem(struct verifier *v, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void problem(struct verifier *v, const char *path, const char *fmt, ...)
{
	va_list ap;
	char *text = NULL;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	v->problems++;
	v->report(v->data, path, text ? text : "changed");
	free(text);
}

static void check_content(struct verifier *v, int rootfd, const char *path, const struct strata_index_record *r)
{
	auto_close int fd = strata_openat_beneath(rootfd, path, O_RDONLY);
	struct strata_sha256 *hash;
	struct strata_digest digest;
	char buf[1 << 16];
	ssize_t n;

	if (fd < 0) {
		problem(v, path, "cannot be read: %s", strerror(errno));
		return;
	}
	hash = strata_sha256_new();
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		strata_sha256_update(hash, buf, (size_t)n);
	strata_sha256_final(hash, &digest);
	strata_sha256_free(hash);
	if (n < 0)
		problem(v, path, "cannot be read: %s", strerror(errno));
	else if (memcmp(digest.bytes, r->sha256, 32) != 0)
		problem(v, path, "content differs from the index");
}

static void check_record(struct verifier *v, int rootfd, uint32_t n)
{
	const struct strata_index_record *r = &v->idx->records[n];
	size_t len;
	const char *raw = strata_index_path(v->idx, n, &len);
	auto_free char *path = xstrndup(raw, len);
	struct stat st;
	mode_t perm_mask = 07777;

	if (r->flags & STRATA_ENTRY_NOT_CREATED)
		return;
	if (fstatat(rootfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		problem(v, path, "missing (%s)", strerror(errno));
		return;
	}
	if ((st.st_mode & S_IFMT) != strata_entry_type_mode(r->type)) {
		problem(v, path, "is a %s, the index says %s", S_ISDIR(st.st_mode) ? "directory" : "different type",
			strata_entry_type_name(r->type));
		return;
	}
	if (r->type == STRATA_ENTRY_WHITEOUT) {
		if (st.st_rdev != makedev(0, 0))
			problem(v, path, "whiteout is not a 0/0 device");
		return;
	}
	/* A non-root store keeps u+rwx on directories so that it can remove them. */
	if (r->type == STRATA_ENTRY_DIR && v->rootless)
		perm_mask = 07077;
	if (r->type != STRATA_ENTRY_SYMLINK && (st.st_mode & perm_mask) != (r->mode & perm_mask))
		problem(v, path, "mode %04o, the index says %04o", (unsigned)(st.st_mode & 07777), r->mode & 07777);
	if (!v->rootless && (st.st_uid != r->uid || st.st_gid != r->gid))
		problem(v, path, "owner %u:%u, the index says %u:%u", (unsigned)st.st_uid, (unsigned)st.st_gid,
			r->uid, r->gid);
	if (r->type == STRATA_ENTRY_SYMLINK) {
		char target[4096];
		ssize_t tl = readlinkat(rootfd, path, target, sizeof(target));
		size_t ilen;
		const char *ilink = strata_index_link(v->idx, n, &ilen);

		if (tl < 0 || (size_t)tl != ilen || memcmp(target, ilink, ilen) != 0)
			problem(v, path, "symlink target changed");
	} else if (r->type == STRATA_ENTRY_CHAR || r->type == STRATA_ENTRY_BLOCK) {
		if (st.st_rdev != makedev(r->rdev_major, r->rdev_minor))
			problem(v, path, "device number changed");
	} else if (r->type == STRATA_ENTRY_REG || r->type == STRATA_ENTRY_HARDLINK) {
		if ((uint64_t)st.st_size != r->size)
			problem(v, path, "size %lld, the index says %llu", (long long)st.st_size,
				(unsigned long long)r->size);
		else
			check_content(v, rootfd, path, r);
	}
}

/* Reports files on disk that the index does not list (something wrote into the layer). */
static void find_extra(struct verifier *v, int dirfd, struct strbuf *prefix)
{
	int fd = dup(dirfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (dir == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir)) != NULL) {
		size_t saved = prefix->len;
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (prefix->len)
			strbuf_addstr(prefix, "/");
		strbuf_addstr(prefix, de->d_name);
		if (strata_index_find(v->idx, prefix->data, prefix->len) == STRATA_INDEX_NONE)
			problem(v, prefix->data, "is not in the index");
		else if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0) {
				find_extra(v, sub, prefix);
				close(sub);
			}
		}
		prefix->len = saved;
		prefix->data[saved] = '\0';
	}
	closedir(dir);
}

int strata_layer_verify(int layer_dirfd, bool rootless, strata_problem_fn report, void *data, size_t *problems,
			struct strata_error **err)
{
	struct strata_index idx;
	struct verifier v = { .idx = &idx, .rootless = rootless, .report = report, .data = data };
	auto_close int rootfd = openat(layer_dirfd, "root", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct strbuf prefix = {0};

	if (rootfd < 0)
		return strata_error_set(err, errno, "cannot open the layer's root directory");
	if (strata_index_load(layer_dirfd, "index", &idx, err) < 0)
		return -1;
	for (uint32_t n = 0; n < idx.count; n++)
		check_record(&v, rootfd, n);
	strbuf_append(&prefix, "", 0);
	find_extra(&v, rootfd, &prefix);
	strbuf_release(&prefix);
	strata_index_release(&idx);
	*problems = v.problems;
	return 0;
}
