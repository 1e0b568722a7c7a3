/*
 * Writer for the built-in teaching image (see demo.h).
 *
 * Every layer is built as an uncompressed ustar archive in memory.  Its
 * sha256 is the layer's diff_id.  The tar is then gzip-compressed (no
 * timestamp, no file name) and the sha256 of the gzip bytes is the blob
 * digest.  All entries have uid/gid 0 and the mtime 2024-01-01T00:00:00Z
 * plus the layer number in seconds.  File contents come from fill_lines(),
 * a deterministic generator of text lines.
 *
 * Layer contents, with sizes in bytes.  "tar" is the uncompressed layer tar
 * (its size follows from the ustar format alone), "gzip" the blob size
 * measured with the zlib build named below:
 *
 * 1. base files: 17 entries, 9796793 file bytes, tar 9807872, gzip 1226839
 *      data/                          dir 0755
 *      data/big.bin                   4194304 (4 MiB)
 *      data/chmod-me.bin              2097152 (2 MiB), mode 0644
 *      data/delete-me.bin             3145728 (3 MiB)
 *      data/dir1/                     dir 0755
 *      data/dir1/a.txt                48
 *      data/gone-dir/                 dir 0755
 *      data/gone-dir/g1.txt           102400 (100 KiB)
 *      data/gone-dir/sub/             dir 0755
 *      data/gone-dir/sub/g2.txt       51200 (50 KiB)
 *      data/keep.txt                  54
 *      data/latest                    symlink to big.bin
 *      data/replace-dir/              dir 0755
 *      data/replace-dir/keep.txt      1024 (1 KiB)
 *      data/replace-dir/old-1.txt     204800 (200 KiB)
 *      etc/                           dir 0755
 *      etc/motd                       83
 * 2. edit 4 KiB of /data/big.bin: 2 entries, 4194304 file bytes, tar 4196352, gzip 554285
 *      data/, data/big.bin (4194304, the first 4096 bytes rewritten, the rest as in layer 1)
 * 3. chmod 0600 /data/chmod-me.bin: 2 entries, 2097152 file bytes, tar 2099200, gzip 251993
 *      data/, data/chmod-me.bin (2097152, same bytes as layer 1, mode 0600)
 * 4. delete /data/delete-me.bin and /data/gone-dir: 3 entries, 0 file bytes, tar 2560, gzip 146
 *      data/, data/.wh.delete-me.bin, data/.wh.gone-dir (empty files)
 * 5. replace /data/replace-dir: 5 entries, 264192 file bytes, tar 267776, gzip 35709
 *      data/, data/replace-dir/, data/replace-dir/.wh..wh..opq (empty),
 *      data/replace-dir/keep.txt 2048 (new contents), data/replace-dir/new.txt 262144 (256 KiB)
 * 6. add /data/added.txt and hardlink /data/added-link: 3 entries, 524288 file bytes,
 *    tar 526848, gzip 67624
 *      data/, data/added.txt 524288 (512 KiB), data/added-link (hardlink, no data)
 *
 * The whole archive is 2149888 bytes (measured with libarchive 3.6.2 and
 * zlib 1.2.13 on Debian 12).  Other zlib builds may compress to other bytes,
 * which changes the blob digests but not the diff_ids.
 */
#define _GNU_SOURCE
#include "demo.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "digest.h"
#include "util.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define KIB 1024
#define MIB (1024 * 1024)

/* 2024-01-01T00:00:00Z.  The entries of layer N have this mtime plus N seconds. */
#define DEMO_EPOCH ((time_t)1704067200)

#define MEDIA_TYPE_INDEX "application/vnd.oci.image.index.v1+json"
#define MEDIA_TYPE_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MEDIA_TYPE_CONFIG "application/vnd.oci.image.config.v1+json"
#define MEDIA_TYPE_LAYER "application/vnd.oci.image.layer.v1.tar+gzip"

/* One entry of a layer tar. */
struct demo_entry {
	const char *path;
	unsigned int type;       /* AE_IFDIR, AE_IFREG or AE_IFLNK */
	unsigned int perm;
	const char *link;        /* symlink target, or for AE_IFREG the hardlink target */
	const char *text;        /* fixed contents of a small file */
	const char *label;       /* fill_lines() label of generated contents */
	size_t size;             /* size of generated contents */
	const char *edit_label;  /* fill_lines() label for the first edit_size bytes */
	size_t edit_size;
};

