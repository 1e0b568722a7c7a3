/*
 * Unit tests for core/unpack.c and core/layer.c: unpacking layer tars built
 * in memory with libarchive, and rebuilding them from tar-split.gz.
 *
 * Tests that need root (owners, device nodes, trusted.* xattrs) are only
 * added to the suite when the process runs as root.  The others use a
 * non-root store (opts.rootless) when not run as root, because a root store
 * sets every owner from the tar, which needs root.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../../core/digest.h"
#include "../../core/index.h"
#include "../../core/unpack.h"
#include "../../core/util.h"
#include "suites.h"

#define TAR_MTIME 1700000000
#define TAR_BUFFER_SIZE (4u << 20)

/* One entry of a test tar.  Fields left zero or NULL are not written. */
struct tar_spec {
	const char *path;
	mode_t mode;                /* file type and permission bits */
	const char *content;        /* regular files: NUL-terminated, unless content_len is set */
	size_t content_len;
	const char *symlink;        /* symlink target */
	const char *hardlink;       /* hard link target: the entry is written as a hard link */
	unsigned rdev_major;
	unsigned rdev_minor;
	unsigned uid;
	unsigned gid;
	const char *xattr_name;
	const char *xattr_value;
};

/* Writes the entries as a pax tar in memory and returns the bytes (malloc'd). */
static char *tar_build(const struct tar_spec *specs, size_t n, size_t *len)
{
	char *buf = xmalloc(TAR_BUFFER_SIZE);
	struct archive *a = archive_write_new();

	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(archive_write_set_format_pax(a), ARCHIVE_OK);
	ck_assert_int_eq(archive_write_open_memory(a, buf, TAR_BUFFER_SIZE, len), ARCHIVE_OK);

	for (size_t i = 0; i < n; i++) {
		const struct tar_spec *s = &specs[i];
		struct archive_entry *e = archive_entry_new();
		size_t size = s->content_len;

		if (size == 0 && s->content)
			size = strlen(s->content);

		archive_entry_set_pathname(e, s->path);
		archive_entry_set_mode(e, s->mode);
		archive_entry_set_mtime(e, TAR_MTIME, 0);
		archive_entry_set_uid(e, s->uid);
		archive_entry_set_gid(e, s->gid);
		archive_entry_set_size(e, (la_int64_t)size);
		if (s->symlink)
			archive_entry_set_symlink(e, s->symlink);
		if (s->hardlink) {
			archive_entry_set_hardlink(e, s->hardlink);
			archive_entry_set_size(e, 0);
		}
		if (S_ISCHR(s->mode) || S_ISBLK(s->mode)) {
			archive_entry_set_rdevmajor(e, s->rdev_major);
			archive_entry_set_rdevminor(e, s->rdev_minor);
		}
		if (s->xattr_name)
			archive_entry_xattr_add_entry(e, s->xattr_name, s->xattr_value, strlen(s->xattr_value));

		ck_assert_msg(archive_write_header(a, e) == ARCHIVE_OK, "cannot write tar header `%s`: %s", s->path,
			      archive_error_string(a));
		if (size && !s->hardlink)
			ck_assert_int_eq(archive_write_data(a, s->content, size), (la_ssize_t)size);
		archive_entry_free(e);
	}
	ck_assert_int_eq(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return buf;
}

/* Hands the tar to the unpacker `chunk` bytes at a time. */
struct mem_reader {
	const char *data;
	size_t len;
	size_t pos;
	size_t chunk;
	size_t fail_at;             /* fail once pos reaches this offset (0: never) */
};

static ssize_t mem_read(void *ctx, const void **buf, struct strata_error **err)
{
	struct mem_reader *r = ctx;
	size_t n = r->len - r->pos;

	if (r->fail_at && r->pos >= r->fail_at)
		return strata_error_set(err, EIO, "test reader failed at byte %zu", r->pos);
	if (n > r->chunk)
		n = r->chunk;
	*buf = r->data + r->pos;
	r->pos += n;
	return (ssize_t)n;
}

/* One unpacked layer in its own staging directory. */
struct layer {
	char *dir;
	int dirfd;
	int rc;
	struct strata_unpack_result result;
	struct strata_error *err;
	struct strata_index idx;    /* loaded after a successful unpack */
};

static bool default_rootless(void)
{
	return geteuid() != 0;
}

static void layer_unpack_bytes(struct layer *l, const char *tar, size_t len, size_t chunk, size_t fail_at,
			       bool rootless)
{
	struct mem_reader reader = { .data = tar, .len = len, .chunk = chunk, .fail_at = fail_at };
	struct strata_unpack_options opts = { .rootless = rootless, .layer_name = "test layer" };
	struct strata_error *load_err = NULL;

	memset(l, 0, sizeof(*l));
	strata_unpack_limits_default(&opts.limits);
	l->dir = unit_tempdir_new();
	l->dirfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(l->dirfd, 0);

	l->rc = strata_layer_unpack(l->dirfd, mem_read, &reader, &opts, &l->result, &l->err);
	if (l->rc == 0) {
		ck_assert_msg(l->err == NULL, "unpack returned 0 but stored an error: %s", l->err->message);
		ck_assert_msg(strata_index_load(l->dirfd, "index", &l->idx, &load_err) == 0,
			      "cannot load the index: %s", load_err ? load_err->message : "no error");
	} else {
		ck_assert_int_eq(l->rc, -1);
		ck_assert_ptr_nonnull(l->err);
		ck_assert_ptr_nonnull(l->err->message);
	}
}

static void layer_unpack(struct layer *l, const struct tar_spec *specs, size_t n, bool rootless)
{
	size_t len = 0;
	char *tar = tar_build(specs, n, &len);

	layer_unpack_bytes(l, tar, len, 4096, 0, rootless);
	free(tar);
}

static void layer_close(struct layer *l)
{
	strata_index_release(&l->idx);
	strata_error_free(l->err);
	close(l->dirfd);
	unit_tempdir_remove(l->dir);
}

static void assert_unpacked(const struct layer *l)
{
	if (l->rc != 0) {
		char *message = strata_error_format(l->err);

		ck_abort_msg("unpack failed: %s", message);
	}
}

/* Checks that the unpack failed with a message that quotes `name` and contains `words`. */
static void assert_failed_naming(const struct layer *l, const char *name, const char *words)
{
	char *quoted = xasprintf("`%s`", name);

	ck_assert_msg(l->rc == -1, "unpack of `%s` succeeded", name);
	ck_assert_msg(strstr(l->err->message, quoted) != NULL, "message `%s` does not name %s", l->err->message,
		      quoted);
	ck_assert_msg(strstr(l->err->message, words) != NULL, "message `%s` does not contain `%s`",
		      l->err->message, words);
	free(quoted);
}

/* Returns the path of `rel` below the layer's root/ (malloc'd). */
static char *root_path(const struct layer *l, const char *rel)
{
	return xasprintf("%s/root/%s", l->dir, rel);
}

static void stat_in_root(const struct layer *l, const char *rel, struct stat *st)
{
	char *path = root_path(l, rel);

	ck_assert_msg(lstat(path, st) == 0, "`%s` is missing from the unpacked tree", rel);
	free(path);
}

static void assert_absent(const char *path)
{
	struct stat st;

	ck_assert_msg(lstat(path, &st) == -1 && errno == ENOENT, "`%s` exists", path);
}

static void assert_absent_in_root(const struct layer *l, const char *rel)
{
	char *path = root_path(l, rel);

	assert_absent(path);
	free(path);
}

static char *read_in_root(const struct layer *l, const char *rel, size_t *len)
{
	char *path = root_path(l, rel);
	char *data = NULL;
	struct strata_error *err = NULL;

	ck_assert_msg(read_file_at(AT_FDCWD, path, &data, len, &err) == 0, "cannot read `%s`", rel);
	free(path);
	return data;
}

/* Returns the record for `path`, failing the test if the index has none. */
static const struct strata_index_record *find_record(const struct layer *l, const char *path)
{
	uint32_t n = strata_index_find(&l->idx, path, strlen(path));

	ck_assert_msg(n != STRATA_INDEX_NONE, "index has no record for `%s`", path);
	return &l->idx.records[n];
}

static void assert_not_indexed(const struct layer *l, const char *path)
{
	ck_assert_msg(strata_index_find(&l->idx, path, strlen(path)) == STRATA_INDEX_NONE,
		      "index has a record for `%s`", path);
}

/* Returns the value of xattr `name` on `rel` (malloc'd), or NULL when it is not set. */
static char *xattr_in_root(const struct layer *l, const char *rel, const char *name)
{
	char *path = root_path(l, rel);
	char value[256];
	ssize_t n = lgetxattr(path, name, value, sizeof(value) - 1);

	free(path);
	if (n < 0) {
		ck_assert_msg(errno == ENODATA, "cannot read xattr `%s` of `%s`", name, rel);
		return NULL;
	}
	value[n] = '\0';
	return xstrdup(value);
}

static size_t count_dir_entries(const char *path)
{
	DIR *dir = opendir(path);
	struct dirent *de;
	size_t n = 0;

	ck_assert_ptr_nonnull(dir);
	while ((de = readdir(dir)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(dir);
	return n;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

START_TEST(test_unpack_basic_tree)
{
	const struct tar_spec specs[] = {
		{ .path = "./", .mode = S_IFDIR | 0755 },
		{ .path = "etc/", .mode = S_IFDIR | 0751 },
		{ .path = "etc/hostname", .mode = S_IFREG | 0640, .content = "box\n" },
		{ .path = "etc/localtime", .mode = S_IFLNK | 0777, .symlink = "/usr/share/zoneinfo/UTC" },
		{ .path = "opt/app/run.sh", .mode = S_IFREG | 0755, .content = "#!/bin/sh\n" },
	};
	struct layer l;
	struct stat st;
	const struct strata_index_record *r;
	struct strata_digest digest;
	char target[64];
	ssize_t n;
	size_t len;
	char *data;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_unpacked(&l);

	ck_assert_uint_eq(l.result.tar_entries, 5);
	ck_assert_uint_eq(l.result.entries, 6);
	ck_assert_uint_eq(l.result.file_bytes, 4 + 10);
	ck_assert_uint_eq(l.result.lower_links, 0);
	ck_assert_uint_eq(l.idx.count, 6);

	data = read_in_root(&l, "etc/hostname", &len);
	ck_assert_uint_eq(len, 4);
	ck_assert_mem_eq(data, "box\n", 4);
	free(data);
	stat_in_root(&l, "etc/hostname", &st);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 0640);
	ck_assert_int_eq(st.st_mtime, TAR_MTIME);
	stat_in_root(&l, "etc", &st);
	ck_assert_uint_eq(st.st_mode & 07777, default_rootless() ? 0751 | 0700 : 0751);
	ck_assert_int_eq(st.st_mtime, TAR_MTIME);
	stat_in_root(&l, "opt/app/run.sh", &st);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 0755);

	{
		char *path = root_path(&l, "etc/localtime");

		n = readlink(path, target, sizeof(target) - 1);
		free(path);
	}
	ck_assert_int_eq(n, (ssize_t)strlen("/usr/share/zoneinfo/UTC"));
	target[n] = '\0';
	ck_assert_str_eq(target, "/usr/share/zoneinfo/UTC");

	r = find_record(&l, "etc/hostname");
	ck_assert_uint_eq(r->type, STRATA_ENTRY_REG);
	ck_assert_uint_eq(r->size, 4);
	ck_assert_uint_eq(r->mode, S_IFREG | 0640);
	ck_assert_int_eq(r->mtime_sec, TAR_MTIME);
	strata_sha256_buffer("box\n", 4, &digest);
	ck_assert_mem_eq(r->sha256, digest.bytes, 32);

	r = find_record(&l, "etc/localtime");
	ck_assert_uint_eq(r->type, STRATA_ENTRY_SYMLINK);
	ck_assert_uint_eq(r->link_len, strlen("/usr/share/zoneinfo/UTC"));
	ck_assert_mem_eq(l.idx.strings + r->link_off, "/usr/share/zoneinfo/UTC", r->link_len);

	r = find_record(&l, "etc");
	ck_assert_uint_eq(r->type, STRATA_ENTRY_DIR);
	ck_assert_uint_eq(r->flags & STRATA_ENTRY_IMPLICIT, 0);

	/* Parents missing from the tar are created and recorded as implicit directories. */
	r = find_record(&l, "opt");
	ck_assert_uint_eq(r->type, STRATA_ENTRY_DIR);
	ck_assert_uint_ne(r->flags & STRATA_ENTRY_IMPLICIT, 0);
	ck_assert_uint_eq(r->mode, S_IFDIR | 0755);
	r = find_record(&l, "opt/app");
	ck_assert_uint_ne(r->flags & STRATA_ENTRY_IMPLICIT, 0);

	/* The layer root ("./") gets no record. */
	assert_not_indexed(&l, "");
	layer_close(&l);
}
END_TEST

START_TEST(test_unpack_whiteout_char_device)
{
	const struct tar_spec specs[] = {
		{ .path = ".wh.x", .mode = S_IFREG | 0644 },
		{ .path = "d/", .mode = S_IFDIR | 0755 },
		{ .path = "d/.wh.y", .mode = S_IFREG | 0644 },
	};
	struct layer l;
	struct stat st;
	const struct strata_index_record *r;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_unpacked(&l);

	stat_in_root(&l, "x", &st);
	ck_assert_msg(S_ISCHR(st.st_mode), "whiteout `x` is not a character device (mode 0%o)", st.st_mode);
	ck_assert_uint_eq(major(st.st_rdev), 0);
	ck_assert_uint_eq(minor(st.st_rdev), 0);
	stat_in_root(&l, "d/y", &st);
	ck_assert(S_ISCHR(st.st_mode));
	ck_assert_uint_eq(st.st_rdev, makedev(0, 0));
	assert_absent_in_root(&l, ".wh.x");
	assert_absent_in_root(&l, "d/.wh.y");

	r = find_record(&l, "x");
	ck_assert_uint_eq(r->type, STRATA_ENTRY_WHITEOUT);
	ck_assert_uint_eq(r->size, 0);
	r = find_record(&l, "d/y");
	ck_assert_uint_eq(r->type, STRATA_ENTRY_WHITEOUT);
	assert_not_indexed(&l, ".wh.x");
	assert_not_indexed(&l, "d/.wh.y");
	layer_close(&l);
}
END_TEST

/* Unpacks an opaque directory and checks the xattr `set` is "y" and `unset` is absent. */
static void check_opaque(bool rootless, const char *set, const char *unset)
{
	const struct tar_spec specs[] = {
		{ .path = "d/", .mode = S_IFDIR | 0755 },
		{ .path = "d/.wh..wh..opq", .mode = S_IFREG | 0644 },
		{ .path = "d/keep", .mode = S_IFREG | 0644, .content = "kept\n" },
		{ .path = "plain/", .mode = S_IFDIR | 0755 },
	};
	struct layer l;
	char *value;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), rootless);
	assert_unpacked(&l);

	value = xattr_in_root(&l, "d", set);
	ck_assert_msg(value != NULL, "opaque directory has no `%s` xattr", set);
	ck_assert_str_eq(value, "y");
	free(value);
	value = xattr_in_root(&l, "d", unset);
	ck_assert_msg(value == NULL, "opaque directory also has `%s`", unset);
	value = xattr_in_root(&l, "plain", set);
	ck_assert_msg(value == NULL, "directory `plain` is marked opaque");

	ck_assert_uint_ne(find_record(&l, "d")->flags & STRATA_ENTRY_OPAQUE, 0);
	ck_assert_uint_eq(find_record(&l, "plain")->flags & STRATA_ENTRY_OPAQUE, 0);
	assert_absent_in_root(&l, "d/.wh..wh..opq");
	assert_not_indexed(&l, "d/.wh..wh..opq");
	find_record(&l, "d/keep");
	layer_close(&l);
}

