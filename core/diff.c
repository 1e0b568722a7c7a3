#define _GNU_SOURCE
#include "diff.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <stdlib.h>
#include <unistd.h>

#include "digest.h"
#include "unpack.h"
#include "util.h"

const char *strata_change_detail_name(enum strata_change_detail detail)
{
	switch (detail) {
	case STRATA_DETAIL_NONE:
		return "";
	case STRATA_DETAIL_CONTENT:
		return "content";
	case STRATA_DETAIL_METADATA:
		return "metadata";
	case STRATA_DETAIL_TYPE:
		return "type";
	case STRATA_DETAIL_LINK:
		return "link";
	case STRATA_DETAIL_WRITTEN:
		return "written";
	case STRATA_DETAIL_REWRITTEN:
		return "rewritten";
	}
	return "";
}

int strata_tree_load(struct strata_store *store, const struct strata_image *image, size_t nlayers,
		     struct strata_tree *tree, struct strata_error **err)
{
	memset(tree, 0, sizeof(*tree));
	if (nlayers > image->nlayers)
		nlayers = image->nlayers;
	tree->indexes = xcalloc(nlayers + 1, sizeof(*tree->indexes));
	tree->keys = xcalloc(nlayers + 1, sizeof(*tree->keys));
	for (size_t i = 0; i < nlayers; i++) {
		char hex[STRATA_DIGEST_HEX_LEN + 1];
		auto_free char *dir = NULL;
		auto_close int fd = -1;

		strata_digest_hex(&image->layers[i].key, hex);
		dir = xasprintf("layers/%s", hex);
		fd = openat(store->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			strata_error_set(err, errno, "layer %zu (`%s/%s`) is missing from the store", i + 1, store->path, dir);
			strata_tree_release(tree);
			return -1;
		}
		if (strata_index_load(fd, "index", &tree->indexes[i], err) < 0) {
			strata_error_wrap(err, "layer %zu", i + 1);
			strata_tree_release(tree);
			return -1;
		}
		tree->keys[i] = image->layers[i].key;
		tree->nlayers = i + 1;
	}
	return strata_merge_layers(tree->indexes, tree->nlayers, &tree->merged, err);
}

void strata_tree_release(struct strata_tree *tree)
{
	for (size_t i = 0; i < tree->nlayers; i++)
		strata_index_release(&tree->indexes[i]);
	free(tree->indexes);
	free(tree->keys);
	strata_merged_release(&tree->merged);
	memset(tree, 0, sizeof(*tree));
}

static const struct strata_index_record *record_of(const struct strata_tree *t, const struct strata_merged_entry *e)
{
	return &t->indexes[e->layer].records[e->record];
}

/* Hard links have the type of the file they share. */
static enum strata_entry_type plain_type(enum strata_entry_type type)
{
	return type == STRATA_ENTRY_HARDLINK ? STRATA_ENTRY_REG : type;
}

static void fill_side(struct strata_change_side *side, const struct strata_tree *t, const struct strata_merged_entry *e)
{
	const struct strata_index_record *r = record_of(t, e);

	side->present = true;
	side->type = plain_type((enum strata_entry_type)r->type);
	side->size = r->type == STRATA_ENTRY_DIR ? 0 : r->size;
	side->mode = r->mode;
	side->layer = (int)e->layer + 1;
}

static bool same_metadata(const struct strata_index *ia, const struct strata_index_record *a,
			  const struct strata_index *ib, const struct strata_index_record *b)
{
	return (a->mode & 07777) == (b->mode & 07777) && a->uid == b->uid && a->gid == b->gid &&
	       a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec && a->xattr_len == b->xattr_len &&
	       memcmp(ia->strings + a->xattr_off, ib->strings + b->xattr_off, a->xattr_len) == 0;
}

