/*
 * Unit tests for core/index.c: writing, loading and searching layer indexes.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../core/digest.h"
#include "../../core/index.h"
#include "../../core/util.h"
#include "suites.h"

/* Xattrs in the index encoding: name NUL, uint32 value length (host order), value. */
static const char passwd_xattrs[] =
	"user.comment\0\x03\0\0\0abc"
	"security.capability\0\x04\0\0\0\x01\x02\x00\x03";
#define PASSWD_XATTRS_LEN (sizeof(passwd_xattrs) - 1)

struct index_fixture {
	char *dir;
	int dirfd;
	uint8_t passwd_sha[32];
	uint8_t busybox_sha[32];
	struct strata_index_entry entries[9];
	size_t count;
};

static void fixture_open(struct index_fixture *f)
{
	struct strata_digest d;

	memset(f, 0, sizeof(*f));
	f->dir = unit_tempdir_new();
	f->dirfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(f->dirfd, 0);
	ck_assert_uint_eq(PASSWD_XATTRS_LEN, 13 + 4 + 3 + 20 + 4 + 4);

	strata_sha256_buffer("root:x:0:0:root:/root:/bin/sh\n", 30, &d);
	memcpy(f->passwd_sha, d.bytes, 32);
	strata_sha256_buffer("busybox", 7, &d);
	memcpy(f->busybox_sha, d.bytes, 32);

	/* Archive order, with every entry type, a whiteout, an opaque directory and a repeated path. */
	f->entries[f->count++] = (struct strata_index_entry){
		.path = "etc", .path_len = 3, .mode = S_IFDIR | 0755, .type = STRATA_ENTRY_DIR,
		.mtime_sec = 1700000000, .mtime_nsec = 1, .link_record = STRATA_INDEX_NONE,
	};
	f->entries[f->count++] = (struct strata_index_entry){
		.path = "etc/passwd", .path_len = 10, .size = 30, .mode = S_IFREG | 0644,
		.uid = 1000, .gid = 100, .type = STRATA_ENTRY_REG, .flags = STRATA_ENTRY_XATTR_NOT_SET,
		.mtime_sec = 1700000001, .mtime_nsec = 999999999, .link_record = STRATA_INDEX_NONE,
		.xattrs = passwd_xattrs, .xattrs_len = PASSWD_XATTRS_LEN, .sha256 = f->passwd_sha,
	};
	f->entries[f->count++] = (struct strata_index_entry){
		.path = "etc/gone", .path_len = 8, .mode = S_IFCHR, .type = STRATA_ENTRY_WHITEOUT,
		.mtime_sec = 1700000002, .link_record = STRATA_INDEX_NONE,
	};
	f->entries[f->count++] = (struct strata_index_entry){
		.path = "bin/busybox", .path_len = 11, .size = 7, .mode = S_IFREG | 04755,
		.type = STRATA_ENTRY_REG, .mtime_sec = -5, .link_record = STRATA_INDEX_NONE,
		.sha256 = f->busybox_sha,
	};
	f->entries[f->count++] = (struct strata_index_entry){
		.path = "bin/ls", .path_len = 6, .link = "bin/busybox", .link_len = 11, .size = 7,
		.mode = S_IFREG | 04755, .type = STRATA_ENTRY_HARDLINK, .mtime_sec = -5, .link_record = 3,
		.sha256 = f->busybox_sha,
	};
	f->entries[f->count++] = (struct strata_index_entry){
		.path = "bin/sh", .path_len = 6, .link = "busybox", .link_len = 7, .size = 7,
		.mode = S_IFLNK | 0777, .type = STRATA_ENTRY_SYMLINK, .link_record = STRATA_INDEX_NONE,
	};
	f->entries[f->count++] = (struct strata_index_entry){
		.path = "dev/sda", .path_len = 7, .mode = S_IFBLK | 0660, .gid = 6, .type = STRATA_ENTRY_BLOCK,
		.rdev_major = 8, .rdev_minor = 0, .flags = STRATA_ENTRY_NOT_CREATED | STRATA_ENTRY_OWNER_NOT_SET,
		.link_record = STRATA_INDEX_NONE,
	};
	f->entries[f->count++] = (struct strata_index_entry){
		.path = "usr/lib/app.so", .path_len = 14, .link = "lib/real.so", .link_len = 11,
		.mode = S_IFREG | 0644, .type = STRATA_ENTRY_HARDLINK, .flags = STRATA_ENTRY_LOWER_COPY,
		.link_record = STRATA_INDEX_NONE,
	};
	/* "etc" again: a later entry for the same directory, now opaque. */
	f->entries[f->count++] = (struct strata_index_entry){
		.path = "etc", .path_len = 3, .mode = S_IFDIR | 0700, .type = STRATA_ENTRY_DIR,
		.flags = STRATA_ENTRY_OPAQUE, .mtime_sec = 1700000009, .link_record = STRATA_INDEX_NONE,
	};
}