START_TEST(test_unpack_opaque_trusted_xattr)
{
	check_opaque(false, "trusted.overlay.opaque", "user.overlay.opaque");
}
END_TEST

START_TEST(test_unpack_opaque_user_xattr_rootless)
{
	check_opaque(true, "user.overlay.opaque", "trusted.overlay.opaque");
}
END_TEST

START_TEST(test_unpack_opaque_before_its_dir)
{
	const struct tar_spec specs[] = {
		{ .path = "d/.wh..wh..opq", .mode = S_IFREG | 0644 },
		{ .path = "d/", .mode = S_IFDIR | 0750 },
	};
	struct layer l;
	const struct strata_index_record *r;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_unpacked(&l);

	r = find_record(&l, "d");
	ck_assert_uint_ne(r->flags & STRATA_ENTRY_OPAQUE, 0);
	ck_assert_uint_eq(r->mode, S_IFDIR | 0750);
	ck_assert_uint_eq(l.idx.count, 1);
	layer_close(&l);
}
END_TEST

START_TEST(test_unpack_opaque_at_root_rejected)
{
	const struct tar_spec specs[] = {
		{ .path = ".wh..wh..opq", .mode = S_IFREG | 0644 },
	};
	struct layer l;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_failed_naming(&l, ".wh..wh..opq", "layer root");
	layer_close(&l);
}
END_TEST

