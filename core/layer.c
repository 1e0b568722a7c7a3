/*
 * Work on unpacked layer directories after extraction: hard links into lower
 * layers, and rebuilding the original tar from tar-split.gz.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "digest.h"
#include "index.h"
#include "unpack.h"
#include "util.h"

enum lookup_result { LOOKUP_ABSENT, LOOKUP_FOUND, LOOKUP_HIDDEN };

/*
 * Looks `path` up in one layer of a stack, as overlayfs would when the
 * layers above did not decide it: found, absent (look further down), or
 * hidden from everything below (whiteout, opaque or non-directory parent).
 */
static enum lookup_result lookup_in_layer(const struct strata_index *idx, const char *path, uint32_t *record)
{
	size_t len = strlen(path);
	uint32_t n = strata_index_find(idx, path, len);

	if (n != STRATA_INDEX_NONE) {
		*record = n;
		return idx->records[n].type == STRATA_ENTRY_WHITEOUT ? LOOKUP_HIDDEN : LOOKUP_FOUND;
	}
	for (size_t i = len; i > 0; i--) {
		uint32_t p;

		if (path[i - 1] != '/')
			continue;
		p = strata_index_find(idx, path, i - 1);
		if (p == STRATA_INDEX_NONE)
			continue;
		if (idx->records[p].type != STRATA_ENTRY_DIR || (idx->records[p].flags & STRATA_ENTRY_OPAQUE))
			return LOOKUP_HIDDEN;
	}
	return LOOKUP_ABSENT;
}