static void fixture_write(struct index_fixture *f, const char *name)
{
	struct strata_index_writer w;
	struct strata_error *err = NULL;

	strata_index_writer_init(&w);
	for (size_t i = 0; i < f->count; i++) {
		uint32_t n = strata_index_writer_add(&w, &f->entries[i]);

		ck_assert_uint_eq(n, i);
		/* Paths in the string table are not NUL-terminated: compare path_len bytes. */
		ck_assert_uint_eq(strata_index_writer_record(&w, n)->path_len, f->entries[i].path_len);
		ck_assert_mem_eq(w.strings.data + strata_index_writer_record(&w, n)->path_off, f->entries[i].path,
				 f->entries[i].path_len);
	}
	ck_assert_int_eq(strata_index_writer_write(&w, f->dirfd, name, &err), 0);
	ck_assert_ptr_null(err);
	strata_index_writer_release(&w);
}

static void fixture_close(struct index_fixture *f)
{
	close(f->dirfd);
	unit_tempdir_remove(f->dir);
}

static char *read_whole(int dirfd, const char *name, size_t *len)
{
	struct strata_error *err = NULL;
	char *data = NULL;

	ck_assert_int_eq(read_file_at(dirfd, name, &data, len, &err), 0);
	ck_assert_ptr_null(err);
	return data;
}

static void write_whole(int dirfd, const char *name, const void *data, size_t len)
{
	struct strata_error *err = NULL;

	ck_assert_int_eq(write_file_atomic_at(dirfd, name, data, len, 0644, &err), 0);
	ck_assert_ptr_null(err);
}

static void assert_load_corrupt(int dirfd, const char *name, const char *damage)
{
	struct strata_index idx;
	struct strata_error *err = NULL;
	int rc = strata_index_load(dirfd, name, &idx, &err);

	ck_assert_msg(rc == -1, "index with %s was loaded", damage);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err->message, "corrupt") != NULL, "%s: message `%s` does not say corrupt", damage,
		      err->message);
	ck_assert_msg(strstr(err->message, name) != NULL, "%s: message `%s` does not name the file", damage,
		      err->message);
	ck_assert_ptr_null(idx.buf);
	ck_assert_uint_eq(idx.count, 0);
	strata_error_free(err);
}