START_TEST(test_unpack_whiteout_invalid_names)
{
	static const char *const names[] = { ".wh.", ".wh..", ".wh...", "d/.wh.", "d/.wh..", "d/.wh..." };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		const struct tar_spec specs[] = {
			{ .path = "d/", .mode = S_IFDIR | 0755 },
			{ .path = names[i], .mode = S_IFREG | 0644 },
		};
		struct layer l;

		layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
		assert_failed_naming(&l, names[i], "invalid whiteout");
		layer_close(&l);
	}
}
END_TEST

START_TEST(test_unpack_dotdot_rejected)
{
	static const char *const names[] = { "../x", "a/../../x", "/../x" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		const struct tar_spec specs[] = {
			{ .path = names[i], .mode = S_IFREG | 0644, .content = "escaped\n" },
		};
		struct layer l;
		char *outside;

		layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
		assert_failed_naming(&l, names[i], "`..`");
		/* root/../x would be the staging directory's x. */
		outside = xasprintf("%s/x", l.dir);
		assert_absent(outside);
		free(outside);
		layer_close(&l);
	}
}
END_TEST

START_TEST(test_unpack_symlink_parent_rejected)
{
	char *outside = unit_tempdir_new();
	const char *targets[] = { outside, "..", "../..", "." };

	for (size_t i = 0; i < ARRAY_SIZE(targets); i++) {
		const struct tar_spec specs[] = {
			{ .path = "d", .mode = S_IFLNK | 0777, .symlink = targets[i] },
			{ .path = "d/f", .mode = S_IFREG | 0644, .content = "escaped\n" },
		};
		struct layer l;
		char *staging_f;

		layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
		assert_failed_naming(&l, "d/f", "parent component");

		ck_assert_uint_eq(count_dir_entries(outside), 0);
		staging_f = xasprintf("%s/f", l.dir);
		assert_absent(staging_f);
		free(staging_f);
		assert_absent_in_root(&l, "f");
		layer_close(&l);
	}
	unit_tempdir_remove(outside);
}
END_TEST

