#define _GNU_SOURCE
#include "blobs.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "path.h"
#include "util.h"

/* Files this large or larger are never read into memory as metadata. */
#define MAX_METADATA_SIZE (16u << 20)
/* Size of one decompressed chunk handed to the unpacking thread. */
#define CHUNK_SIZE (1u << 20)
/* Chunks in flight between the two threads; bounds memory at 8 MiB. */
#define QUEUE_CHUNKS 8

/* ---- the queue between the inflating thread and the unpacking thread ---- */

struct queue {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	char *chunks[QUEUE_CHUNKS];
	size_t lengths[QUEUE_CHUNKS];
	int free_list[QUEUE_CHUNKS];
	int nfree;
	int ready[QUEUE_CHUNKS];        /* FIFO of filled chunks */
	int ready_head;
	int nready;
	int held;                       /* chunk the consumer is reading, or -1 */
	bool eof;                       /* producer finished */
	bool producer_failed;
	bool consumer_done;             /* consumer stopped (finished or failed) */
};

static void queue_init(struct queue *q)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->changed, NULL);
	for (int i = 0; i < QUEUE_CHUNKS; i++) {
		q->chunks[i] = xmalloc(CHUNK_SIZE);
		q->free_list[i] = i;
	}
	q->nfree = QUEUE_CHUNKS;
	q->held = -1;
}

static void queue_destroy(struct queue *q)
{
	for (int i = 0; i < QUEUE_CHUNKS; i++)
		free(q->chunks[i]);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->changed);
}

/* Returns a free chunk index, or -1 when the consumer has stopped. */
static int queue_take_free(struct queue *q)
{
	int idx = -1;

	pthread_mutex_lock(&q->lock);
	while (q->nfree == 0 && !q->consumer_done)
		pthread_cond_wait(&q->changed, &q->lock);
	if (!q->consumer_done)
		idx = q->free_list[--q->nfree];
	pthread_mutex_unlock(&q->lock);
	return idx;
}

static void queue_push(struct queue *q, int idx, size_t len)
{
	pthread_mutex_lock(&q->lock);
	q->lengths[idx] = len;
	q->ready[(q->ready_head + q->nready) % QUEUE_CHUNKS] = idx;
	q->nready++;
	pthread_cond_broadcast(&q->changed);
	pthread_mutex_unlock(&q->lock);
}

static void queue_give_back(struct queue *q, int idx)
{
	pthread_mutex_lock(&q->lock);
	q->free_list[q->nfree++] = idx;
	pthread_cond_broadcast(&q->changed);
	pthread_mutex_unlock(&q->lock);
}

static void queue_finish(struct queue *q, bool failed)
{
	pthread_mutex_lock(&q->lock);
	q->eof = true;
	q->producer_failed = failed;
	pthread_cond_broadcast(&q->changed);
	pthread_mutex_unlock(&q->lock);
}

static ssize_t queue_read(void *ctx, const void **buf, struct strata_error **err)
{
	struct queue *q = ctx;
	ssize_t n;

	pthread_mutex_lock(&q->lock);
	if (q->held >= 0) {
		q->free_list[q->nfree++] = q->held;
		q->held = -1;
		pthread_cond_broadcast(&q->changed);
	}
	while (q->nready == 0 && !q->eof)
		pthread_cond_wait(&q->changed, &q->lock);
	if (q->nready == 0) {
		bool failed = q->producer_failed;

		pthread_mutex_unlock(&q->lock);
		if (failed)
			return strata_error_set(err, EIO, "reading the layer blob failed");
		return 0;
	}
	q->held = q->ready[q->ready_head];
	q->ready_head = (q->ready_head + 1) % QUEUE_CHUNKS;
	q->nready--;
	*buf = q->chunks[q->held];
	n = (ssize_t)q->lengths[q->held];
	pthread_mutex_unlock(&q->lock);
	return n;
}

struct unpack_job {
	struct queue *queue;
	int dirfd;
	struct strata_unpack_options opts;
	struct strata_unpack_result result;
	struct strata_error *err;
	int rc;
};

static void *unpack_thread(void *arg)
{
	struct unpack_job *job = arg;

	job->rc = strata_layer_unpack(job->dirfd, queue_read, job->queue, &job->opts, &job->result, &job->err);
	pthread_mutex_lock(&job->queue->lock);
	job->queue->consumer_done = true;
	pthread_cond_broadcast(&job->queue->changed);
	pthread_mutex_unlock(&job->queue->lock);
	return NULL;
}