#define DIR_ENTRY(p) { .path = (p), .type = AE_IFDIR, .perm = 0755 }
#define TEXT_FILE(p, t) { .path = (p), .type = AE_IFREG, .perm = 0644, .text = (t) }
#define GENERATED_FILE(p, mode, l, n) \
	{ .path = (p), .type = AE_IFREG, .perm = (mode), .label = (l), .size = (n) }
#define EMPTY_FILE(p) { .path = (p), .type = AE_IFREG, .perm = 0644 }
#define SYMLINK(p, target) { .path = (p), .type = AE_IFLNK, .perm = 0777, .link = (target) }
#define HARDLINK(p, target) { .path = (p), .type = AE_IFREG, .perm = 0644, .link = (target) }

#define KEEP_TEXT "This file stays the same in every layer of the image.\n"
#define DIR1_TEXT "a.txt lives in /data/dir1 and is never changed.\n"
#define MOTD_TEXT \
	"Welcome to the strata demo image.\n" \
	"Each layer makes one kind of change below /data.\n"

static const struct demo_entry layer_base[] = {
	DIR_ENTRY("data/"),
	GENERATED_FILE("data/big.bin", 0644, "big.bin", 4 * MIB),
	GENERATED_FILE("data/chmod-me.bin", 0644, "chmod-me.bin", 2 * MIB),
	GENERATED_FILE("data/delete-me.bin", 0644, "delete-me.bin", 3 * MIB),
	DIR_ENTRY("data/dir1/"),
	TEXT_FILE("data/dir1/a.txt", DIR1_TEXT),
	DIR_ENTRY("data/gone-dir/"),
	GENERATED_FILE("data/gone-dir/g1.txt", 0644, "g1.txt", 100 * KIB),
	DIR_ENTRY("data/gone-dir/sub/"),
	GENERATED_FILE("data/gone-dir/sub/g2.txt", 0644, "g2.txt", 50 * KIB),
	TEXT_FILE("data/keep.txt", KEEP_TEXT),
	SYMLINK("data/latest", "big.bin"),
	DIR_ENTRY("data/replace-dir/"),
	GENERATED_FILE("data/replace-dir/keep.txt", 0644, "replace-dir/keep.txt", 1 * KIB),
	GENERATED_FILE("data/replace-dir/old-1.txt", 0644, "old-1.txt", 200 * KIB),
	DIR_ENTRY("etc/"),
	TEXT_FILE("etc/motd", MOTD_TEXT),
};

/* A copy-up: the whole file is in the layer although only its first 4 KiB changed. */
static const struct demo_entry layer_edit[] = {
	DIR_ENTRY("data/"),
	{
		.path = "data/big.bin", .type = AE_IFREG, .perm = 0644,
		.label = "big.bin", .size = 4 * MIB,
		.edit_label = "edited big.bin", .edit_size = 4 * KIB,
	},
};

/* A metadata-only change still stores the whole file again. */
static const struct demo_entry layer_chmod[] = {
	DIR_ENTRY("data/"),
	GENERATED_FILE("data/chmod-me.bin", 0600, "chmod-me.bin", 2 * MIB),
};

/* One whiteout removes a file, one removes a whole directory tree. */
static const struct demo_entry layer_delete[] = {
	DIR_ENTRY("data/"),
	EMPTY_FILE("data/.wh.delete-me.bin"),
	EMPTY_FILE("data/.wh.gone-dir"),
};

/* The opaque whiteout hides everything the lower layers had in data/replace-dir/. */
static const struct demo_entry layer_replace[] = {
	DIR_ENTRY("data/"),
	DIR_ENTRY("data/replace-dir/"),
	EMPTY_FILE("data/replace-dir/.wh..wh..opq"),
	GENERATED_FILE("data/replace-dir/keep.txt", 0644, "replace-dir/keep.txt rewritten", 2 * KIB),
	GENERATED_FILE("data/replace-dir/new.txt", 0644, "new.txt", 256 * KIB),
};