START_TEST(test_unpack_symlink_deeper_parent_rejected)
{
	char *outside = unit_tempdir_new();
	const struct {
		const char *name;
		mode_t mode;
		const char *words;  /* expected in the error message */
	} cases[] = {
		{ "d/sub/", S_IFDIR | 0755, "parent component" },
		{ "d/sub/f", S_IFREG | 0644, "symlink" },
		{ "d/a/b/c", S_IFREG | 0644, "symlink" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct tar_spec specs[] = {
			{ .path = "d", .mode = S_IFLNK | 0777, .symlink = outside },
			{ .path = cases[i].name, .mode = cases[i].mode },
		};
		struct layer l;

		layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
		assert_failed_naming(&l, cases[i].name, cases[i].words);
		ck_assert_uint_eq(count_dir_entries(outside), 0);
		layer_close(&l);
	}
	unit_tempdir_remove(outside);
}
END_TEST

START_TEST(test_unpack_hardlink_to_later_entry_pending)
{
	const struct tar_spec specs[] = {
		{ .path = "a", .mode = S_IFREG | 0644, .hardlink = "b" },
		{ .path = "b", .mode = S_IFREG | 0644, .content = "data\n" },
	};
	struct layer l;
	const struct strata_index_record *r;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_unpacked(&l);

	ck_assert_uint_eq(l.result.lower_links, 1);
	r = find_record(&l, "a");
	ck_assert_uint_eq(r->type, STRATA_ENTRY_HARDLINK);
	ck_assert_uint_ne(r->flags & STRATA_ENTRY_LOWER_COPY, 0);
	ck_assert_uint_eq(r->link_record, STRATA_INDEX_NONE);
	ck_assert_uint_eq(r->link_len, 1);
	ck_assert_mem_eq(l.idx.strings + r->link_off, "b", 1);
	/* Pending links are materialised later (strata_layer_resolve_lower_links). */
	assert_absent_in_root(&l, "a");
	ck_assert_uint_eq(find_record(&l, "b")->type, STRATA_ENTRY_REG);
	layer_close(&l);
}
END_TEST

START_TEST(test_unpack_hardlink_to_earlier_entry)
{
	const struct tar_spec specs[] = {
		{ .path = "bin/busybox", .mode = S_IFREG | 0755, .content = "busybox binary\n" },
		{ .path = "bin/ls", .mode = S_IFREG | 0755, .hardlink = "bin/busybox" },
	};
	struct layer l;
	struct stat target;
	struct stat link;
	const struct strata_index_record *t;
	const struct strata_index_record *r;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_unpacked(&l);

	stat_in_root(&l, "bin/busybox", &target);
	stat_in_root(&l, "bin/ls", &link);
	ck_assert_uint_eq(target.st_ino, link.st_ino);
	ck_assert_uint_eq(target.st_nlink, 2);

	t = find_record(&l, "bin/busybox");
	r = find_record(&l, "bin/ls");
	ck_assert_uint_eq(r->type, STRATA_ENTRY_HARDLINK);
	ck_assert_uint_eq(r->flags & STRATA_ENTRY_LOWER_COPY, 0);
	ck_assert_uint_eq(r->link_record, strata_index_find(&l.idx, "bin/busybox", 11));
	ck_assert_uint_eq(r->size, t->size);
	ck_assert_mem_eq(r->sha256, t->sha256, 32);
	ck_assert_uint_eq(l.result.lower_links, 0);
	ck_assert_uint_eq(l.result.file_bytes, strlen("busybox binary\n"));
	layer_close(&l);
}
END_TEST

START_TEST(test_unpack_char_device_0_0_rejected)
{
	const struct tar_spec specs[] = {
		{ .path = "dev/", .mode = S_IFDIR | 0755 },
		{ .path = "dev/fake-whiteout", .mode = S_IFCHR | 0644 },
	};
	struct layer l;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_failed_naming(&l, "dev/fake-whiteout", "whiteout");
	assert_absent_in_root(&l, "dev/fake-whiteout");
	layer_close(&l);

	layer_unpack(&l, specs, ARRAY_SIZE(specs), true);
	assert_failed_naming(&l, "dev/fake-whiteout", "whiteout");
	layer_close(&l);
}
END_TEST

START_TEST(test_unpack_dir_mode_after_children)
{
	const struct tar_spec specs[] = {
		{ .path = "ro/", .mode = S_IFDIR | 0555 },
		{ .path = "ro/sub/", .mode = S_IFDIR | 0500 },
		{ .path = "ro/f", .mode = S_IFREG | 0644, .content = "hi\n" },
		{ .path = "ro/sub/g", .mode = S_IFREG | 0400, .content = "deep\n" },
	};
	struct layer l;
	struct stat st;
	bool rootless = default_rootless();
	size_t len;
	char *data;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), rootless);
	assert_unpacked(&l);

	data = read_in_root(&l, "ro/f", &len);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(data, "hi\n", 3);
	free(data);
	stat_in_root(&l, "ro/sub/g", &st);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 0400);

	/* A non-root store keeps u+rwx on directories so that it can remove them. */
	stat_in_root(&l, "ro", &st);
	ck_assert_uint_eq(st.st_mode, S_IFDIR | (rootless ? 0755 : 0555));
	ck_assert_int_eq(st.st_mtime, TAR_MTIME);
	stat_in_root(&l, "ro/sub", &st);
	ck_assert_uint_eq(st.st_mode, S_IFDIR | (rootless ? 0700 : 0500));
	ck_assert_int_eq(st.st_mtime, TAR_MTIME);

	ck_assert_uint_eq(find_record(&l, "ro")->mode, S_IFDIR | 0555);
	layer_close(&l);
}
END_TEST