/* Classifies how two index records for one path differ; DETAIL_NONE when they do not. */
static enum strata_change_detail compare_records(const struct strata_index *ia, const struct strata_index_record *a,
						 const struct strata_index *ib, const struct strata_index_record *b)
{
	enum strata_entry_type ta = plain_type((enum strata_entry_type)a->type);
	enum strata_entry_type tb = plain_type((enum strata_entry_type)b->type);

	if (ta != tb)
		return STRATA_DETAIL_TYPE;
	switch (ta) {
	case STRATA_ENTRY_SYMLINK:
		if (a->link_len != b->link_len ||
		    memcmp(ia->strings + a->link_off, ib->strings + b->link_off, a->link_len) != 0)
			return STRATA_DETAIL_LINK;
		break;
	case STRATA_ENTRY_REG:
		if (a->size != b->size || memcmp(a->sha256, b->sha256, 32) != 0)
			return STRATA_DETAIL_CONTENT;
		break;
	case STRATA_ENTRY_CHAR:
	case STRATA_ENTRY_BLOCK:
		if (a->rdev_major != b->rdev_major || a->rdev_minor != b->rdev_minor)
			return STRATA_DETAIL_TYPE;
		break;
	default:
		break;
	}
	if (!same_metadata(ia, a, ib, b))
		return STRATA_DETAIL_METADATA;
	return STRATA_DETAIL_NONE;
}

static bool tree_has_layer(const struct strata_tree *t, const struct strata_digest *key)
{
	for (size_t i = 0; i < t->nlayers; i++)
		if (strata_digest_equal(&t->keys[i], key))
			return true;
	return false;
}

static bool is_below(const char *path, size_t len, const char *prefix, size_t plen)
{
	return len > plen && path[plen] == '/' && memcmp(path, prefix, plen) == 0;
}