/* ---- the source: one entry of the outer archive ----------------------- */

struct source {
	struct archive *outer;
	const char *name;
	const void *first;              /* first block, read to classify the entry */
	size_t first_len;
	bool first_pending;
	struct strata_sha256 *hash;     /* digest of the blob as stored */
	uint64_t size;
	bool eof;
	struct strata_error *err;
	const struct strata_read_options *opts;
};

static ssize_t source_read(struct source *src, const void **buf)
{
	size_t len;
	la_int64_t offset;
	int r;

	if (src->first_pending) {
		src->first_pending = false;
		*buf = src->first;
		len = src->first_len;
	} else {
		if (src->eof)
			return 0;
		do {
			r = archive_read_data_block(src->outer, buf, &len, &offset);
		} while (r == ARCHIVE_OK && len == 0);
		if (r == ARCHIVE_EOF) {
			src->eof = true;
			return 0;
		}
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			strata_error_set(&src->err, la_errno(src->outer),
					 "cannot read `%s` from the archive (%s)", src->name,
					 archive_error_string(src->outer));
			return -1;
		}
	}
	strata_sha256_update(src->hash, *buf, len);
	src->size += len;
	if (src->opts->progress)
		src->opts->progress(src->opts->progress_data, (uint64_t)archive_filter_bytes(src->outer, -1), 0,
				    src->name);
	return (ssize_t)len;
}

static la_ssize_t source_archive_cb(struct archive *a, void *ctx, const void **buf)
{
	ssize_t n = source_read(ctx, buf);

	if (n < 0)
		archive_set_error(a, EIO, "read failed");
	return n;
}

/* ---- decompression: gzip with ISA-L, zstd through libarchive ---------- */

struct inflater {
	struct source *src;
	struct queue *queue;
	struct strata_sha256 *diff_hash;
	uint64_t tar_size;
	bool consumer_gone;             /* unpacking stopped: keep hashing the blob only */
	struct strata_error *err;
};

/* Hands decompressed bytes to the unpacking thread (copying them into chunks). */
static void emit(struct inflater *inf, const void *data, size_t len)
{
	const char *p = data;

	strata_sha256_update(inf->diff_hash, data, len);
	inf->tar_size += len;
	while (len > 0 && !inf->consumer_gone) {
		int idx = queue_take_free(inf->queue);
		size_t n = len > CHUNK_SIZE ? CHUNK_SIZE : len;

		if (idx < 0) {
			inf->consumer_gone = true;
			break;
		}
		memcpy(inf->queue->chunks[idx], p, n);
		queue_push(inf->queue, idx, n);
		p += n;
		len -= n;
	}
}

