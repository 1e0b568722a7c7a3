/*
 * SHA-256 digests, hashed with OpenSSL's EVP interface (which uses the CPU's
 * SHA extensions where present), and their "sha256:<64 hex>" text form.
 */
#ifndef STRATA_DIGEST_H
#define STRATA_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define STRATA_DIGEST_LEN 32
#define STRATA_DIGEST_HEX_LEN 64
/* "sha256:" + 64 hex digits + NUL */
#define STRATA_DIGEST_STR_LEN 72

struct strata_digest {
	uint8_t bytes[STRATA_DIGEST_LEN];
};

struct strata_sha256;  /* opaque hashing context */

struct strata_sha256 *strata_sha256_new(void);
void strata_sha256_update(struct strata_sha256 *ctx, const void *data, size_t len);
/* Finishes the hash into *out; the context is ready for a new hash afterwards. */
void strata_sha256_final(struct strata_sha256 *ctx, struct strata_digest *out);
void strata_sha256_free(struct strata_sha256 *ctx);

void strata_sha256_buffer(const void *data, size_t len, struct strata_digest *out);

/* Writes 64 lower-case hex digits and a NUL into hex[65]. */
void strata_digest_hex(const struct strata_digest *d, char hex[STRATA_DIGEST_HEX_LEN + 1]);
/* Writes "sha256:<hex>" into out[STRATA_DIGEST_STR_LEN]. */
void strata_digest_string(const struct strata_digest *d, char out[STRATA_DIGEST_STR_LEN]);

/* Parses exactly 64 hex digits (either case). Returns false on anything else. */
bool strata_digest_parse_hex(const char *hex, size_t len, struct strata_digest *out);
/*
 * Parses "sha256:<64 hex>".  Any other algorithm or a malformed value fails
 * with an error naming `what` (e.g. "manifest.json Config").
 */
int strata_digest_parse(const char *text, const char *what, struct strata_digest *out,
			struct strata_error **err);

bool strata_digest_equal(const struct strata_digest *a, const struct strata_digest *b);
bool strata_digest_is_zero(const struct strata_digest *d);

#endif