/* The hardlink entry carries no data: it names data/added.txt, written before it. */
static const struct demo_entry layer_add[] = {
	DIR_ENTRY("data/"),
	GENERATED_FILE("data/added.txt", 0644, "added.txt", 512 * KIB),
	HARDLINK("data/added-link", "data/added.txt"),
};

struct demo_layer {
	const struct demo_entry *entries;
	size_t count;
};

static const struct demo_layer layers[] = {
	{ layer_base, ARRAY_SIZE(layer_base) },
	{ layer_edit, ARRAY_SIZE(layer_edit) },
	{ layer_chmod, ARRAY_SIZE(layer_chmod) },
	{ layer_delete, ARRAY_SIZE(layer_delete) },
	{ layer_replace, ARRAY_SIZE(layer_replace) },
	{ layer_add, ARRAY_SIZE(layer_add) },
};

/*
 * The counts and byte sums are written out so that readers and tests see the
 * numbers.  build_layer_tar() checks them against the entry tables above.
 */
static const struct strata_demo_layer_info layer_info[] = {
	{ "base files", "strata-demo: base files", 17, 9796793 },
	{ "edit 4 KiB of /data/big.bin", "strata-demo: edit 4 KiB of /data/big.bin", 2, 4194304 },
	{ "chmod 0600 /data/chmod-me.bin", "strata-demo: chmod 0600 /data/chmod-me.bin", 2, 2097152 },
	{ "delete /data/delete-me.bin and /data/gone-dir",
	  "strata-demo: delete /data/delete-me.bin and /data/gone-dir", 3, 0 },
	{ "replace /data/replace-dir", "strata-demo: replace /data/replace-dir", 5, 264192 },
	{ "add /data/added.txt and hardlink /data/added-link",
	  "strata-demo: add /data/added.txt and hardlink /data/added-link", 3, 524288 },
};

_Static_assert(ARRAY_SIZE(layers) == STRATA_DEMO_LAYER_COUNT, "one entry table per layer");
_Static_assert(ARRAY_SIZE(layer_info) == STRATA_DEMO_LAYER_COUNT, "one info entry per layer");

const struct strata_demo_layer_info *strata_demo_layers(size_t *count)
{
	*count = ARRAY_SIZE(layer_info);
	return layer_info;
}

static void cleanup_archive_writep(struct archive **a)
{
	if (*a)
		archive_write_free(*a);
}
static void cleanup_archive_entryp(struct archive_entry **e)
{
	archive_entry_free(*e);
}
static void cleanup_jsonp(json_t **j)
{
	json_decref(*j);
}
static void cleanup_strbufp(struct strbuf *sb)
{
	strbuf_release(sb);
}
#define auto_archive_write __attribute__((cleanup(cleanup_archive_writep)))
#define auto_archive_entry __attribute__((cleanup(cleanup_archive_entryp)))
#define auto_json __attribute__((cleanup(cleanup_jsonp)))
#define auto_strbuf __attribute__((cleanup(cleanup_strbufp)))

/* archive_errno() may be ARCHIVE_ERRNO_MISC (-1), which is no errno value. */
static int archive_errnum(struct archive *a)
{
	int errnum = archive_errno(a);

	return errnum > 0 ? errnum : 0;
}

static const char *archive_message(struct archive *a)
{
	const char *message = archive_error_string(a);

	return message ? message : "unknown libarchive error";
}

static uint32_t fnv1a(const char *text)
{
	uint32_t hash = 2166136261u;

	for (; *text; text++) {
		hash ^= (uint8_t)*text;
		hash *= 16777619u;
	}
	return hash;
}

/*
 * Fills buf with `size` bytes of lines such as
 * "big.bin line 0000001: cedar ember kelp\n", cutting the last line at `size`.
 * The words come from an xorshift32 generator seeded from the label, so the
 * text compresses well without being one repeated byte.
 */
