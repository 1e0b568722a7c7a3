#define _GNU_SOURCE
#include "index.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>

void strata_index_writer_init(struct strata_index_writer *w)
{
	memset(w, 0, sizeof(*w));
	strbuf_append(&w->strings, "", 0);
}

void strata_index_writer_release(struct strata_index_writer *w)
{
	free(w->records);
	strbuf_release(&w->strings);
	memset(w, 0, sizeof(*w));
}

static uint32_t add_string(struct strata_index_writer *w, const void *bytes, size_t len)
{
	uint32_t off = (uint32_t)w->strings.len;

	if (w->strings.len + len > UINT32_MAX)
		STRATA_BUG("layer index string table exceeds 4 GiB");
	strbuf_append(&w->strings, bytes, len);
	return off;
}

uint32_t strata_index_writer_add(struct strata_index_writer *w, const struct strata_index_entry *e)
{
	struct strata_index_record *r;

	if (w->count == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 256;
		w->records = xrealloc(w->records, w->cap * sizeof(*w->records));
	}
	r = &w->records[w->count];
	memset(r, 0, sizeof(*r));
	r->size = e->size;
	r->mtime_sec = e->mtime_sec;
	r->mtime_nsec = e->mtime_nsec;
	r->mode = e->mode;
	r->uid = e->uid;
	r->gid = e->gid;
	r->rdev_major = e->rdev_major;
	r->rdev_minor = e->rdev_minor;
	r->type = (uint16_t)e->type;
	r->flags = e->flags;
	r->link_record = e->link_record;
	r->path_off = add_string(w, e->path, e->path_len);
	r->path_len = (uint32_t)e->path_len;
	if (e->link_len) {
		r->link_off = add_string(w, e->link, e->link_len);
		r->link_len = (uint32_t)e->link_len;
	}
	if (e->xattrs_len) {
		r->xattr_off = add_string(w, e->xattrs, e->xattrs_len);
		r->xattr_len = (uint32_t)e->xattrs_len;
	}
	if (e->sha256)
		memcpy(r->sha256, e->sha256, 32);
	return (uint32_t)w->count++;
}

struct strata_index_record *strata_index_writer_record(struct strata_index_writer *w, uint32_t n)
{
	return &w->records[n];
}