int strata_diff_trees(const struct strata_tree *before, const struct strata_tree *after, strata_change_fn fn,
		      void *data, struct strata_error **err)
{
	const struct strata_merged *mb = &before->merged;
	const struct strata_merged *ma = &after->merged;
	size_t i = 0;
	size_t j = 0;
	const char *deleted_dir = NULL;    /* before-side entries below this path are deleted with it */
	size_t deleted_dir_len = 0;
	int rc;

	(void)err;
	while (i < mb->count || j < ma->count) {
		struct strata_change c = {0};
		int cmp;

		if (i < mb->count && j < ma->count)
			cmp = strata_path_compare(mb->entries[i].path, mb->entries[i].path_len, ma->entries[j].path,
						  ma->entries[j].path_len);
		else
			cmp = i < mb->count ? -1 : 1;

		if (cmp < 0) {
			const struct strata_merged_entry *e = &mb->entries[i++];

			if (deleted_dir && is_below(e->path, e->path_len, deleted_dir, deleted_dir_len))
				continue;
			c.path = e->path;
			c.path_len = e->path_len;
			c.kind = STRATA_CHANGE_DELETED;
			fill_side(&c.before, before, e);
			deleted_dir = e->path;
			deleted_dir_len = e->path_len;
		} else if (cmp > 0) {
			const struct strata_merged_entry *e = &ma->entries[j++];

			c.path = e->path;
			c.path_len = e->path_len;
			c.kind = STRATA_CHANGE_ADDED;
			fill_side(&c.after, after, e);
		} else {
			const struct strata_merged_entry *eb = &mb->entries[i++];
			const struct strata_merged_entry *ea = &ma->entries[j++];
			const struct strata_index_record *rb = record_of(before, eb);
			const struct strata_index_record *ra = record_of(after, ea);

			if (ra->type == STRATA_ENTRY_DIR && (ra->flags & STRATA_ENTRY_OPAQUE) &&
			    !tree_has_layer(before, &after->keys[ea->layer])) {
				/*
				 * An opaque directory was deleted and re-created, so it is
				 * reported as deleted, as podman does. Its new contents are
				 * listed below it, and the lower contents it hides are not.
				 */
				c.path = ea->path;
				c.path_len = ea->path_len;
				c.kind = STRATA_CHANGE_DELETED;
				fill_side(&c.before, before, eb);
				fill_side(&c.after, after, ea);
				deleted_dir = eb->path;
				deleted_dir_len = eb->path_len;
				rc = fn(data, &c);
				if (rc != 0)
					return rc;
				continue;
			}
			c.detail = compare_records(&before->indexes[eb->layer], rb, &after->indexes[ea->layer], ra);
			if (c.detail == STRATA_DETAIL_NONE) {
				/* Identical: still a change if a layer the first stack lacks shipped it again. */
				if ((ra->flags & STRATA_ENTRY_IMPLICIT) || tree_has_layer(before, &after->keys[ea->layer]))
					continue;
				c.detail = STRATA_DETAIL_REWRITTEN;
			}
			c.path = ea->path;
			c.path_len = ea->path_len;
			c.kind = STRATA_CHANGE_CHANGED;
			fill_side(&c.before, before, eb);
			fill_side(&c.after, after, ea);
			/* A directory replaced by another type takes its contents with it. */
			if (c.before.type == STRATA_ENTRY_DIR && c.after.type != STRATA_ENTRY_DIR) {
				deleted_dir = eb->path;
				deleted_dir_len = eb->path_len;
			}
		}
		rc = fn(data, &c);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- views --------------------------------------------------------------------- */

struct upper_entry {
	char *path;
	size_t path_len;
	struct stat st;
	bool whiteout;
	bool opaque;
};

struct upper_list {
	struct upper_entry *entries;
	size_t count;
	size_t cap;
};

static int compare_upper(const void *a, const void *b)
{
	const struct upper_entry *ea = a;
	const struct upper_entry *eb = b;

	return strata_path_compare(ea->path, ea->path_len, eb->path, eb->path_len);
}

static bool is_opaque_dir(int dirfd, const char *name, bool rootless)
{
	char value[4];
	auto_close int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = fgetxattr(fd, rootless ? "user.overlay.opaque" : "trusted.overlay.opaque", value, sizeof(value));
	return n == 1 && value[0] == 'y';
}

/* Collects every entry below dirfd with its lstat; `is_upper` marks whiteouts and opaque directories. */
static int collect_tree(int dirfd, struct strbuf *prefix, bool is_upper, bool rootless, struct upper_list *list,
			struct strata_error **err)
{
	int fd = dup(dirfd);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	int rc = 0;

	if (dir == NULL) {
		if (fd >= 0)
			close(fd);
		return strata_error_set(err, errno, "cannot read `%s`", prefix->len ? prefix->data : ".");
	}
	while ((de = readdir(dir)) != NULL) {
		size_t saved = prefix->len;
		struct upper_entry e = {0};

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (prefix->len)
			strbuf_addstr(prefix, "/");
		strbuf_addstr(prefix, de->d_name);
		if (fstatat(dirfd, de->d_name, &e.st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = strata_error_set(err, errno, "cannot stat `%s`", prefix->data);
			break;
		}
		e.path = xstrdup(prefix->data);
		e.path_len = prefix->len;
		e.whiteout = is_upper && S_ISCHR(e.st.st_mode) && e.st.st_rdev == makedev(0, 0);
		e.opaque = is_upper && S_ISDIR(e.st.st_mode) && is_opaque_dir(dirfd, de->d_name, rootless);
		if (list->count == list->cap) {
			list->cap = list->cap ? list->cap * 2 : 256;
			list->entries = xrealloc(list->entries, list->cap * sizeof(*list->entries));
		}
		list->entries[list->count++] = e;
		if (S_ISDIR(e.st.st_mode)) {
			int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0) {
				rc = strata_error_set(err, errno, "cannot open `%s`", prefix->data);
				break;
			}
			rc = collect_tree(sub, prefix, is_upper, rootless, list, err);
			close(sub);
			if (rc < 0)
				break;
		}
		prefix->len = saved;
		prefix->data[saved] = '\0';
	}
	closedir(dir);
	return rc;
}

static void free_upper(struct upper_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->entries[i].path);
	free(list->entries);
}

/* Serialises a file's xattrs like the index does, leaving out overlay's own. */
static void read_xattrs(int dirfd, const char *path, struct strbuf *out)
{
	auto_free char *proc = NULL;
	auto_close int fd = strata_openat_beneath(dirfd, path, O_PATH);
	char names[4096];
	ssize_t n;

	if (fd < 0)
		return;
	proc = xasprintf("/proc/self/fd/%d", fd);
	n = llistxattr(proc, names, sizeof(names));
	for (ssize_t off = 0; n > 0 && off < n; off += (ssize_t)strlen(names + off) + 1) {
		const char *name = names + off;
		char value[65536];
		ssize_t vlen;
		uint32_t size;

		if (strncmp(name, "trusted.overlay.", 16) == 0 || strncmp(name, "user.overlay.", 13) == 0)
			continue;
		vlen = lgetxattr(proc, name, value, sizeof(value));
		if (vlen < 0)
			continue;
		size = (uint32_t)vlen;
		strbuf_append(out, name, strlen(name) + 1);
		strbuf_append(out, &size, 4);
		strbuf_append(out, value, (size_t)vlen);
	}
}

/* True when the order of xattrs differs but the set is the same. */
static bool same_xattr_set(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t off = 0;

	if (alen != blen)
		return false;
	while (off < alen) {
		const char *name = a + off;
		uint32_t size;
		bool found = false;

		off += strlen(name) + 1;
		memcpy(&size, a + off, 4);
		off += 4;
		for (size_t p = 0; p < blen && !found;) {
			const char *bname = b + p;
			uint32_t bsize;

			p += strlen(bname) + 1;
			memcpy(&bsize, b + p, 4);
			p += 4;
			if (strcmp(bname, name) == 0 && bsize == size && memcmp(b + p, a + off, size) == 0)
				found = true;
			p += bsize;
		}
		if (!found)
			return false;
		off += size;
	}
	return true;
}

struct view_differ {
	const struct strata_tree *tree;
	int *layer_roots;           /* root/ of each layer, to read link counts */
	int rootfd;                 /* root of the upper directory or of the copy */
	struct strata_merged recreated; /* copy driver: directories deleted and made again (paths only) */
	struct timespec copied_at;  /* copy driver: when the copy was finished */
	bool has_copy_time;
	bool rootless;
	bool copy;                  /* copy driver: the walked tree is complete */
	bool details;
	strata_change_fn fn;
	void *data;
};

/* Compares a walked entry's xattrs (overlay's own left out) with the image's record. */
static bool metadata_differs(const struct view_differ *v, const struct upper_entry *u, const struct strata_index *idx,
			     const struct strata_index_record *r)
{
	struct strbuf xattrs = {0};
	bool differs;

	read_xattrs(v->rootfd, u->path, &xattrs);
	differs = !same_xattr_set(xattrs.data ? xattrs.data : "", xattrs.len, idx->strings + r->xattr_off, r->xattr_len);
	strbuf_release(&xattrs);
	return differs;
}

static bool content_differs(const struct view_differ *v, const struct upper_entry *u,
			    const struct strata_index_record *r)
{
	auto_close int fd = -1;
	struct strata_sha256 *hash;
	struct strata_digest digest;
	char buf[1 << 16];
	ssize_t n;

	if ((uint64_t)u->st.st_size != r->size)
		return true;
	fd = strata_openat_beneath(v->rootfd, u->path, O_RDONLY);
	if (fd < 0)
		return true;
	hash = strata_sha256_new();
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		strata_sha256_update(hash, buf, (size_t)n);
	strata_sha256_final(hash, &digest);
	strata_sha256_free(hash);
	return n < 0 || memcmp(digest.bytes, r->sha256, 32) != 0;
}

static bool link_differs(const struct view_differ *v, const struct upper_entry *u, const struct strata_index *idx,
			 const struct strata_index_record *r)
{
	char target[4096];
	ssize_t n;
	auto_free char *parent = NULL;
	const char *slash = strrchr(u->path, '/');
	auto_close int pfd = -1;

	parent = slash ? xstrndup(u->path, (size_t)(slash - u->path)) : NULL;
	pfd = parent ? strata_openat_beneath(v->rootfd, parent, O_PATH | O_DIRECTORY) : dup(v->rootfd);
	if (pfd < 0)
		return true;
	n = readlinkat(pfd, slash ? slash + 1 : u->path, target, sizeof(target));
	return n < 0 || (size_t)n != r->link_len || memcmp(target, idx->strings + r->link_off, r->link_len) != 0;
}

/* True when a walked entry's stat differs from the image's record the way podman compares them. */
static bool stat_differs(const struct view_differ *v, const struct upper_entry *u, const struct strata_merged_entry *m,
			 const struct strata_index_record *r)
{
	mode_t mask = (v->rootless && S_ISDIR(u->st.st_mode)) ? 07077 : 07777;

	if ((u->st.st_mode & mask) != (r->mode & mask))
		return true;
	/* In a non-root store every file belongs to the user on disk; the image's owners live in the index. */
	if (!v->rootless && (u->st.st_uid != r->uid || u->st.st_gid != r->gid))
		return true;
	if (u->st.st_mtim.tv_sec != r->mtime_sec || (uint32_t)u->st.st_mtim.tv_nsec != r->mtime_nsec)
		return true;
	if (!S_ISDIR(u->st.st_mode) && (uint64_t)u->st.st_size != r->size)
		return true;
	if ((S_ISCHR(u->st.st_mode) || S_ISBLK(u->st.st_mode)) && u->st.st_rdev != makedev(r->rdev_major, r->rdev_minor))
		return true;
	/* A new hard link to a file changes its link count, which podman reports too. */
	if (!S_ISDIR(u->st.st_mode)) {
		struct stat lower;
		auto_free char *path = xstrndup(m->path, m->path_len);
		const char *slash = strrchr(path, '/');
		auto_free char *dir = slash ? xstrndup(path, (size_t)(slash - path)) : NULL;
		auto_close int dfd = dir ? strata_openat_beneath(v->layer_roots[m->layer], dir, O_PATH | O_DIRECTORY)
					 : dup(v->layer_roots[m->layer]);

		if (dfd >= 0 && fstatat(dfd, slash ? slash + 1 : path, &lower, AT_SYMLINK_NOFOLLOW) == 0 &&
		    lower.st_nlink != u->st.st_nlink)
			return true;
	}
	return false;
}

/* True when a file of a copy view changed status (any write, chmod, chown or link) after the copy was made. */
static bool written_after_copy(const struct view_differ *v, const struct upper_entry *u)
{
	if (!v->has_copy_time)
		return false;
	return u->st.st_ctim.tv_sec > v->copied_at.tv_sec ||
	       (u->st.st_ctim.tv_sec == v->copied_at.tv_sec && u->st.st_ctim.tv_nsec > v->copied_at.tv_nsec);
}

/*
 * Decides the change for a walked entry that the image also has; returns
 * false when it is unchanged.  As in `podman diff`, every non-directory in
 * an upper directory is changed, even after a chmod to the same mode,
 * because the kernel copied it up for a write.  In a copy view, a status
 * change after the copy was made stands for that write.  A directory is
 * changed only when its mode, owner, mtime or xattrs differ.  With
 * `details`, content is hashed to tell a content change from a
 * metadata-only one.
 */
static bool classify_written(const struct view_differ *v, const struct upper_entry *u,
			     const struct strata_merged_entry *m, struct strata_change *c)
{
	const struct strata_index *idx = &v->tree->indexes[m->layer];
	const struct strata_index_record *r = &idx->records[m->record];
	enum strata_entry_type type = strata_entry_type_from_mode(u->st.st_mode);
	bool differs;

	if (type != plain_type((enum strata_entry_type)r->type)) {
		c->detail = STRATA_DETAIL_TYPE;
		return true;
	}
	if (type == STRATA_ENTRY_SYMLINK && link_differs(v, u, idx, r)) {
		c->detail = STRATA_DETAIL_LINK;
		return true;
	}
	if (type == STRATA_ENTRY_DIR)
		differs = stat_differs(v, u, m, r) || metadata_differs(v, u, idx, r);
	else if (!v->copy)
		differs = true;  /* in the upper directory, so the view wrote it, as podman counts it */
	else
		differs = written_after_copy(v, u) || stat_differs(v, u, m, r) || metadata_differs(v, u, idx, r);
	if (!differs)
		return false;
	c->detail = STRATA_DETAIL_METADATA;
	if (type == STRATA_ENTRY_REG) {
		if ((uint64_t)u->st.st_size != r->size)
			c->detail = STRATA_DETAIL_CONTENT;
		else if (!v->details)
			c->detail = STRATA_DETAIL_WRITTEN;
		else if (content_differs(v, u, r))
			c->detail = STRATA_DETAIL_CONTENT;
	}
	return true;
}

static void fill_walked(struct strata_change_side *side, const struct upper_entry *u)
{
	side->present = true;
	side->type = strata_entry_type_from_mode(u->st.st_mode);
	side->size = S_ISDIR(u->st.st_mode) ? 0 : (uint64_t)u->st.st_size;
	side->mode = (uint32_t)u->st.st_mode;
	side->layer = 0;
	side->inode = (uint64_t)u->st.st_ino;
}

static void fill_image(struct strata_change_side *side, const struct view_differ *v,
		       const struct strata_merged_entry *m)
{
	fill_side(side, v->tree, m);
}

static bool under_recreated(const struct view_differ *v, const char *path, size_t len)
{
	for (size_t i = len; i > 0; i--)
		if (path[i - 1] == '/' && strata_merged_find(&v->recreated, path, i - 1))
			return true;
	return false;
}

/*
 * Emits deletions for the image entries in [from, to) of the merged list
 * (one subtree), top-most only, that the walked tree lacks.
 */
static int emit_missing(const struct view_differ *v, const struct upper_list *walked, size_t from, size_t to,
			size_t *wpos)
{
	const struct strata_merged *mg = &v->tree->merged;
	const char *deleted_dir = NULL;
	size_t deleted_dir_len = 0;
	size_t w = *wpos;

	for (size_t i = from; i < to; i++) {
		const struct strata_merged_entry *m = &mg->entries[i];
		int cmp = 1;
		struct strata_change c = {0};
		int rc;

		if (deleted_dir && is_below(m->path, m->path_len, deleted_dir, deleted_dir_len))
			continue;
		if (under_recreated(v, m->path, m->path_len))
			continue;  /* its deletion is reported once, as the re-created directory */
		while (w < walked->count &&
		       (cmp = strata_path_compare(walked->entries[w].path, walked->entries[w].path_len, m->path,
						  m->path_len)) < 0)
			w++;
		if (w < walked->count && cmp == 0 && !walked->entries[w].whiteout)
			continue;
		c.path = m->path;
		c.path_len = m->path_len;
		c.kind = STRATA_CHANGE_DELETED;
		fill_image(&c.before, v, m);
		deleted_dir = m->path;
		deleted_dir_len = m->path_len;
		rc = v->fn(v->data, &c);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/*
 * Reports the changes of a walked tree.  With the overlay driver the walk
 * covers the upper directory: whiteouts delete, opaque directories replace
 * their lower contents, and what is not in the upper is unchanged.  With the
 * copy driver the walk covers the whole tree, which is compared like an
 * opaque root.
 */
static int diff_walked(const struct view_differ *v, struct upper_list *walked)
{
	const struct strata_merged *mg = &v->tree->merged;
	const char *deleted_dir = NULL;
	size_t deleted_dir_len = 0;
	int rc;

	if (v->copy) {
		size_t w = 0;

		rc = emit_missing(v, walked, 0, mg->count, &w);
		if (rc != 0)
			return rc;
	}
	for (size_t i = 0; i < walked->count; i++) {
		const struct upper_entry *u = &walked->entries[i];
		const struct strata_merged_entry *m = strata_merged_find(mg, u->path, u->path_len);
		struct strata_change c = { .path = u->path, .path_len = u->path_len };

		if (deleted_dir && is_below(u->path, u->path_len, deleted_dir, deleted_dir_len))
			continue;
		if (u->whiteout) {
			if (m == NULL)
				continue;  /* hides nothing the image has */
			c.kind = STRATA_CHANGE_DELETED;
			fill_image(&c.before, v, m);
		} else if (m == NULL) {
			c.kind = STRATA_CHANGE_ADDED;
			fill_walked(&c.after, u);
		} else if ((u->opaque || (v->copy && strata_merged_find(&v->recreated, u->path, u->path_len))) &&
			   S_ISDIR(u->st.st_mode) &&
			   plain_type((enum strata_entry_type)v->tree->indexes[m->layer].records[m->record].type) ==
			   STRATA_ENTRY_DIR) {
			/* Deleted and re-created: reported as deleted, like podman; its new contents follow. */
			c.kind = STRATA_CHANGE_DELETED;
			fill_image(&c.before, v, m);
			fill_walked(&c.after, u);
		} else {
			if (!classify_written(v, u, m, &c))
				continue;
			c.kind = STRATA_CHANGE_CHANGED;
			fill_image(&c.before, v, m);
			fill_walked(&c.after, u);
			if (c.before.type == STRATA_ENTRY_DIR && c.after.type != STRATA_ENTRY_DIR) {
				deleted_dir = u->path;
				deleted_dir_len = u->path_len;
			}
		}
		rc = v->fn(v->data, &c);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Merges the deletions from emit_missing into path order: collect, sort, replay. */
struct collected {
	struct strata_change *changes;
	char **paths;
	size_t count;
	size_t cap;
};

static int collect_change(void *data, const struct strata_change *c)
{
	struct collected *out = data;

	if (out->count == out->cap) {
		out->cap = out->cap ? out->cap * 2 : 64;
		out->changes = xrealloc(out->changes, out->cap * sizeof(*out->changes));
		out->paths = xrealloc(out->paths, out->cap * sizeof(*out->paths));
	}
	out->paths[out->count] = xstrndup(c->path, c->path_len);
	out->changes[out->count] = *c;
	out->changes[out->count].path = out->paths[out->count];
	out->count++;
	return 0;
}

static int compare_changes(const void *a, const void *b)
{
	const struct strata_change *ca = a;
	const struct strata_change *cb = b;

	return strata_path_compare(ca->path, ca->path_len, cb->path, cb->path_len);
}

static bool has_change(const struct collected *changes, size_t sorted_count, const char *path, size_t len)
{
	size_t lo = 0;
	size_t hi = sorted_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strata_path_compare(changes->changes[mid].path, changes->changes[mid].path_len, path, len);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = sorted_count; i < changes->count; i++)
		if (changes->changes[i].path_len == len && memcmp(changes->changes[i].path, path, len) == 0)
			return true;
	return false;
}

/*
 * Marks the ancestors of every changed directory as changed, as podman
 * does: after `rm -r /usr/lib/x/y`, /usr/lib/x changed (its mtime) and so
 * /usr/lib and /usr are listed too, while a file changed inside a directory
 * does not list the directory.  Returns how many were added.
 */
static size_t add_changed_parents(const struct strata_tree *tree, struct collected *changes)
{
	size_t sorted = changes->count;
	size_t added = 0;

	for (size_t i = 0; i < sorted; i++) {
		const struct strata_change *c = &changes->changes[i];
		size_t len;

		if (c->kind != STRATA_CHANGE_CHANGED || c->after.type != STRATA_ENTRY_DIR)
			continue;
		for (len = c->path_len; len > 0; len--) {
			const struct strata_merged_entry *m;
			struct strata_change parent = { .kind = STRATA_CHANGE_CHANGED, .detail = STRATA_DETAIL_METADATA };
			const char *path = changes->changes[i].path;

			if (path[len - 1] != '/')
				continue;
			if (has_change(changes, sorted, path, len - 1))
				break;  /* already listed, and so are its ancestors */
			m = strata_merged_find(&tree->merged, path, len - 1);
			if (m == NULL)
				break;
			parent.path = path;
			parent.path_len = len - 1;
			fill_side(&parent.before, tree, m);
			parent.after = parent.before;
			parent.after.layer = 0;
			collect_change(changes, &parent);
			added++;
		}
	}
	return added;
}

/*
 * Finds the directories of a copy view that were deleted and made again:
 * their inode differs from the one recorded when the copy was made
 * (views/<name>/dir-inodes: "<inode> <path>" records ending in NUL).
 */
static int find_recreated_dirs(struct strata_store *store, const struct strata_view *view, int rootfd,
			       struct strata_merged *out, struct strbuf *paths)
{
	auto_free char *file = xasprintf("views/%s/dir-inodes", view->name);
	char *data = NULL;
	size_t len = 0;
	struct strata_error *err = NULL;
	size_t count = 0;

	memset(out, 0, sizeof(*out));
	if (read_file_at(store->dirfd, file, &data, &len, &err) < 0) {
		strata_error_free(err);
		return 0;  /* a copy made before this record existed: nothing is known */
	}
	strbuf_append(paths, "", 0);
	for (size_t off = 0; off < len;) {
		char *rec = data + off;
		size_t rlen = strnlen(rec, len - off);
		char *space = memchr(rec, ' ', rlen);
		struct statx st;

		off += rlen + 1;
		if (space == NULL)
			continue;
		*space = '\0';
		if (statx(rootfd, space + 1, AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME, &st) == 0 &&
		    S_ISDIR(st.stx_mode) && strcmp(strata_dir_identity(&st), rec) != 0) {
			size_t at = paths->len;

			strbuf_append(paths, space + 1, strlen(space + 1) + 1);
			out->entries = xrealloc(out->entries, (count + 1) * sizeof(*out->entries));
			out->entries[count].path = (const char *)(uintptr_t)at;  /* fixed up below */
			out->entries[count].path_len = (uint32_t)strlen(space + 1);
			count++;
		}
	}
	for (size_t i = 0; i < count; i++)
		out->entries[i].path = paths->data + (uintptr_t)out->entries[i].path;
	out->count = count;
	free(data);
	/* Records are in merged order already, which strata_merged_find needs. */
	return 0;
}

int strata_diff_view(struct strata_store *store, const struct strata_view *view, bool details, strata_change_fn fn,
		     void *data, struct strata_error **err)
{
	struct strata_image *image = strata_image_load(store, &view->image, err);
	struct strata_tree tree;
	struct upper_list walked = {0};
	struct strbuf prefix = {0};
	struct collected changes = {0};
	struct strbuf recreated_paths = {0};
	auto_free char *dir = xasprintf("views/%s/%s", view->name, view->driver == STRATA_VIEW_COPY ? "rootfs" : "upper");
	auto_close int rootfd = -1;
	struct view_differ v = { .rootless = store->rootless, .copy = view->driver == STRATA_VIEW_COPY,
				 .details = details, .fn = collect_change, .data = &changes };
	int rc = -1;

	if (image == NULL)
		return strata_error_wrap(err, "view `%s`", view->name);
	if (strata_tree_load(store, image, image->nlayers, &tree, err) < 0) {
		strata_image_free(image);
		return strata_error_wrap(err, "view `%s`", view->name);
	}
	rootfd = openat(store->dirfd, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		strata_error_set(err, errno, "cannot open `%s/%s`", store->path, dir);
		goto out;
	}
	v.tree = &tree;
	v.rootfd = rootfd;
	v.layer_roots = xcalloc(tree.nlayers + 1, sizeof(int));
	for (size_t i = 0; i < tree.nlayers; i++) {
		char hex[STRATA_DIGEST_HEX_LEN + 1];
		auto_free char *root = NULL;

		strata_digest_hex(&tree.keys[i], hex);
		root = xasprintf("layers/%s/root", hex);
		v.layer_roots[i] = openat(store->dirfd, root, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (v.copy) {
		auto_free char *record = xasprintf("views/%s/dir-inodes", view->name);
		struct stat st;

		/* Without the record (a copy made by an older strata), only metadata distinguishes changes. */
		if (fstatat(store->dirfd, record, &st, 0) == 0) {
			v.copied_at = st.st_mtim;
			v.has_copy_time = true;
		}
	}
	if (v.copy && find_recreated_dirs(store, view, rootfd, &v.recreated, &recreated_paths) < 0) {
		strata_error_set(err, errno, "cannot read the directory record of view `%s`", view->name);
		goto out;
	}
	strbuf_append(&prefix, "", 0);
	if (collect_tree(rootfd, &prefix, !v.copy, store->rootless, &walked, err) < 0)
		goto out;
	if (walked.count > 1)
		qsort(walked.entries, walked.count, sizeof(*walked.entries), compare_upper);
	if (diff_walked(&v, &walked) != 0)
		goto out;

	if (changes.count > 1)
		qsort(changes.changes, changes.count, sizeof(*changes.changes), compare_changes);
	if (add_changed_parents(&tree, &changes) > 0)
		qsort(changes.changes, changes.count, sizeof(*changes.changes), compare_changes);
	rc = 0;
	for (size_t i = 0; i < changes.count && rc == 0; i++)
		rc = fn(data, &changes.changes[i]);
out:
	if (v.layer_roots) {
		for (size_t i = 0; i < tree.nlayers; i++)
			if (v.layer_roots[i] >= 0)
				close(v.layer_roots[i]);
		free(v.layer_roots);
	}
	strata_merged_release(&v.recreated);
	free(recreated_paths.data);
	for (size_t i = 0; i < changes.count; i++)
		free(changes.paths[i]);
	free(changes.paths);
	free(changes.changes);
	strbuf_release(&prefix);
	free_upper(&walked);
	strata_tree_release(&tree);
	strata_image_free(image);
	return rc;
}