START_TEST(test_unpack_duplicate_file_rejected)
{
	const struct tar_spec specs[] = {
		{ .path = "a", .mode = S_IFREG | 0644, .content = "one\n" },
		{ .path = "./a", .mode = S_IFREG | 0644, .content = "two\n" },
	};
	struct layer l;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_failed_naming(&l, "./a", "appears twice");
	layer_close(&l);
}
END_TEST

START_TEST(test_unpack_repeated_dir_last_wins)
{
	const struct tar_spec specs[] = {
		{ .path = "d/", .mode = S_IFDIR | 0700 },
		{ .path = "d/f", .mode = S_IFREG | 0644, .content = "f\n" },
		{ .path = "d/", .mode = S_IFDIR | 0751 },
	};
	struct layer l;
	struct stat st;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_unpacked(&l);

	ck_assert_uint_eq(l.idx.count, 2);
	ck_assert_uint_eq(find_record(&l, "d")->mode, S_IFDIR | 0751);
	stat_in_root(&l, "d", &st);
	ck_assert_uint_eq(st.st_mode & 07777, default_rootless() ? 0751 | 0700 : 0751);
	layer_close(&l);
}
END_TEST

START_TEST(test_unpack_truncated_tar_fails)
{
	char *content = xmalloc(5000);
	struct tar_spec spec = { .path = "big", .mode = S_IFREG | 0644, .content = content, .content_len = 5000 };
	size_t len = 0;
	char *tar;
	struct layer l;

	memset(content, 'x', 5000);
	tar = tar_build(&spec, 1, &len);

	/* Cut inside the file's content. */
	layer_unpack_bytes(&l, tar, 512 + 3000, 4096, 0, default_rootless());
	ck_assert_int_eq(l.rc, -1);
	ck_assert_msg(strstr(l.err->message, "`big`") != NULL || strstr(l.err->message, "truncated") != NULL,
		      "message `%s` names neither the entry nor the truncation", l.err->message);
	layer_close(&l);

	/* An empty stream is not a tar. */
	layer_unpack_bytes(&l, tar, 0, 4096, 0, default_rootless());
	ck_assert_int_eq(l.rc, -1);
	ck_assert_ptr_nonnull(strstr(l.err->message, "test layer"));
	layer_close(&l);

	free(tar);
	free(content);
}
END_TEST