static int compare_paths(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

static int compare_sorted(const void *a, const void *b, void *arg)
{
	const struct strata_index_writer *w = arg;
	const struct strata_index_record *ra = &w->records[*(const uint32_t *)a];
	const struct strata_index_record *rb = &w->records[*(const uint32_t *)b];
	int c = compare_paths(w->strings.data + ra->path_off, ra->path_len,
			      w->strings.data + rb->path_off, rb->path_len);

	if (c != 0)
		return c;
	/* Equal paths (a directory listed twice): keep archive order. */
	return (*(const uint32_t *)a > *(const uint32_t *)b) - (*(const uint32_t *)a < *(const uint32_t *)b);
}

int strata_index_writer_write(struct strata_index_writer *w, int dirfd, const char *name,
			      struct strata_error **err)
{
	struct strata_index_header hdr = {0};
	auto_free uint32_t *sorted = xmalloc((w->count ? w->count : 1) * sizeof(uint32_t));
	struct strbuf out = {0};
	int rc;

	for (size_t i = 0; i < w->count; i++)
		sorted[i] = (uint32_t)i;
	qsort_r(sorted, w->count, sizeof(uint32_t), compare_sorted, w);

	memcpy(hdr.magic, STRATA_INDEX_MAGIC, 8);
	hdr.version = 1;
	hdr.count = (uint32_t)w->count;
	hdr.strings_size = w->strings.len;

	strbuf_append(&out, &hdr, sizeof(hdr));
	strbuf_append(&out, w->records, w->count * sizeof(*w->records));
	strbuf_append(&out, sorted, w->count * sizeof(uint32_t));
	strbuf_append(&out, w->strings.data, w->strings.len);
	rc = write_file_atomic_at(dirfd, name, out.data, out.len, 0644, err);
	strbuf_release(&out);
	return rc;
}

int strata_index_load(int dirfd, const char *name, struct strata_index *idx, struct strata_error **err)
{
	struct strata_index_header hdr;
	char *buf = NULL;
	size_t len = 0;
	size_t need;

	memset(idx, 0, sizeof(*idx));
	if (read_file_at(dirfd, name, &buf, &len, err) < 0)
		return -1;
	if (len < sizeof(hdr))
		goto corrupt;
	memcpy(&hdr, buf, sizeof(hdr));
	if (memcmp(hdr.magic, STRATA_INDEX_MAGIC, 8) != 0 || hdr.version != 1)
		goto corrupt;
	need = sizeof(hdr) + (size_t)hdr.count * (sizeof(struct strata_index_record) + sizeof(uint32_t));
	if (hdr.strings_size > len || need > len - hdr.strings_size || need + hdr.strings_size != len)
		goto corrupt;

	idx->buf = buf;
	idx->buf_len = len;
	idx->count = hdr.count;
	idx->records = (const struct strata_index_record *)(buf + sizeof(hdr));
	idx->sorted = (const uint32_t *)(buf + sizeof(hdr) + hdr.count * sizeof(struct strata_index_record));
	idx->strings = buf + need;
	idx->strings_size = hdr.strings_size;

	for (uint32_t i = 0; i < idx->count; i++) {
		const struct strata_index_record *r = &idx->records[i];

		if ((uint64_t)r->path_off + r->path_len > hdr.strings_size ||
		    (uint64_t)r->link_off + r->link_len > hdr.strings_size ||
		    (uint64_t)r->xattr_off + r->xattr_len > hdr.strings_size ||
		    idx->sorted[i] >= idx->count ||
		    (r->link_record != STRATA_INDEX_NONE && r->link_record >= idx->count)) {
			strata_index_release(idx);
			buf = NULL;
			goto corrupt;
		}
	}
	return 0;

corrupt:
	free(buf);
	return strata_error_set(err, 0, "layer index `%s` is corrupt", name);
}

void strata_index_release(struct strata_index *idx)
{
	free(idx->buf);
	memset(idx, 0, sizeof(*idx));
}

const char *strata_index_path(const struct strata_index *idx, uint32_t n, size_t *len)
{
	*len = idx->records[n].path_len;
	return idx->strings + idx->records[n].path_off;
}

const char *strata_index_link(const struct strata_index *idx, uint32_t n, size_t *len)
{
	*len = idx->records[n].link_len;
	return idx->strings + idx->records[n].link_off;
}

uint32_t strata_index_find(const struct strata_index *idx, const char *path, size_t len)
{
	uint32_t lo = 0;
	uint32_t hi = idx->count;
	uint32_t found = STRATA_INDEX_NONE;

	/* Lower bound, then take the last of equal paths: a later entry overrides. */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		size_t plen;
		const char *p = strata_index_path(idx, idx->sorted[mid], &plen);
		int c = compare_paths(p, plen, path, len);

		if (c < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	while (lo < idx->count) {
		size_t plen;
		const char *p = strata_index_path(idx, idx->sorted[lo], &plen);

		if (compare_paths(p, plen, path, len) != 0)
			break;
		found = idx->sorted[lo];
		lo++;
	}
	return found;
}

enum strata_entry_type strata_entry_type_from_mode(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFDIR:
		return STRATA_ENTRY_DIR;
	case S_IFLNK:
		return STRATA_ENTRY_SYMLINK;
	case S_IFCHR:
		return STRATA_ENTRY_CHAR;
	case S_IFBLK:
		return STRATA_ENTRY_BLOCK;
	case S_IFIFO:
		return STRATA_ENTRY_FIFO;
	default:
		return STRATA_ENTRY_REG;
	}
}

mode_t strata_entry_type_mode(enum strata_entry_type type)
{
	switch (type) {
	case STRATA_ENTRY_DIR:
		return S_IFDIR;
	case STRATA_ENTRY_SYMLINK:
		return S_IFLNK;
	case STRATA_ENTRY_CHAR:
	case STRATA_ENTRY_WHITEOUT:
		return S_IFCHR;
	case STRATA_ENTRY_BLOCK:
		return S_IFBLK;
	case STRATA_ENTRY_FIFO:
		return S_IFIFO;
	default:
		return S_IFREG;
	}
}

const char *strata_entry_type_name(enum strata_entry_type type)
{
	switch (type) {
	case STRATA_ENTRY_REG:
		return "file";
	case STRATA_ENTRY_DIR:
		return "dir";
	case STRATA_ENTRY_SYMLINK:
		return "symlink";
	case STRATA_ENTRY_HARDLINK:
		return "hardlink";
	case STRATA_ENTRY_CHAR:
		return "char";
	case STRATA_ENTRY_BLOCK:
		return "block";
	case STRATA_ENTRY_FIFO:
		return "fifo";
	case STRATA_ENTRY_WHITEOUT:
		return "whiteout";
	}
	return "unknown";
}

void strata_index_apply_xattrs(const struct strata_index *idx, const struct strata_index_record *r, int fd,
			       bool rootless)
{
	const char *p = idx->strings + r->xattr_off;
	const char *end = p + r->xattr_len;

	while (p < end) {
		const char *name = p;
		uint32_t size;

		p += strlen(p) + 1;
		memcpy(&size, p, 4);
		p += 4;
		if (strncmp(name, "trusted.overlay.", 16) != 0 && strncmp(name, "user.overlay.", 13) != 0 &&
		    (!rootless || strncmp(name, "user.", 5) == 0))
			fsetxattr(fd, name, p, size, 0);
		p += size;
	}
}