static void fill_lines(char *buf, size_t size, const char *label)
{
	static const char *const words[16] = {
		"amber", "basalt", "cedar", "delta", "ember", "fjord", "granite", "harbor",
		"indigo", "juniper", "kelp", "lagoon", "meadow", "nickel", "orchid", "pebble",
	};
	uint32_t state = fnv1a(label) | 1;
	unsigned long line = 1;
	size_t done = 0;

	while (done < size) {
		char text[256];
		size_t len;

		state ^= state << 13;
		state ^= state >> 17;
		state ^= state << 5;
		len = (size_t)snprintf(text, sizeof(text), "%s line %07lu: %s %s %s\n", label, line,
				       words[state & 15], words[(state >> 4) & 15], words[(state >> 8) & 15]);
		if (len > size - done)
			len = size - done;
		memcpy(buf + done, text, len);
		done += len;
		line++;
	}
}

/* Returns the data of a regular file entry (malloc'd, NULL when empty) and its size. */
static char *make_contents(const struct demo_entry *spec, size_t *size)
{
	char *data;

	if (spec->text) {
		*size = strlen(spec->text);
		return xstrdup(spec->text);
	}
	*size = spec->size;
	if (spec->size == 0)
		return NULL;

	data = xmalloc(spec->size);
	fill_lines(data, spec->size, spec->label);
	if (spec->edit_label)
		fill_lines(data, spec->edit_size, spec->edit_label);
	return data;
}

static la_ssize_t append_to_strbuf(struct archive *a, void *client_data, const void *buf,
				   size_t len)
{
	(void)a;
	strbuf_append(client_data, buf, len);
	return (la_ssize_t)len;
}