START_TEST(test_unpack_read_error_reported)
{
	const struct tar_spec specs[] = {
		{ .path = "a", .mode = S_IFREG | 0644, .content = "a\n" },
		{ .path = "b", .mode = S_IFREG | 0644, .content = "b\n" },
	};
	size_t len = 0;
	char *tar = tar_build(specs, ARRAY_SIZE(specs), &len);
	struct layer l;

	layer_unpack_bytes(&l, tar, len, 512, 1024, default_rootless());
	ck_assert_int_eq(l.rc, -1);
	ck_assert_msg(strstr(l.err->message, "test reader failed") != NULL,
		      "message `%s` is not the reader's error", l.err->message);
	ck_assert_int_eq(l.err->errnum, EIO);
	layer_close(&l);
	free(tar);
}
END_TEST

START_TEST(test_unpack_owner_and_devices_as_root)
{
	const struct tar_spec specs[] = {
		{ .path = "dev/null", .mode = S_IFCHR | 0666, .rdev_major = 1, .rdev_minor = 3 },
		{ .path = "dev/sda", .mode = S_IFBLK | 0660, .rdev_major = 8, .rdev_minor = 0, .gid = 6 },
		{ .path = "run/fifo", .mode = S_IFIFO | 0620, .uid = 12, .gid = 34 },
		{ .path = "home/u/", .mode = S_IFDIR | 0700, .uid = 1234, .gid = 5678 },
		{ .path = "home/u/f", .mode = S_IFREG | 0600, .content = "x", .uid = 1234, .gid = 5678 },
		{ .path = "home/u/l", .mode = S_IFLNK | 0777, .symlink = "f", .uid = 1234, .gid = 5678 },
	};
	struct layer l;
	struct stat st;
	const struct strata_index_record *r;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), false);
	assert_unpacked(&l);

	stat_in_root(&l, "dev/null", &st);
	ck_assert(S_ISCHR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0666);
	ck_assert_uint_eq(st.st_rdev, makedev(1, 3));
	stat_in_root(&l, "dev/sda", &st);
	ck_assert(S_ISBLK(st.st_mode));
	ck_assert_uint_eq(st.st_rdev, makedev(8, 0));
	ck_assert_uint_eq(st.st_gid, 6);
	stat_in_root(&l, "run/fifo", &st);
	ck_assert(S_ISFIFO(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0620);
	ck_assert_uint_eq(st.st_uid, 12);
	ck_assert_uint_eq(st.st_gid, 34);

	stat_in_root(&l, "home/u", &st);
	ck_assert_uint_eq(st.st_uid, 1234);
	ck_assert_uint_eq(st.st_gid, 5678);
	stat_in_root(&l, "home/u/f", &st);
	ck_assert_uint_eq(st.st_uid, 1234);
	ck_assert_uint_eq(st.st_gid, 5678);
	stat_in_root(&l, "home/u/l", &st);
	ck_assert_uint_eq(st.st_uid, 1234);
	ck_assert_uint_eq(st.st_gid, 5678);

	r = find_record(&l, "dev/null");
	ck_assert_uint_eq(r->type, STRATA_ENTRY_CHAR);
	ck_assert_uint_eq(r->rdev_major, 1);
	ck_assert_uint_eq(r->rdev_minor, 3);
	ck_assert_uint_eq(r->flags & (STRATA_ENTRY_NOT_CREATED | STRATA_ENTRY_OWNER_NOT_SET), 0);
	ck_assert_uint_eq(find_record(&l, "dev/sda")->type, STRATA_ENTRY_BLOCK);
	ck_assert_uint_eq(find_record(&l, "run/fifo")->type, STRATA_ENTRY_FIFO);
	ck_assert_uint_eq(find_record(&l, "home/u/f")->uid, 1234);
	layer_close(&l);
}
END_TEST

START_TEST(test_unpack_devices_rootless_recorded_only)
{
	const struct tar_spec specs[] = {
		{ .path = "dev/null", .mode = S_IFCHR | 0666, .rdev_major = 1, .rdev_minor = 3 },
		{ .path = "run/fifo", .mode = S_IFIFO | 0600 },
		{ .path = "f", .mode = S_IFREG | 0600, .content = "x", .uid = 1234, .gid = 5678 },
	};
	struct layer l;
	struct stat st;
	const struct strata_index_record *r;

	layer_unpack(&l, specs, ARRAY_SIZE(specs), true);
	assert_unpacked(&l);

	assert_absent_in_root(&l, "dev/null");
	r = find_record(&l, "dev/null");
	ck_assert_uint_eq(r->type, STRATA_ENTRY_CHAR);
	ck_assert_uint_ne(r->flags & STRATA_ENTRY_NOT_CREATED, 0);
	ck_assert_uint_eq(r->rdev_major, 1);
	ck_assert_uint_eq(r->rdev_minor, 3);

	stat_in_root(&l, "run/fifo", &st);
	ck_assert(S_ISFIFO(st.st_mode));

	/* The owner from the tar is kept in the index only. */
	stat_in_root(&l, "f", &st);
	ck_assert_uint_eq(st.st_uid, geteuid());
	r = find_record(&l, "f");
	ck_assert_uint_eq(r->uid, 1234);
	ck_assert_uint_eq(r->gid, 5678);
	ck_assert_uint_ne(r->flags & STRATA_ENTRY_OWNER_NOT_SET, 0);
	layer_close(&l);
}
END_TEST