START_TEST(test_index_round_trip_fields)
{
	struct index_fixture f;
	struct strata_index idx;
	struct strata_error *err = NULL;

	fixture_open(&f);
	fixture_write(&f, "index");
	ck_assert_int_eq(strata_index_load(f.dirfd, "index", &idx, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_uint_eq(idx.count, f.count);

	for (uint32_t n = 0; n < idx.count; n++) {
		const struct strata_index_entry *e = &f.entries[n];
		const struct strata_index_record *r = &idx.records[n];
		static const uint8_t zero[32];
		size_t len;
		const char *text;

		text = strata_index_path(&idx, n, &len);
		ck_assert_uint_eq(len, e->path_len);
		ck_assert_mem_eq(text, e->path, len);

		text = strata_index_link(&idx, n, &len);
		ck_assert_uint_eq(len, e->link_len);
		if (e->link_len)
			ck_assert_mem_eq(text, e->link, len);

		ck_assert_uint_eq(r->xattr_len, e->xattrs_len);
		if (e->xattrs_len)
			ck_assert_mem_eq(idx.strings + r->xattr_off, e->xattrs, e->xattrs_len);

		ck_assert_uint_eq(r->size, e->size);
		ck_assert_int_eq(r->mtime_sec, e->mtime_sec);
		ck_assert_uint_eq(r->mtime_nsec, e->mtime_nsec);
		ck_assert_uint_eq(r->mode, e->mode);
		ck_assert_uint_eq(r->uid, e->uid);
		ck_assert_uint_eq(r->gid, e->gid);
		ck_assert_uint_eq(r->rdev_major, e->rdev_major);
		ck_assert_uint_eq(r->rdev_minor, e->rdev_minor);
		ck_assert_uint_eq(r->type, e->type);
		ck_assert_uint_eq(r->flags, e->flags);
		ck_assert_uint_eq(r->link_record, e->link_record);
		ck_assert_mem_eq(r->sha256, e->sha256 ? e->sha256 : zero, 32);
	}

	strata_index_release(&idx);
	ck_assert_ptr_null(idx.buf);
	fixture_close(&f);
}
END_TEST

START_TEST(test_index_sorted_by_path)
{
	struct index_fixture f;
	struct strata_index idx;
	struct strata_error *err = NULL;
	uint8_t seen[9] = {0};

	fixture_open(&f);
	fixture_write(&f, "index");
	ck_assert_int_eq(strata_index_load(f.dirfd, "index", &idx, &err), 0);

	for (uint32_t i = 0; i < idx.count; i++) {
		ck_assert_uint_lt(idx.sorted[i], idx.count);
		seen[idx.sorted[i]]++;
	}
	for (uint32_t i = 0; i < idx.count; i++)
		ck_assert_msg(seen[i] == 1, "record %u appears %u times in the sorted table", i, seen[i]);

	for (uint32_t i = 1; i < idx.count; i++) {
		size_t alen;
		size_t blen;
		const char *a = strata_index_path(&idx, idx.sorted[i - 1], &alen);
		const char *b = strata_index_path(&idx, idx.sorted[i], &blen);
		int c = memcmp(a, b, alen < blen ? alen : blen);

		ck_assert_msg(c < 0 || (c == 0 && alen <= blen), "sorted table out of order at %u", i);
		/* Equal paths keep archive order. */
		if (c == 0 && alen == blen)
			ck_assert_uint_lt(idx.sorted[i - 1], idx.sorted[i]);
	}

	strata_index_release(&idx);
	fixture_close(&f);
}
END_TEST

START_TEST(test_index_find_present_and_absent)
{
	struct index_fixture f;
	struct strata_index idx;
	struct strata_error *err = NULL;
	static const char *const absent[] = {
		"", "a", "bin", "bin/", "etc/pass", "etc/passwdx", "etc/passwd/x", "usr/lib", "zzz", "ETC",
	};

	fixture_open(&f);
	fixture_write(&f, "index");
	ck_assert_int_eq(strata_index_load(f.dirfd, "index", &idx, &err), 0);

	/* Every path but the repeated "etc" finds its own record. */
	for (uint32_t n = 1; n + 1 < f.count; n++) {
		uint32_t found = strata_index_find(&idx, f.entries[n].path, f.entries[n].path_len);

		ck_assert_msg(found == n, "`%s` found as record %u, expected %u", f.entries[n].path, found, n);
	}
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
		ck_assert_msg(strata_index_find(&idx, absent[i], strlen(absent[i])) == STRATA_INDEX_NONE,
			      "absent path `%s` was found", absent[i]);

	/* Only `len` bytes of the query count. */
	ck_assert_uint_eq(strata_index_find(&idx, "etc/passwd-and-more", 10), 1);
	ck_assert_uint_eq(strata_index_find(&idx, "bin/shell", 6), 5);

	strata_index_release(&idx);
	fixture_close(&f);
}
END_TEST

START_TEST(test_index_find_repeated_path_last_wins)
{
	struct index_fixture f;
	struct strata_index idx;
	struct strata_error *err = NULL;
	uint32_t found;

	fixture_open(&f);
	fixture_write(&f, "index");
	ck_assert_int_eq(strata_index_load(f.dirfd, "index", &idx, &err), 0);

	found = strata_index_find(&idx, "etc", 3);
	ck_assert_uint_eq(found, f.count - 1);
	ck_assert_uint_eq(idx.records[found].flags, STRATA_ENTRY_OPAQUE);
	ck_assert_int_eq(idx.records[found].mtime_sec, 1700000009);

	strata_index_release(&idx);
	fixture_close(&f);
}
END_TEST

START_TEST(test_index_empty)
{
	char *dir = unit_tempdir_new();
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct strata_index_writer w;
	struct strata_index idx;
	struct strata_error *err = NULL;

	ck_assert_int_ge(dirfd, 0);
	strata_index_writer_init(&w);
	ck_assert_int_eq(strata_index_writer_write(&w, dirfd, "index", &err), 0);
	strata_index_writer_release(&w);

	ck_assert_int_eq(strata_index_load(dirfd, "index", &idx, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert_uint_eq(idx.count, 0);
	ck_assert_uint_eq(strata_index_find(&idx, "", 0), STRATA_INDEX_NONE);
	ck_assert_uint_eq(strata_index_find(&idx, "etc", 3), STRATA_INDEX_NONE);
	strata_index_release(&idx);

	close(dirfd);
	unit_tempdir_remove(dir);
}
END_TEST

START_TEST(test_index_load_missing_file)
{
	char *dir = unit_tempdir_new();
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct strata_index idx;
	struct strata_error *err = NULL;

	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(strata_index_load(dirfd, "index", &idx, &err), -1);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->errnum, ENOENT);
	ck_assert_ptr_nonnull(strstr(err->message, "`index`"));
	strata_error_free(err);

	close(dirfd);
	unit_tempdir_remove(dir);
}
END_TEST

START_TEST(test_index_truncated_is_corrupt)
{
	struct index_fixture f;
	size_t len;
	char *data;
	size_t cuts[6];

	fixture_open(&f);
	fixture_write(&f, "index");
	data = read_whole(f.dirfd, "index", &len);
	cuts[0] = 0;
	cuts[1] = sizeof(struct strata_index_header) - 1;
	cuts[2] = sizeof(struct strata_index_header);
	cuts[3] = len / 2;
	cuts[4] = len - 1;
	cuts[5] = len - PASSWD_XATTRS_LEN;

	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		char damage[64];

		snprintf(damage, sizeof(damage), "%zu of %zu bytes", cuts[i], len);
		write_whole(f.dirfd, "index-cut", data, cuts[i]);
		assert_load_corrupt(f.dirfd, "index-cut", damage);
	}

	/* A byte too many is as wrong as one too few. */
	data = xrealloc(data, len + 1);
	data[len] = 0;
	write_whole(f.dirfd, "index-long", data, len + 1);
	assert_load_corrupt(f.dirfd, "index-long", "one extra byte");

	free(data);
	fixture_close(&f);
}
END_TEST

START_TEST(test_index_bit_flip_is_corrupt)
{
	struct index_fixture f;
	size_t len;
	char *data;
	size_t records;
	size_t record_size = sizeof(struct strata_index_record);
	size_t sorted;

	fixture_open(&f);
	fixture_write(&f, "index");
	data = read_whole(f.dirfd, "index", &len);
	records = sizeof(struct strata_index_header);
	sorted = records + f.count * record_size;

	/*
	 * Each flip makes a size, an offset or a record number point outside the
	 * file.  The format has no checksum, so flips inside string bytes, modes
	 * or times are not detectable and not tested.
	 */
	const struct {
		const char *damage;
		size_t offset;  /* byte whose bit is flipped */
		unsigned bit;
	} flips[] = {
		{ "a flipped magic", offsetof(struct strata_index_header, magic) + 3, 0 },
		{ "a flipped version", offsetof(struct strata_index_header, version), 1 },
		{ "a flipped record count", offsetof(struct strata_index_header, count), 0 },
		{ "a flipped string table size", offsetof(struct strata_index_header, strings_size), 2 },
		{ "a flipped path offset", records + offsetof(struct strata_index_record, path_off) + 3, 7 },
		{ "a flipped path length", records + record_size + offsetof(struct strata_index_record, path_len) + 2, 0 },
		{ "a flipped link offset", records + 4 * record_size + offsetof(struct strata_index_record, link_off) + 3,
		  6 },
		{ "a flipped xattr length", records + record_size + offsetof(struct strata_index_record, xattr_len) + 3,
		  4 },
		{ "a flipped hard link record",
		  records + 4 * record_size + offsetof(struct strata_index_record, link_record) + 1, 3 },
		{ "a flipped sorted table entry", sorted + 2 * sizeof(uint32_t) + 3, 5 },
	};

	for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
		ck_assert_uint_lt(flips[i].offset, len);
		data[flips[i].offset] ^= (char)(1u << flips[i].bit);
		write_whole(f.dirfd, "index-flipped", data, len);
		assert_load_corrupt(f.dirfd, "index-flipped", flips[i].damage);
		data[flips[i].offset] ^= (char)(1u << flips[i].bit);
	}

	/* The restored bytes load again, so each failure above came from its flip. */
	write_whole(f.dirfd, "index-restored", data, len);
	{
		struct strata_index idx;
		struct strata_error *err = NULL;

		ck_assert_int_eq(strata_index_load(f.dirfd, "index-restored", &idx, &err), 0);
		strata_index_release(&idx);
	}

	free(data);
	fixture_close(&f);
}
END_TEST

START_TEST(test_index_entry_type_names)
{
	ck_assert_str_eq(strata_entry_type_name(STRATA_ENTRY_REG), "file");
	ck_assert_str_eq(strata_entry_type_name(STRATA_ENTRY_DIR), "dir");
	ck_assert_str_eq(strata_entry_type_name(STRATA_ENTRY_SYMLINK), "symlink");
	ck_assert_str_eq(strata_entry_type_name(STRATA_ENTRY_HARDLINK), "hardlink");
	ck_assert_str_eq(strata_entry_type_name(STRATA_ENTRY_CHAR), "char");
	ck_assert_str_eq(strata_entry_type_name(STRATA_ENTRY_BLOCK), "block");
	ck_assert_str_eq(strata_entry_type_name(STRATA_ENTRY_FIFO), "fifo");
	ck_assert_str_eq(strata_entry_type_name(STRATA_ENTRY_WHITEOUT), "whiteout");
	ck_assert_str_eq(strata_entry_type_name((enum strata_entry_type)99), "unknown");
}
END_TEST

Suite *index_suite(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("index");

	tcase_add_test(tc, test_index_round_trip_fields);
	tcase_add_test(tc, test_index_sorted_by_path);
	tcase_add_test(tc, test_index_find_present_and_absent);
	tcase_add_test(tc, test_index_find_repeated_path_last_wins);
	tcase_add_test(tc, test_index_empty);
	tcase_add_test(tc, test_index_load_missing_file);
	tcase_add_test(tc, test_index_truncated_is_corrupt);
	tcase_add_test(tc, test_index_bit_flip_is_corrupt);
	tcase_add_test(tc, test_index_entry_type_names);
	suite_add_tcase(s, tc);
	return s;
}