static int inflate_none(struct inflater *inf)
{
	const void *buf;
	ssize_t n;

	while ((n = source_read(inf->src, &buf)) > 0)
		emit(inf, buf, (size_t)n);
	return n < 0 ? -1 : 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * Inflates gzip with ISA-L's streaming inflater, writing straight into queue
 * chunks.  Several gzip members in a row (pigz, eStargz) are one stream.
 */
static int inflate_gzip(struct inflater *inf)
{
	struct inflate_state state;
	const void *in = NULL;
	ssize_t n;
	char *scratch = NULL;
	bool finished = false;

	isal_inflate_init(&state);
	state.crc_flag = ISAL_GZIP;
	state.avail_in = 0;

	for (;;) {
		int idx = -1;
		char *out;
		int ret;

		if (state.avail_in == 0) {
			n = source_read(inf->src, &in);
			if (n < 0)
				goto fail;
			if (n == 0) {
				if (finished)
					break;
				strata_error_set(&inf->err, 0, "`%s`: unexpected end of gzip data (truncated blob)",
						 inf->src->name);
				goto fail;
			}
			state.next_in = (uint8_t *)in;
			state.avail_in = (uint32_t)n;
		}
		if (finished) {
			/* More input after a complete member: another member, or zero padding. */
			if (state.avail_in >= 2 && state.next_in[0] == 0x1f && state.next_in[1] == 0x8b) {
				uint8_t *next = state.next_in;
				uint32_t avail = state.avail_in;

				isal_inflate_reset(&state);
				state.crc_flag = ISAL_GZIP;
				state.next_in = next;
				state.avail_in = avail;
				finished = false;
			} else if (all_zero(state.next_in, state.avail_in)) {
				state.avail_in = 0;
				continue;
			} else {
				strata_error_set(&inf->err, 0, "`%s`: unexpected data after the end of the gzip stream",
						 inf->src->name);
				goto fail;
			}
		}

		if (!inf->consumer_gone)
			idx = queue_take_free(inf->queue);
		if (idx < 0) {
			inf->consumer_gone = true;
			if (scratch == NULL)
				scratch = xmalloc(CHUNK_SIZE);
			out = scratch;
		} else {
			out = inf->queue->chunks[idx];
		}
		state.next_out = (uint8_t *)out;
		state.avail_out = CHUNK_SIZE;
		ret = isal_inflate(&state);
		if (ret != ISAL_DECOMP_OK) {
			if (idx >= 0)
				queue_give_back(inf->queue, idx);
			strata_error_set(&inf->err, 0, "`%s`: corrupt gzip data (ISA-L error %d)", inf->src->name, ret);
			goto fail;
		}
		{
			size_t produced = CHUNK_SIZE - state.avail_out;

			strata_sha256_update(inf->diff_hash, out, produced);
			inf->tar_size += produced;
			if (idx >= 0) {
				if (produced > 0)
					queue_push(inf->queue, idx, produced);
				else
					queue_give_back(inf->queue, idx);
			}
		}
		if (state.block_state == ISAL_BLOCK_FINISH)
			finished = true;
	}
	free(scratch);
	return 0;
fail:
	free(scratch);
	return -1;
}

static int inflate_zstd(struct inflater *inf)
{
	struct archive *z = archive_read_new();
	struct archive_entry *entry;
	const void *buf;
	size_t len;
	la_int64_t offset;
	int r;
	int rc = -1;

	archive_read_support_filter_zstd(z);
	archive_read_support_format_raw(z);
	if (archive_read_open(z, inf->src, NULL, source_archive_cb, NULL) != ARCHIVE_OK ||
	    archive_read_next_header(z, &entry) != ARCHIVE_OK) {
		if (inf->src->err == NULL)
			strata_error_set(&inf->err, la_errno(z), "`%s`: cannot read zstd data (%s)",
					 inf->src->name, archive_error_string(z));
		goto out;
	}
	while ((r = archive_read_data_block(z, &buf, &len, &offset)) == ARCHIVE_OK)
		emit(inf, buf, len);
	if (r != ARCHIVE_EOF) {
		if (inf->src->err == NULL)
			strata_error_set(&inf->err, la_errno(z), "`%s`: corrupt or truncated zstd data (%s)",
					 inf->src->name, archive_error_string(z));
		goto out;
	}
	/* Drain anything after the zstd frame so the blob digest covers every byte. */
	while (source_read(inf->src, &buf) > 0)
		;
	rc = inf->src->err ? -1 : 0;
out:
	archive_read_free(z);
	return rc;
}

static enum strata_compression detect_compression(const uint8_t *p, size_t len)
{
	if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return STRATA_COMPRESSION_GZIP;
	if (len >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
		return STRATA_COMPRESSION_ZSTD;
	return STRATA_COMPRESSION_NONE;
}

/* ---- blob-index: identifying layers the store already has ------------- */

/*
 * Returns the blob-index name for an archive path that identifies its blob:
 * "blobs/sha256/<hex>" and "<hex>.tar" (podman) name the blob's digest;
 * "<v1 id>/layer.tar" (docker save) names a v1 layer ID, which the index
 * learns on the first import.  NULL for other names.
 */
char *strata_blob_index_name(const char *name)
{
	struct strata_digest d;
	size_t len = strlen(name);

	if (strncmp(name, "blobs/sha256/", 13) == 0 && strata_digest_parse_hex(name + 13, len - 13, &d))
		return xstrndup(name + 13, 64);
	if (len == 68 && strcmp(name + 64, ".tar") == 0 && strata_digest_parse_hex(name, 64, &d))
		return xstrndup(name, 64);
	if (len == 74 && strcmp(name + 64, "/layer.tar") == 0 && strata_digest_parse_hex(name, 64, &d))
		return xasprintf("v1-%.64s", name);
	return NULL;
}

/* Looks the blob up; returns true with the expected digests when its layer is in the store. */
static bool lookup_known_blob(struct strata_store *store, const char *name, struct strata_digest *blob,
			      struct strata_digest *diff_id)
{
	auto_free char *key = strata_blob_index_name(name);
	auto_free char *path = NULL;
	char *data = NULL;
	size_t len = 0;
	struct strata_error *err = NULL;
	bool ok = false;

	if (key == NULL)
		return false;
	path = xasprintf("blob-index/%s", key);
	if (read_file_at(store->dirfd, path, &data, &len, &err) < 0) {
		strata_error_free(err);
		return false;
	}
	/* "sha256:<blob hex> sha256:<diff_id hex>\n" */
	if (len >= 143 && data[71] == ' ') {
		data[71] = '\0';
		data[143] = '\0';
		ok = strata_digest_parse(data, path, blob, &err) == 0 &&
		     strata_digest_parse(data + 72, path, diff_id, &err) == 0;
	}
	strata_error_free(err);
	free(data);
	return ok && strata_store_has_layer(store, diff_id);
}

/* ---- the read loop ------------------------------------------------------ */

static bool is_metadata_name(const char *name)
{
	const char *base = strrchr(name, '/');
	size_t len;

	base = base ? base + 1 : name;
	len = strlen(base);
	return strcmp(base, "manifest.json") == 0 || strcmp(base, "index.json") == 0 ||
	       strcmp(base, "oci-layout") == 0 || strcmp(base, "repositories") == 0 ||
	       strcmp(base, "VERSION") == 0 || strcmp(base, "json") == 0 ||
	       (len > 5 && strcmp(base + len - 5, ".json") == 0);
}

static bool looks_like_json(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')
			continue;
		return p[i] == '{' || p[i] == '[' || p[i] == 'n';
	}
	return false;
}

static struct strata_blob *add_blob(struct strata_archive *archive, const char *name)
{
	struct strata_blob *blob;

	archive->blobs = xrealloc(archive->blobs, (archive->nblobs + 1) * sizeof(*archive->blobs));
	blob = &archive->blobs[archive->nblobs++];
	memset(blob, 0, sizeof(*blob));
	blob->name = xstrdup(name);
	return blob;
}

static int read_metadata(struct source *src, struct strata_blob *blob, struct strata_error **err)
{
	struct strbuf sb = {0};
	const void *buf;
	ssize_t n;

	strbuf_append(&sb, "", 0);
	while ((n = source_read(src, &buf)) > 0) {
		if (sb.len + (size_t)n > MAX_METADATA_SIZE) {
			strbuf_release(&sb);
			return strata_error_set(err, 0, "`%s` is larger than %u MiB, too large for image metadata",
						src->name, MAX_METADATA_SIZE >> 20);
		}
		strbuf_append(&sb, buf, (size_t)n);
	}
	if (n < 0) {
		strbuf_release(&sb);
		*err = steal_pointer(&src->err);
		return -1;
	}
	blob->data = sb.data;
	blob->len = sb.len;
	return 0;
}

static int run_inflater(struct inflater *inf, enum strata_compression compression)
{
	int rc;

	switch (compression) {
	case STRATA_COMPRESSION_GZIP:
		rc = inflate_gzip(inf);
		break;
	case STRATA_COMPRESSION_ZSTD:
		rc = inflate_zstd(inf);
		break;
	default:
		rc = inflate_none(inf);
		break;
	}
	/* Keep reading to the end of the entry: the blob digest covers all of it. */
	if (rc == 0 && !inf->src->eof) {
		const void *buf;

		while (source_read(inf->src, &buf) > 0)
			;
	}
	return rc;
}

/*
 * Returns the diff_id that the metadata read so far claims for a layer
 * blob: "<hex>.tar" (podman) is named by its diff_id when uncompressed, and
 * "blobs/sha256/<hex>" is mapped by an OCI manifest and its config when both
 * came earlier in the archive.  The claim is checked by hashing.
 */
static bool claimed_diff_id(struct strata_archive *archive, const struct strata_blob *blob,
			    struct strata_digest *diff_id)
{
	struct strata_digest named;
	char want[STRATA_DIGEST_STR_LEN];
	size_t len = strlen(blob->name);
	bool found = false;

	if (len == 68 && strcmp(blob->name + 64, ".tar") == 0 && blob->compression == STRATA_COMPRESSION_NONE)
		return strata_digest_parse_hex(blob->name, 64, diff_id);
	if (strncmp(blob->name, "blobs/sha256/", 13) != 0 || !strata_digest_parse_hex(blob->name + 13, len - 13, &named))
		return false;
	strata_digest_string(&named, want);

	for (size_t i = 0; i < archive->nblobs && !found; i++) {
		json_t *manifest;
		json_t *layers;
		struct strata_digest config_digest;
		struct strata_blob *config;
		struct strata_error *err = NULL;

		if (archive->blobs[i].data == NULL || !looks_like_json((const uint8_t *)archive->blobs[i].data,
								       archive->blobs[i].len))
			continue;
		manifest = json_loadb(archive->blobs[i].data, archive->blobs[i].len, 0, NULL);
		layers = json_object_get(manifest, "layers");
		for (size_t l = 0; l < json_array_size(layers) && !found; l++) {
			const char *d = json_string_value(json_object_get(json_array_get(layers, l), "digest"));
			json_t *cfg;

			if (d == NULL || strcmp(d, want) != 0)
				continue;
			if (strata_digest_parse(json_string_value(json_object_get(json_object_get(manifest, "config"),
										  "digest")), "config", &config_digest, &err) < 0)
				break;
			config = strata_archive_find_digest(archive, &config_digest);
			if (config == NULL || config->data == NULL)
				break;
			cfg = json_loadb(config->data, config->len, 0, NULL);
			found = strata_digest_parse(json_string_value(json_array_get(json_object_get(json_object_get(cfg,
							"rootfs"), "diff_ids"), l)), "config", diff_id, &err) == 0;
			json_decref(cfg);
		}
		strata_error_free(err);
		json_decref(manifest);
	}
	return found;
}

/* Stores the digest, size, diff ID and tar size of a blob that streamed past. */
static void finish_hashes(struct source *src, struct inflater *inf, struct strata_blob *blob)
{
	strata_sha256_final(src->hash, &blob->digest);
	blob->size = src->size;
	strata_sha256_final(inf->diff_hash, &blob->diff_id);
	strata_sha256_free(inf->diff_hash);
	inf->diff_hash = NULL;
	blob->tar_size = inf->tar_size;
}

/*
 * Hashes a blob whose layer the store already has under the diff_id the
 * archive claims for it: inflated to check the claim, but nothing is written.
 */
static int hash_layer(struct source *src, struct strata_blob *blob, const struct strata_digest *claimed,
		      struct strata_error **err)
{
	struct inflater inf = { .src = src, .consumer_gone = true };
	int rc;

	inf.diff_hash = strata_sha256_new();
	rc = run_inflater(&inf, blob->compression);
	if (src->err) {
		strata_sha256_free(inf.diff_hash);
		strata_error_free(inf.err);
		*err = steal_pointer(&src->err);
		return -1;
	}
	finish_hashes(src, &inf, blob);
	if (rc < 0) {
		blob->unpack_err = steal_pointer(&inf.err);
	} else if (strata_digest_equal(&blob->diff_id, claimed)) {
		blob->present = true;
	} else {
		char want[STRATA_DIGEST_STR_LEN];
		char got[STRATA_DIGEST_STR_LEN];

		strata_digest_string(claimed, want);
		strata_digest_string(&blob->diff_id, got);
		strata_error_set(&blob->unpack_err, 0, "layer blob `%s`: diff_id mismatch, the archive's metadata "
				 "says %s but its content hashes to %s", blob->name, want, got);
	}
	strata_error_free(inf.err);
	return 0;
}

static int read_layer(struct strata_store *store, const struct strata_read_options *opts,
		      struct strata_archive *archive, struct source *src, struct strata_blob *blob, size_t ordinal,
		      struct strata_error **err)
{
	struct strata_digest expected_blob;
	struct strata_digest expected_diff;
	struct queue queue;
	struct unpack_job job = {0};
	struct inflater inf = {0};
	pthread_t thread;
	int rc;

	blob->is_layer = true;
	blob->compression = detect_compression(src->first, src->first_len);

	if (lookup_known_blob(store, blob->name, &expected_blob, &expected_diff)) {
		/* The store has this layer: verify the bytes, write nothing, inflate nothing. */
		const void *buf;
		ssize_t n;

		while ((n = source_read(src, &buf)) > 0)
			;
		if (n < 0) {
			*err = steal_pointer(&src->err);
			return -1;
		}
		strata_sha256_final(src->hash, &blob->digest);
		blob->size = src->size;
		if (!strata_digest_equal(&blob->digest, &expected_blob)) {
			char want[STRATA_DIGEST_STR_LEN];
			char got[STRATA_DIGEST_STR_LEN];

			strata_digest_string(&expected_blob, want);
			strata_digest_string(&blob->digest, got);
			return strata_error_set(err, 0, "layer blob `%s` differs from the blob the store recorded under "
						"that name (expected %s, got %s); the archive was modified or is corrupt",
						blob->name, want, got);
		}
		blob->present = true;
		blob->diff_id = expected_diff;
		return 0;
	}

	if (claimed_diff_id(archive, blob, &expected_diff) && strata_store_has_layer(store, &expected_diff))
		return hash_layer(src, blob, &expected_diff, err);

	blob->stage = xasprintf("%s/blob-%zu", opts->stage, ordinal);
	if (mkdirat(store->dirfd, blob->stage, 0700) < 0)
		return strata_error_set(err, errno, "cannot create staging directory `%s/%s`", store->path, blob->stage);

	queue_init(&queue);
	job.queue = &queue;
	job.dirfd = openat(store->dirfd, blob->stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	job.opts.rootless = store->rootless;
	job.opts.limits = opts->limits;
	job.opts.layer_name = xasprintf("layer blob `%s`", blob->name);
	if (job.dirfd < 0) {
		free((char *)job.opts.layer_name);
		queue_destroy(&queue);
		return strata_error_set(err, errno, "cannot open staging directory `%s`", blob->stage);
	}
	if (pthread_create(&thread, NULL, unpack_thread, &job) != 0)
		STRATA_BUG("cannot start the unpacking thread");

	inf.src = src;
	inf.queue = &queue;
	inf.diff_hash = strata_sha256_new();
	rc = run_inflater(&inf, blob->compression);
	queue_finish(&queue, rc < 0);
	pthread_join(thread, NULL);
	close(job.dirfd);
	free((char *)job.opts.layer_name);
	queue_destroy(&queue);

	if (src->err) {
		/* The outer archive itself failed: fatal for the whole import. */
		strata_sha256_free(inf.diff_hash);
		strata_error_free(inf.err);
		strata_error_free(job.err);
		*err = steal_pointer(&src->err);
		return -1;
	}
	finish_hashes(src, &inf, blob);
	blob->unpack = job.result;
	/*
	 * A blob that is not a valid layer is an error only when a manifest uses
	 * it as a layer, because archives may carry other blobs such as signatures.
	 */
	if (inf.err) {
		blob->unpack_err = steal_pointer(&inf.err);
		strata_error_free(job.err);
	} else if (job.rc < 0) {
		blob->unpack_err = steal_pointer(&job.err);
	}
	return 0;
}

/* Joins dir and a relative link target, resolving "." and ".." lexically. */
static char *resolve_alias(const char *name, const char *target)
{
	struct strbuf sb = {0};
	const char *slash = strrchr(name, '/');
	auto_free char *joined = NULL;
	char *save = NULL;
	char *part;
	char **stack;
	size_t depth = 0;
	size_t cap;

	if (target[0] == '/')
		joined = xstrdup(target);
	else if (slash)
		joined = xasprintf("%.*s/%s", (int)(slash - name), name, target);
	else
		joined = xstrdup(target);

	cap = strlen(joined) + 1;
	stack = xmalloc(cap * sizeof(char *));
	for (part = strtok_r(joined, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		if (strcmp(part, ".") == 0)
			continue;
		if (strcmp(part, "..") == 0) {
			if (depth == 0) {
				free(stack);
				return NULL;  /* climbs out of the archive */
			}
			depth--;
			continue;
		}
		stack[depth++] = part;
	}
	strbuf_append(&sb, "", 0);
	for (size_t i = 0; i < depth; i++) {
		if (i)
			strbuf_addstr(&sb, "/");
		strbuf_addstr(&sb, stack[i]);
	}
	free(stack);
	return sb.data;
}

static void add_alias(struct strata_archive *archive, const char *name, char *target)
{
	archive->aliases = xrealloc(archive->aliases, (archive->naliases + 1) * sizeof(*archive->aliases));
	archive->aliases[archive->naliases].name = xstrdup(name);
	archive->aliases[archive->naliases].target = target;
	archive->naliases++;
}

static int read_entry(struct strata_store *store, const struct strata_read_options *opts, struct archive *a,
		      struct archive_entry *entry, struct strata_archive *archive, struct strata_error **err)
{
	const char *raw = archive_entry_pathname(entry);
	auto_free char *name = NULL;
	struct source src = { .outer = a, .opts = opts };
	struct strata_blob *blob;
	la_int64_t offset;
	int r;
	int rc;

	if (raw == NULL)
		return strata_error_set(err, 0, "archive entry without a name");
	name = strata_path_normalize(raw, err);
	if (name == NULL)
		return strata_error_wrap(err, "invalid archive");
	if (name[0] == '\0')
		return 0;

	if (archive_entry_hardlink(entry)) {
		auto_free char *target = strata_path_normalize(archive_entry_hardlink(entry), err);

		if (target == NULL)
			return strata_error_wrap(err, "archive entry `%s`", name);
		add_alias(archive, name, steal_pointer(&target));
		return 0;
	}
	if (archive_entry_filetype(entry) == AE_IFLNK) {
		char *target = resolve_alias(name, archive_entry_symlink(entry) ? archive_entry_symlink(entry) : "");

		if (target)
			add_alias(archive, name, target);
		return 0;
	}
	if (archive_entry_filetype(entry) != AE_IFREG)
		return 0;

	src.name = name;
	src.hash = strata_sha256_new();
	r = archive_read_data_block(a, &src.first, &src.first_len, &offset);
	if (r == ARCHIVE_EOF) {
		src.eof = true;
		src.first_len = 0;
	} else if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
		strata_sha256_free(src.hash);
		return strata_error_set(err, la_errno(a), "cannot read `%s` from the archive (%s)", name,
					archive_error_string(a));
	}
	src.first_pending = src.first_len > 0;

	blob = add_blob(archive, name);
	if (is_metadata_name(name) ||
	    ((uint64_t)archive_entry_size(entry) <= MAX_METADATA_SIZE &&
	     looks_like_json(src.first, src.first_len))) {
		rc = read_metadata(&src, blob, err);
		if (rc == 0) {
			strata_sha256_final(src.hash, &blob->digest);
			blob->size = src.size;
		}
	} else {
		rc = read_layer(store, opts, archive, &src, blob, archive->nblobs, err);
		archive->tar_bytes += blob->tar_size;
		/* Checked between layers, so one layer may overshoot by at most the per-layer limit. */
		if (rc == 0 && archive->tar_bytes > opts->limits.max_image_bytes)
			rc = strata_error_set(err, EFBIG, "the archive's layers are larger than the limit of %llu "
					      "uncompressed bytes (raise it with --max-image-bytes)",
					      (unsigned long long)opts->limits.max_image_bytes);
	}
	strata_sha256_free(src.hash);
	strata_error_free(src.err);
	return rc;
}

int strata_archive_read(struct strata_store *store, const struct strata_read_options *opts,
			struct strata_archive *archive, struct strata_error **err)
{
	struct archive *a = archive_read_new();
	struct archive_entry *entry;
	int fd = 0;
	int r;
	int rc = -1;
	struct stat st;
	uint64_t total = 0;
	auto_free char *shown = strcmp(opts->path, "-") == 0 ? xstrdup("standard input") : xasprintf("`%s`", opts->path);

	memset(archive, 0, sizeof(*archive));
	archive_read_support_filter_gzip(a);
	archive_read_support_filter_zstd(a);
	archive_read_support_filter_xz(a);
	archive_read_support_filter_bzip2(a);
	archive_read_support_format_tar(a);
	archive_read_support_format_gnutar(a);

	if (strcmp(opts->path, "-") != 0) {
		fd = open(opts->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			archive_read_free(a);
			return strata_error_set(err, errno, "cannot open `%s`", opts->path);
		}
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
			total = (uint64_t)st.st_size;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0) {
			close(fd);
			archive_read_free(a);
			return strata_error_set(err, 0, "`%s` is empty, not an image archive", opts->path);
		}
		if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
			close(fd);
			archive_read_free(a);
			return strata_error_set(err, 0, "`%s` is a directory; tar an image layout first "
						"(tar -C DIR -cf layout.tar .)", opts->path);
		}
	}
	if (opts->progress)
		opts->progress(opts->progress_data, 0, total, "");

	if (archive_read_open_fd(a, fd, 1 << 20) != ARCHIVE_OK) {
		strata_error_set(err, la_errno(a), "%s is not a tar archive (%s)", shown, archive_error_string(a));
		goto out;
	}
	for (;;) {
		r = archive_read_next_header(a, &entry);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			strata_error_set(err, la_errno(a), "%s: %s after %zu files (truncated or not an image "
					 "archive)", shown, archive_error_string(a), archive->nblobs);
			goto out;
		}
		if (read_entry(store, opts, a, entry, archive, err) < 0) {
			strata_error_wrap(err, "reading %s", shown);
			goto out;
		}
		if (opts->progress)
			opts->progress(opts->progress_data, (uint64_t)archive_filter_bytes(a, -1), total, "");
	}
	rc = 0;