/* Writes `len` bytes of entry data, which libarchive may accept in parts. */
static int write_entry_data(struct archive *a, const char *data, size_t len)
{
	while (len > 0) {
		la_ssize_t n = archive_write_data(a, data, len);

		if (n <= 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sets the fields every entry shares: uid/gid 0 and the layer's fixed mtime. */
static void set_common_fields(struct archive_entry *e, const char *path, unsigned int type,
			      unsigned int perm, time_t mtime)
{
	archive_entry_clear(e);
	archive_entry_set_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_mtime(e, mtime, 0);
}

static int write_header(struct archive *a, struct archive_entry *e, const char *archive_name,
			struct strata_error **err)
{
	int r = archive_write_header(a, e);

	if (r == ARCHIVE_WARN)
		strata_warn("writing `%s`: %s", archive_entry_pathname(e), archive_message(a));
	else if (r != ARCHIVE_OK)
		return strata_error_set(err, archive_errnum(a), "cannot add `%s` to %s: %s",
					archive_entry_pathname(e), archive_name, archive_message(a));
	return 0;
}

/* Adds one entry to the layer tar `archive_name` and adds its data size to *file_bytes. */
static int add_layer_entry(struct archive *a, struct archive_entry *e,
			   const struct demo_entry *spec, time_t mtime, const char *archive_name,
			   uint64_t *file_bytes, struct strata_error **err)
{
	auto_free char *data = NULL;
	size_t size = 0;

	if (spec->type == AE_IFREG && spec->link == NULL)
		data = make_contents(spec, &size);

	set_common_fields(e, spec->path, spec->type, spec->perm, mtime);
	if (spec->type == AE_IFLNK)
		archive_entry_set_symlink(e, spec->link);
	else if (spec->link)
		archive_entry_set_hardlink(e, spec->link);
	archive_entry_set_size(e, (la_int64_t)size);

	if (write_header(a, e, archive_name, err) < 0)
		return -1;
	if (write_entry_data(a, data, size) < 0)
		return strata_error_set(err, archive_errnum(a), "cannot write `%s` to %s: %s", spec->path,
					archive_name, archive_message(a));

	*file_bytes += size;
	return 0;
}

/* Opens `a` to append its whole output, unpadded, to `sb`. */
static int open_memory_writer(struct archive *a, struct strbuf *sb, const char *archive_name,
			      struct strata_error **err)
{
	if (archive_write_set_bytes_per_block(a, 0) != ARCHIVE_OK ||
	    archive_write_open(a, sb, NULL, append_to_strbuf, NULL) != ARCHIVE_OK)
		return strata_error_set(err, archive_errnum(a), "cannot start %s: %s", archive_name,
					archive_message(a));
	return 0;
}

/* Builds the uncompressed tar of layer `index` (0-based) in `tar`. */
static int build_layer_tar(size_t index, struct strbuf *tar, struct strata_error **err)
{
	const struct demo_layer *layer = &layers[index];
	int number = (int)index + 1;
	auto_archive_write struct archive *a = archive_write_new();
	auto_archive_entry struct archive_entry *e = archive_entry_new();
	auto_free char *archive_name = xasprintf("demo layer %d", number);
	uint64_t file_bytes = 0;

	if (a == NULL || e == NULL)
		STRATA_BUG("out of memory");
	if (archive_write_set_format_ustar(a) != ARCHIVE_OK ||
	    archive_write_add_filter_none(a) != ARCHIVE_OK)
		return strata_error_set(err, archive_errnum(a), "cannot set up %s: %s", archive_name,
					archive_message(a));
	if (open_memory_writer(a, tar, archive_name, err) < 0)
		return -1;

	for (size_t i = 0; i < layer->count; i++) {
		const struct demo_entry *spec = &layer->entries[i];

		if (add_layer_entry(a, e, spec, DEMO_EPOCH + number, archive_name, &file_bytes, err) < 0)
			return -1;
	}

	if (archive_write_close(a) != ARCHIVE_OK)
		return strata_error_set(err, archive_errnum(a), "cannot finish %s: %s", archive_name,
					archive_message(a));

	if (layer->count != layer_info[index].entries || file_bytes != layer_info[index].file_bytes)
		STRATA_BUG("demo layer table does not match its entries");
	return 0;
}

/*
 * Compresses `in` into `out` as a gzip stream.  The "raw" format writes the
 * data of its single entry with no header, so libarchive's gzip filter receives
 * exactly the tar bytes.  The gzip header gets no file name and, with the
 * "timestamp" option removed, an mtime of 0.
 */
static int gzip_buffer(const struct strbuf *in, struct strbuf *out, const char *archive_name,
		       struct strata_error **err)
{
	auto_archive_write struct archive *a = archive_write_new();
	auto_archive_entry struct archive_entry *e = archive_entry_new();

	if (a == NULL || e == NULL)
		STRATA_BUG("out of memory");
	if (archive_write_set_format_raw(a) != ARCHIVE_OK ||
	    archive_write_add_filter_gzip(a) != ARCHIVE_OK)
		return strata_error_set(err, archive_errnum(a), "cannot set up gzip for %s: %s",
					archive_name, archive_message(a));
	if (archive_write_set_filter_option(a, "gzip", "timestamp", NULL) != ARCHIVE_OK)
		return strata_error_set(err, archive_errnum(a),
					"cannot turn off the gzip timestamp for %s: %s", archive_name,
					archive_message(a));
	if (archive_write_set_filter_option(a, "gzip", "compression-level", "9") != ARCHIVE_OK)
		return strata_error_set(err, archive_errnum(a),
					"cannot set the gzip compression level for %s: %s", archive_name,
					archive_message(a));
	if (open_memory_writer(a, out, archive_name, err) < 0)
		return -1;

	set_common_fields(e, "layer.tar", AE_IFREG, 0644, DEMO_EPOCH);
	archive_entry_set_size(e, (la_int64_t)in->len);
	if (write_header(a, e, archive_name, err) < 0)
		return -1;
	if (write_entry_data(a, in->data, in->len) < 0 || archive_write_close(a) != ARCHIVE_OK)
		return strata_error_set(err, archive_errnum(a), "cannot compress %s: %s", archive_name,
					archive_message(a));
	return 0;
}

/* Adds a regular file `name` with `data` to the outer archive. */
static int add_archive_file(struct archive *out, const char *name, const void *data, size_t len,
			    const char *shown_path, struct strata_error **err)
{
	auto_archive_entry struct archive_entry *e = archive_entry_new();

	if (e == NULL)
		STRATA_BUG("out of memory");
	set_common_fields(e, name, AE_IFREG, 0644, DEMO_EPOCH);
	archive_entry_set_size(e, (la_int64_t)len);
	if (write_header(out, e, shown_path, err) < 0)
		return -1;
	if (write_entry_data(out, data, len) < 0)
		return strata_error_set(err, archive_errnum(out), "cannot write `%s` to %s: %s", name,
					shown_path, archive_message(out));
	return 0;
}

static int add_archive_dir(struct archive *out, const char *name, const char *shown_path,
			   struct strata_error **err)
{
	auto_archive_entry struct archive_entry *e = archive_entry_new();

	if (e == NULL)
		STRATA_BUG("out of memory");
	set_common_fields(e, name, AE_IFDIR, 0755, DEMO_EPOCH);
	return write_header(out, e, shown_path, err);
}

/* Adds `data` as blobs/sha256/<hex> and stores its digest in *digest. */
static int add_blob(struct archive *out, const void *data, size_t len, struct strata_digest *digest,
		    const char *shown_path, struct strata_error **err)
{
	char hex[STRATA_DIGEST_HEX_LEN + 1];
	auto_free char *name = NULL;

	strata_sha256_buffer(data, len, digest);
	strata_digest_hex(digest, hex);
	name = xasprintf("blobs/sha256/%s", hex);
	return add_archive_file(out, name, data, len, shown_path, err);
}

static json_t *check_json(json_t *value)
{
	if (value == NULL)
		STRATA_BUG("cannot build demo JSON");
	return value;
}

static json_t *make_descriptor(const char *media_type, const struct strata_digest *digest,
			       size_t size)
{
	char text[STRATA_DIGEST_STR_LEN];

	strata_digest_string(digest, text);
	return check_json(json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", text,
				    "size", (json_int_t)size));
}

/* Formats DEMO_EPOCH + offset seconds as RFC 3339 UTC ("2024-01-01T00:00:06Z"). */
static void format_time(time_t offset, char out[32])
{
	time_t t = DEMO_EPOCH + offset;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Returns the compact JSON text of `value` (malloc'd). */
static char *dump_json(const json_t *value)
{
	char *text = json_dumps(value, JSON_COMPACT);

	if (text == NULL)
		STRATA_BUG("cannot serialise demo JSON");
	return text;
}

/* Builds the image config, stealing the reference to diff_ids. */
static json_t *make_config(json_t *diff_ids)
{
	json_t *history = check_json(json_array());
	char created[32];

	for (size_t i = 0; i < ARRAY_SIZE(layer_info); i++) {
		format_time((time_t)i + 1, created);
		json_array_append_new(history, check_json(json_pack("{s:s, s:s}", "created", created,
								     "created_by", layer_info[i].created_by)));
	}

	format_time((time_t)ARRAY_SIZE(layer_info), created);
	return check_json(json_pack("{s:s, s:s, s:s, s:{s:[s], s:[s], s:s}, s:{s:s, s:o}, s:o}",
				    "created", created,
				    "architecture", "amd64",
				    "os", "linux",
				    "config",
				    "Env", "PATH=/usr/bin:/bin",
				    "Cmd", "/bin/sh",
				    "WorkingDir", "/data",
				    "rootfs", "type", "layers", "diff_ids", diff_ids,
				    "history", history));
}

/* Builds, compresses and adds every layer, appending to diff_ids and layer_descriptors. */
static int add_layers(struct archive *out, json_t *diff_ids, json_t *layer_descriptors,
		      const char *shown_path, struct strata_error **err)
{
	for (size_t i = 0; i < ARRAY_SIZE(layers); i++) {
		auto_strbuf struct strbuf tar = { 0 };
		auto_strbuf struct strbuf gz = { 0 };
		auto_free char *archive_name = xasprintf("demo layer %zu", i + 1);
		struct strata_digest diff_id;
		struct strata_digest blob;
		char text[STRATA_DIGEST_STR_LEN];

		if (build_layer_tar(i, &tar, err) < 0)
			return -1;
		strata_sha256_buffer(tar.data, tar.len, &diff_id);
		strata_digest_string(&diff_id, text);
		json_array_append_new(diff_ids, check_json(json_string(text)));

		if (gzip_buffer(&tar, &gz, archive_name, err) < 0)
			return -1;
		if (add_blob(out, gz.data, gz.len, &blob, shown_path, err) < 0)
			return -1;
		json_array_append_new(layer_descriptors, make_descriptor(MEDIA_TYPE_LAYER, &blob, gz.len));
	}
	return 0;
}

/* Writes the whole image layout into the opened archive `out`. */
static int write_layout(struct archive *out, const char *shown_path, struct strata_error **err)
{
	auto_json json_t *diff_ids = check_json(json_array());
	auto_json json_t *layer_descriptors = check_json(json_array());
	auto_json json_t *config = NULL;
	auto_json json_t *manifest = NULL;
	auto_json json_t *index = NULL;
	auto_free char *config_text = NULL;
	auto_free char *manifest_text = NULL;
	auto_free char *index_text = NULL;
	struct strata_digest config_digest;
	struct strata_digest manifest_digest;
	static const char layout_text[] = "{\"imageLayoutVersion\":\"1.0.0\"}";

	if (add_archive_dir(out, "blobs/", shown_path, err) < 0 ||
	    add_archive_dir(out, "blobs/sha256/", shown_path, err) < 0)
		return -1;

	if (add_layers(out, diff_ids, layer_descriptors, shown_path, err) < 0)
		return -1;

	config = make_config(steal_pointer(&diff_ids));
	config_text = dump_json(config);
	if (add_blob(out, config_text, strlen(config_text), &config_digest, shown_path, err) < 0)
		return -1;

	manifest = check_json(json_pack("{s:i, s:s, s:o, s:O}",
					"schemaVersion", 2,
					"mediaType", MEDIA_TYPE_MANIFEST,
					"config", make_descriptor(MEDIA_TYPE_CONFIG, &config_digest,
								  strlen(config_text)),
					"layers", layer_descriptors));
	manifest_text = dump_json(manifest);
	if (add_blob(out, manifest_text, strlen(manifest_text), &manifest_digest, shown_path, err) < 0)
		return -1;

	/* Blobs come before index.json and oci-layout, as in `podman save --format oci-archive` (4.3). */
	index = check_json(json_pack("{s:i, s:s, s:[o]}",
				     "schemaVersion", 2,
				     "mediaType", MEDIA_TYPE_INDEX,
				     "manifests", make_descriptor(MEDIA_TYPE_MANIFEST, &manifest_digest,
								  strlen(manifest_text))));
	json_object_set_new(json_array_get(json_object_get(index, "manifests"), 0), "annotations",
			    check_json(json_pack("{s:s, s:s}",
						 "io.containerd.image.name", STRATA_DEMO_TAG,
						 "org.opencontainers.image.ref.name", STRATA_DEMO_TAG)));
	index_text = dump_json(index);
	if (add_archive_file(out, "index.json", index_text, strlen(index_text), shown_path, err) < 0)
		return -1;

	return add_archive_file(out, "oci-layout", layout_text, strlen(layout_text), shown_path, err);
}

/*
 * Frees `out` and removes the partly written regular file at `path`.  A
 * device or FIFO given as `path` is left in place.
 */
static void remove_partial_output(struct archive *out, const char *path)
{
	struct stat st;

	archive_write_free(out);
	if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
		unlink(path);
}

int strata_demo_write_archive(const char *path, struct strata_error **err)
{
	bool to_stdout = strcmp(path, "-") == 0;
	auto_free char *shown_path = to_stdout ? xstrdup("standard output") : xasprintf("`%s`", path);
	auto_archive_write struct archive *out = archive_write_new();
	int r;
	int rc;

	if (out == NULL)
		STRATA_BUG("out of memory");
	if (archive_write_set_format_ustar(out) != ARCHIVE_OK ||
	    archive_write_add_filter_none(out) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(out, 1) != ARCHIVE_OK)
		return strata_error_set(err, archive_errnum(out), "cannot set up the demo archive: %s",
					archive_message(out));

	if (to_stdout)
		r = archive_write_open_fd(out, STDOUT_FILENO);
	else
		r = archive_write_open_filename(out, path);
	if (r != ARCHIVE_OK)
		return strata_error_set(err, archive_errnum(out), "cannot open %s: %s", shown_path,
					archive_message(out));

	rc = write_layout(out, shown_path, err);
	if (rc == 0 && archive_write_close(out) != ARCHIVE_OK)
		rc = strata_error_set(err, archive_errnum(out), "cannot finish writing %s: %s", shown_path,
				      archive_message(out));

	if (rc < 0 && !to_stdout)
		remove_partial_output(steal_pointer(&out), path);
	return rc;
}