/*
 * libarchive's pax writer stores each xattr twice (LIBARCHIVE.xattr.NAME and
 * SCHILY.xattr.NAME) and libarchive 3.6 reads both back as separate xattrs.
 * The index must still list each name once, with the value set on disk.
 */
START_TEST(test_unpack_xattr_recorded_once)
{
	const struct tar_spec specs[] = {
		{ .path = "etc/motd", .mode = S_IFREG | 0644, .content = "hello\n", .xattr_name = "user.origin",
		  .xattr_value = "unit-test" },
	};
	char expected[sizeof("user.origin") + 4 + 9];
	uint32_t value_len = 9;
	struct layer l;
	const struct strata_index_record *r;
	char *value;

	/* Index encoding: name, NUL, value length (uint32, host order), value. */
	memcpy(expected, "user.origin", sizeof("user.origin"));
	memcpy(expected + sizeof("user.origin"), &value_len, 4);
	memcpy(expected + sizeof("user.origin") + 4, "unit-test", 9);

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_unpacked(&l);

	value = xattr_in_root(&l, "etc/motd", "user.origin");
	ck_assert_ptr_nonnull(value);
	ck_assert_str_eq(value, "unit-test");
	free(value);

	r = find_record(&l, "etc/motd");
	ck_assert_msg(r->xattr_len == sizeof(expected), "index xattrs of `etc/motd` take %u bytes, expected %zu "
		      "(one `user.origin`)", r->xattr_len, sizeof(expected));
	ck_assert_mem_eq(l.idx.strings + r->xattr_off, expected, sizeof(expected));
	layer_close(&l);
}
END_TEST

/* Checks that an xattr value over limits.max_xattr_size fails the unpack of entry `path`. */
static void check_xattr_over_limit(const char *path, mode_t mode, const char *symlink)
{
	struct strata_unpack_limits limits;
	char *big;
	struct layer l;

	strata_unpack_limits_default(&limits);
	big = xmalloc(limits.max_xattr_size + 2);
	memset(big, 'v', limits.max_xattr_size + 1);
	big[limits.max_xattr_size + 1] = '\0';

	const struct tar_spec specs[] = {
		{ .path = path, .mode = mode, .symlink = symlink, .xattr_name = "user.big", .xattr_value = big },
	};

	layer_unpack(&l, specs, ARRAY_SIZE(specs), default_rootless());
	assert_failed_naming(&l, path, "user.big");
	layer_close(&l);
	free(big);
}

START_TEST(test_unpack_xattr_over_limit_file)
{
	check_xattr_over_limit("file", S_IFREG | 0644, NULL);
}
END_TEST

START_TEST(test_unpack_xattr_over_limit_dir)
{
	check_xattr_over_limit("dir/", S_IFDIR | 0755, NULL);
}
END_TEST

START_TEST(test_unpack_xattr_over_limit_symlink)
{
	check_xattr_over_limit("link", S_IFLNK | 0777, "file");
}
END_TEST

START_TEST(test_unpack_xattr_over_limit_fifo)
{
	check_xattr_over_limit("fifo", S_IFIFO | 0644, NULL);
}
END_TEST

/* Unpacks `tar` fed `chunk` bytes at a time, rebuilds it and compares the result byte for byte. */
static void check_round_trip(const char *tar, size_t len, size_t chunk)
{
	struct layer l;
	char *out_dir = unit_tempdir_new();
	char *out_path = xasprintf("%s/rebuilt.tar", out_dir);
	int out_fd;
	struct strata_error *err = NULL;
	struct strata_digest expected;
	struct strata_digest actual;
	char *rebuilt = NULL;
	size_t rebuilt_len = 0;

	layer_unpack_bytes(&l, tar, len, chunk, 0, default_rootless());
	if (l.rc != 0) {
		char *message = strata_error_format(l.err);

		ck_abort_msg("unpack with %zu-byte reads failed: %s", chunk, message);
	}
	ck_assert_uint_eq(l.result.tar_size, len);

	out_fd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ck_assert_int_ge(out_fd, 0);
	ck_assert_msg(strata_layer_write_tar(l.dirfd, out_fd, &err) == 0, "rebuilding the tar failed: %s",
		      err ? err->message : "no error");
	ck_assert_int_eq(close(out_fd), 0);

	ck_assert_int_eq(read_file_at(AT_FDCWD, out_path, &rebuilt, &rebuilt_len, &err), 0);
	strata_sha256_buffer(tar, len, &expected);
	strata_sha256_buffer(rebuilt, rebuilt_len, &actual);
	ck_assert_msg(rebuilt_len == len, "rebuilt tar has %zu bytes, the original %zu (%zu-byte reads)", rebuilt_len,
		      len, chunk);
	ck_assert_msg(strata_digest_equal(&expected, &actual), "rebuilt tar differs from the original (%zu-byte reads)",
		      chunk);

	free(rebuilt);
	free(out_path);
	unit_tempdir_remove(out_dir);
	layer_close(&l);
}