out:
	archive_read_free(a);
	if (fd > 0)
		close(fd);
	return rc;
}

void strata_archive_release(struct strata_archive *archive)
{
	for (size_t i = 0; i < archive->nblobs; i++) {
		free(archive->blobs[i].name);
		free(archive->blobs[i].data);
		free(archive->blobs[i].stage);
		strata_error_free(archive->blobs[i].unpack_err);
	}
	free(archive->blobs);
	for (size_t i = 0; i < archive->naliases; i++) {
		free(archive->aliases[i].name);
		free(archive->aliases[i].target);
	}
	free(archive->aliases);
	memset(archive, 0, sizeof(*archive));
}

struct strata_blob *strata_archive_find(struct strata_archive *archive, const char *name)
{
	auto_free char *current = NULL;
	struct strata_error *err = NULL;

	current = strata_path_normalize(name, &err);
	strata_error_free(err);
	if (current == NULL)
		return NULL;
	/* Follow at most 16 aliases: more means a loop. */
	for (int hops = 0; hops < 16; hops++) {
		bool moved = false;

		/* The last entry of a name wins, as when a tar is extracted. */
		for (size_t i = archive->nblobs; i-- > 0;)
			if (strcmp(archive->blobs[i].name, current) == 0)
				return &archive->blobs[i];
		for (size_t i = archive->naliases; i-- > 0;) {
			if (strcmp(archive->aliases[i].name, current) == 0) {
				free(current);
				current = xstrdup(archive->aliases[i].target);
				moved = true;
				break;
			}
		}
		if (!moved)
			return NULL;
	}
	return NULL;
}