static int copy_content(int src, int dst, struct strata_digest *digest, const char *path, struct strata_error **err)
{
	struct strata_sha256 *hash = strata_sha256_new();
	char buf[1 << 16];
	ssize_t n;

	while ((n = read(src, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			strata_sha256_free(hash);
			return strata_error_set(err, errno, "cannot read `%s` from a lower layer", path);
		}
		strata_sha256_update(hash, buf, (size_t)n);
		if (write_all(dst, buf, (size_t)n) < 0) {
			strata_sha256_free(hash);
			return strata_error_set(err, errno, "cannot write the copy of `%s`", path);
		}
	}
	strata_sha256_final(hash, digest);
	strata_sha256_free(hash);
	return 0;
}

/* Copies the lower file `lower_rec` of layer `lower_dirfd` to `path` in the staged root. */
static int materialize(int rootfd, const char *path, int lower_dirfd, const struct strata_index *lower,
		       uint32_t lower_rec, bool rootless, struct strata_index_record *out, struct strata_error **err)
{
	const struct strata_index_record *src_rec = &lower->records[lower_rec];
	size_t tlen;
	const char *tpath_raw = strata_index_path(lower, lower_rec, &tlen);
	auto_free char *tpath = xstrndup(tpath_raw, tlen);
	auto_close int lower_root = openat(lower_dirfd, "root", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	auto_close int src = -1;
	auto_close int dst = -1;
	auto_close int parent = -1;
	const char *slash = strrchr(path, '/');
	auto_free char *parent_path = slash ? xstrndup(path, (size_t)(slash - path)) : NULL;
	struct strata_digest digest;
	struct timespec ts[2];

	if (lower_root < 0)
		return strata_error_set(err, errno, "cannot open a lower layer");
	src = strata_openat_beneath(lower_root, tpath, O_RDONLY);
	if (src < 0)
		return strata_error_set(err, errno, "cannot open `%s` in a lower layer", tpath);
	parent = parent_path ? strata_openat_beneath(rootfd, parent_path, O_PATH | O_DIRECTORY) : dup(rootfd);
	if (parent < 0)
		return strata_error_set(err, errno, "cannot open the directory of `%s`", path);
	dst = openat(parent, slash ? slash + 1 : path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dst < 0)
		return strata_error_set(err, errno, "cannot create `%s`", path);
	if (copy_content(src, dst, &digest, tpath, err) < 0)
		return -1;

	if (!rootless && fchown(dst, src_rec->uid, src_rec->gid) < 0)
		return strata_error_set(err, errno, "cannot change the owner of `%s`", path);
	if (fchmod(dst, src_rec->mode & 07777) < 0)
		return strata_error_set(err, errno, "cannot change the mode of `%s`", path);
	strata_index_apply_xattrs(lower, src_rec, dst, rootless);
	ts[0].tv_sec = ts[1].tv_sec = src_rec->mtime_sec;
	ts[0].tv_nsec = ts[1].tv_nsec = src_rec->mtime_nsec;
	if (futimens(dst, ts) < 0)
		return strata_error_set(err, errno, "cannot set the times of `%s`", path);

	out->type = STRATA_ENTRY_REG;
	out->size = src_rec->size;
	out->mode = src_rec->mode;
	out->uid = src_rec->uid;
	out->gid = src_rec->gid;
	out->mtime_sec = src_rec->mtime_sec;
	out->mtime_nsec = src_rec->mtime_nsec;
	out->link_record = STRATA_INDEX_NONE;
	memcpy(out->sha256, digest.bytes, 32);
	return 0;
}

int strata_layer_resolve_lower_links(int dirfd, const int *lower_dirfds, size_t nlower, bool rootless,
				     struct strata_error **err)
{
	struct strata_index idx;
	struct strata_index *lowers = xcalloc(nlower ? nlower : 1, sizeof(*lowers));
	struct strata_index_writer out;
	auto_close int rootfd = openat(dirfd, "root", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc = -1;

	strata_index_writer_init(&out);
	if (strata_index_load(dirfd, "index", &idx, err) < 0) {
		free(lowers);
		return -1;
	}
	for (size_t i = 0; i < nlower; i++)
		if (strata_index_load(lower_dirfds[i], "index", &lowers[i], err) < 0)
			goto out;
	if (rootfd < 0) {
		strata_error_set(err, errno, "cannot open the staged layer");
		goto out;
	}

	for (uint32_t n = 0; n < idx.count; n++) {
		struct strata_index_record rec = idx.records[n];
		size_t plen;
		size_t tlen;
		const char *path_raw = strata_index_path(&idx, n, &plen);
		const char *target_raw = strata_index_link(&idx, n, &tlen);
		auto_free char *path = xstrndup(path_raw, plen);
		auto_free char *target = xstrndup(target_raw, tlen);
		struct strata_index_entry e;

		if (rec.type == STRATA_ENTRY_HARDLINK && (rec.flags & STRATA_ENTRY_LOWER_COPY)) {
			bool found = false;

			if (strata_index_find(&idx, target, tlen) != STRATA_INDEX_NONE) {
				strata_error_set(err, 0, "hard link `%s` points to `%s`, which appears later in the "
						 "same layer (forward hard link)", path, target);
				goto out;
			}
			for (size_t i = nlower; i-- > 0;) {
				uint32_t lower_rec = STRATA_INDEX_NONE;
				enum lookup_result r = lookup_in_layer(&lowers[i], target, &lower_rec);

				if (r == LOOKUP_HIDDEN)
					break;
				if (r == LOOKUP_ABSENT)
					continue;
				if (lowers[i].records[lower_rec].type == STRATA_ENTRY_HARDLINK &&
				    lowers[i].records[lower_rec].link_record != STRATA_INDEX_NONE)
					lower_rec = lowers[i].records[lower_rec].link_record;
				if (lowers[i].records[lower_rec].type != STRATA_ENTRY_REG) {
					strata_error_set(err, 0, "hard link `%s` points to `%s`, which is a %s in a lower layer",
							 path, target,
							 strata_entry_type_name(lowers[i].records[lower_rec].type));
					goto out;
				}
				if (materialize(rootfd, path, lower_dirfds[i], &lowers[i], lower_rec, rootless, &rec,
						err) < 0)
					goto out;
				found = true;
				break;
			}
			if (!found) {
				strata_error_set(err, 0, "hard link `%s` points to `%s`, which neither this layer nor "
						 "the layers below it contain", path, target);
				goto out;
			}
		}

		e = (struct strata_index_entry){
			.path = path, .path_len = plen,
			.link = target, .link_len = tlen,
			.xattrs = idx.strings + rec.xattr_off, .xattrs_len = rec.xattr_len,
			.size = rec.size, .mtime_sec = rec.mtime_sec, .mtime_nsec = rec.mtime_nsec,
			.mode = rec.mode, .uid = rec.uid, .gid = rec.gid,
			.rdev_major = rec.rdev_major, .rdev_minor = rec.rdev_minor,
			.type = (enum strata_entry_type)rec.type, .flags = rec.flags,
			.link_record = rec.link_record, .sha256 = rec.sha256,
		};
		strata_index_writer_add(&out, &e);
	}
	rc = strata_index_writer_write(&out, dirfd, "index", err);

out:
	strata_index_writer_release(&out);
	strata_index_release(&idx);
	for (size_t i = 0; i < nlower; i++)
		strata_index_release(&lowers[i]);
	free(lowers);
	return rc;
}

static int gz_read_exact(gzFile gz, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
		int n = gzread(gz, p, chunk);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int strata_layer_write_tar(int dirfd, int out_fd, struct strata_error **err)
{
	int fd = openat(dirfd, "tar-split.gz", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	auto_close int rootfd = openat(dirfd, "root", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	gzFile gz;
	char buf[1 << 16];
	int rc = -1;

	if (fd < 0)
		return strata_error_set(err, errno, "cannot open `tar-split.gz`");
	if (rootfd < 0) {
		close(fd);
		return strata_error_set(err, errno, "cannot open the layer's root directory");
	}
	gz = gzdopen(fd, "rb");
	if (gz == NULL) {
		close(fd);
		return strata_error_set(err, ENOMEM, "cannot read `tar-split.gz`");
	}

	for (;;) {
		char tag;
		uint32_t len;

		if (gz_read_exact(gz, &tag, 1) < 0)
			goto corrupt;
		if (tag == 'E')
			break;
		if (gz_read_exact(gz, &len, 4) < 0)
			goto corrupt;
		if (tag == 'R') {
			while (len > 0) {
				size_t chunk = len > sizeof(buf) ? sizeof(buf) : len;

				if (gz_read_exact(gz, buf, chunk) < 0)
					goto corrupt;
				if (write_all(out_fd, buf, chunk) < 0) {
					strata_error_set(err, errno, "cannot write the layer tar");
					goto out;
				}
				len -= (uint32_t)chunk;
			}
		} else if (tag == 'F') {
			auto_free char *path = xmalloc((size_t)len + 1);
			uint64_t size;
			auto_close int file = -1;

			if (gz_read_exact(gz, path, len) < 0 || gz_read_exact(gz, &size, 8) < 0)
				goto corrupt;
			path[len] = '\0';
			file = strata_openat_beneath(rootfd, path, O_RDONLY);
			if (file < 0) {
				strata_error_set(err, errno, "cannot open `%s` in the layer", path);
				goto out;
			}
			while (size > 0) {
				size_t chunk = size > sizeof(buf) ? sizeof(buf) : (size_t)size;
				ssize_t n = read(file, buf, chunk);

				if (n <= 0) {
					strata_error_set(err, n < 0 ? errno : 0,
							 "`%s` in the layer is shorter than when it was unpacked "
							 "(run `strata verify`)", path);
					goto out;
				}
				if (write_all(out_fd, buf, (size_t)n) < 0) {
					strata_error_set(err, errno, "cannot write the layer tar");
					goto out;
				}
				size -= (uint64_t)n;
			}
		} else {
			goto corrupt;
		}
	}
	rc = 0;
	goto out;

corrupt:
	strata_error_set(err, 0, "`tar-split.gz` is corrupt or truncated");
out:
	gzclose(gz);
	return rc;
}