START_TEST(test_unpack_tar_split_round_trip)
{
	static const char long_name[] =
		"usr/share/doc/a-package-with-a-rather-long-name-1.2.3/"
		"changelog-entries-for-every-release-since-the-first-one.txt";
	static const size_t chunk_sizes[] = { 7, 512, 1000, 10240, 1 << 20 };
	const size_t big_len = 100003;
	char *big = xmalloc(big_len);
	size_t len = 0;
	char *tar;

	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)('a' + i % 23);

	const struct tar_spec specs[] = {
		{ .path = "usr/", .mode = S_IFDIR | 0755 },
		{ .path = "usr/bin/", .mode = S_IFDIR | 0755 },
		{ .path = "usr/bin/tool", .mode = S_IFREG | 0755, .content = big, .content_len = big_len },
		{ .path = "usr/bin/tool-alias", .mode = S_IFREG | 0755, .hardlink = "usr/bin/tool" },
		{ .path = "usr/bin/sh", .mode = S_IFLNK | 0777, .symlink = "tool" },
		{ .path = long_name, .mode = S_IFREG | 0644, .content = "long name\n" },
		{ .path = "etc/", .mode = S_IFDIR | 0755 },
		{ .path = "etc/motd", .mode = S_IFREG | 0644, .content = "hello\n", .xattr_name = "user.origin",
		  .xattr_value = "unit-test" },
		{ .path = "etc/empty", .mode = S_IFREG | 0644 },
		{ .path = "etc/.wh.removed", .mode = S_IFREG | 0644 },
		{ .path = "var/", .mode = S_IFDIR | 0700 },
	};

	ck_assert_uint_gt(strlen(long_name), 100);
	tar = tar_build(specs, ARRAY_SIZE(specs), &len);

	for (size_t i = 0; i < ARRAY_SIZE(chunk_sizes); i++)
		check_round_trip(tar, len, chunk_sizes[i]);

	/* What the index records for the PAX-only fields. */
	{
		struct layer l;
		const struct strata_index_record *r;
		char *value;

		layer_unpack_bytes(&l, tar, len, 4096, 0, default_rootless());
		assert_unpacked(&l);
		ck_assert_uint_eq(l.result.tar_entries, ARRAY_SIZE(specs));

		r = find_record(&l, long_name);
		ck_assert_uint_eq(r->type, STRATA_ENTRY_REG);
		ck_assert_uint_eq(r->size, strlen("long name\n"));

		r = find_record(&l, "etc/motd");
		ck_assert_uint_ge(r->xattr_len, sizeof("user.origin") + 4 + strlen("unit-test"));
		ck_assert_mem_eq(l.idx.strings + r->xattr_off, "user.origin", sizeof("user.origin"));
		value = xattr_in_root(&l, "etc/motd", "user.origin");
		ck_assert_ptr_nonnull(value);
		ck_assert_str_eq(value, "unit-test");
		free(value);
		layer_close(&l);
	}

	free(tar);
	free(big);
}
END_TEST

Suite *unpack_suite(void)
{
	Suite *s = suite_create("unpack");
	TCase *tc = tcase_create("unpack");

	tcase_add_test(tc, test_unpack_basic_tree);
	tcase_add_test(tc, test_unpack_whiteout_char_device);
	tcase_add_test(tc, test_unpack_opaque_user_xattr_rootless);
	tcase_add_test(tc, test_unpack_opaque_before_its_dir);
	tcase_add_test(tc, test_unpack_opaque_at_root_rejected);
	tcase_add_test(tc, test_unpack_whiteout_invalid_names);
	tcase_add_test(tc, test_unpack_dotdot_rejected);
	tcase_add_test(tc, test_unpack_symlink_parent_rejected);
	tcase_add_test(tc, test_unpack_symlink_deeper_parent_rejected);
	tcase_add_test(tc, test_unpack_hardlink_to_later_entry_pending);
	tcase_add_test(tc, test_unpack_hardlink_to_earlier_entry);
	tcase_add_test(tc, test_unpack_char_device_0_0_rejected);
	tcase_add_test(tc, test_unpack_dir_mode_after_children);
	tcase_add_test(tc, test_unpack_duplicate_file_rejected);
	tcase_add_test(tc, test_unpack_repeated_dir_last_wins);
	tcase_add_test(tc, test_unpack_truncated_tar_fails);
	tcase_add_test(tc, test_unpack_read_error_reported);
	tcase_add_test(tc, test_unpack_devices_rootless_recorded_only);
	tcase_add_test(tc, test_unpack_xattr_recorded_once);
	tcase_add_test(tc, test_unpack_xattr_over_limit_file);
	tcase_add_test(tc, test_unpack_xattr_over_limit_dir);
	tcase_add_test(tc, test_unpack_xattr_over_limit_symlink);
	tcase_add_test(tc, test_unpack_xattr_over_limit_fifo);
	tcase_add_test(tc, test_unpack_tar_split_round_trip);

	if (geteuid() == 0) {
		tcase_add_test(tc, test_unpack_opaque_trusted_xattr);
		tcase_add_test(tc, test_unpack_owner_and_devices_as_root);
	} else {
		unit_skip("test_unpack_opaque_trusted_xattr", "setting trusted.* xattrs needs root");
		unit_skip("test_unpack_owner_and_devices_as_root", "chown and device nodes need root");
	}

	suite_add_tcase(s, tc);
	return s;
}