struct strata_blob *strata_archive_find_digest(struct strata_archive *archive, const struct strata_digest *d)
{
	char hex[STRATA_DIGEST_HEX_LEN + 1];
	auto_free char *name = NULL;

	strata_digest_hex(d, hex);
	name = xasprintf("blobs/sha256/%s", hex);
	return strata_archive_find(archive, name);
}

struct memory_reader {
	const char *data;
	size_t len;
	bool done;
};

static ssize_t memory_read(void *ctx, const void **buf, struct strata_error **err)
{
	struct memory_reader *m = ctx;

	(void)err;
	if (m->done)
		return 0;
	m->done = true;
	*buf = m->data;
	return (ssize_t)m->len;
}

int strata_blob_unpack_memory(struct strata_store *store, struct strata_blob *blob, const char *stage,
			      const struct strata_unpack_limits *limits, struct strata_error **err)
{
	struct memory_reader m = { .data = blob->data, .len = blob->len };
	struct strata_unpack_options opts = { .rootless = store->rootless, .limits = *limits };
	auto_close int dirfd = -1;
	auto_free char *label = xasprintf("layer blob `%s`", blob->name);

	if (detect_compression((const uint8_t *)blob->data, blob->len) != STRATA_COMPRESSION_NONE)
		return strata_error_set(err, 0, "layer blob `%s` is compressed metadata, not a layer", blob->name);
	blob->stage = xasprintf("%s/blob-mem-%p", stage, (void *)blob);
	if (mkdirat(store->dirfd, blob->stage, 0700) < 0)
		return strata_error_set(err, errno, "cannot create staging directory `%s`", blob->stage);
	dirfd = openat(store->dirfd, blob->stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return strata_error_set(err, errno, "cannot open staging directory `%s`", blob->stage);
	opts.layer_name = label;
	if (strata_layer_unpack(dirfd, memory_read, &m, &opts, &blob->unpack, err) < 0)
		return -1;
	blob->is_layer = true;
	blob->diff_id = blob->digest;
	blob->tar_size = blob->len;
	return 0;
}
