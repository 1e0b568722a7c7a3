#include "digest.h"

#include <openssl/evp.h>
#include <string.h>

#include "util.h"

struct strata_sha256 {
	EVP_MD_CTX *md;
};

struct strata_sha256 *strata_sha256_new(void)
{
	struct strata_sha256 *ctx = xcalloc(1, sizeof(*ctx));

	ctx->md = EVP_MD_CTX_new();
	if (ctx->md == NULL || EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1)
		STRATA_BUG("OpenSSL cannot initialise SHA-256");
	return ctx;
}

void strata_sha256_update(struct strata_sha256 *ctx, const void *data, size_t len)
{
	if (len && EVP_DigestUpdate(ctx->md, data, len) != 1)
		STRATA_BUG("OpenSSL SHA-256 update failed");
}

void strata_sha256_final(struct strata_sha256 *ctx, struct strata_digest *out)
{
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(ctx->md, out->bytes, &n) != 1 || n != STRATA_DIGEST_LEN)
		STRATA_BUG("OpenSSL SHA-256 final failed");
	if (EVP_DigestInit_ex(ctx->md, EVP_sha256(), NULL) != 1)
		STRATA_BUG("OpenSSL cannot initialise SHA-256");
}

void strata_sha256_free(struct strata_sha256 *ctx)
{
	if (ctx == NULL)
		return;
	EVP_MD_CTX_free(ctx->md);
	free(ctx);
}

void strata_sha256_buffer(const void *data, size_t len, struct strata_digest *out)
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out->bytes, &n, EVP_sha256(), NULL) != 1)
		STRATA_BUG("OpenSSL SHA-256 failed");
}

void strata_digest_hex(const struct strata_digest *d, char hex[STRATA_DIGEST_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < STRATA_DIGEST_LEN; i++) {
		hex[2 * i] = digits[d->bytes[i] >> 4];
		hex[2 * i + 1] = digits[d->bytes[i] & 15];
	}
	hex[STRATA_DIGEST_HEX_LEN] = '\0';
}

void strata_digest_string(const struct strata_digest *d, char out[STRATA_DIGEST_STR_LEN])
{
	memcpy(out, "sha256:", 7);
	strata_digest_hex(d, out + 7);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool strata_digest_parse_hex(const char *hex, size_t len, struct strata_digest *out)
{
	if (len != STRATA_DIGEST_HEX_LEN)
		return false;
	for (int i = 0; i < STRATA_DIGEST_LEN; i++) {
		int hi = hexval(hex[2 * i]);
		int lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out->bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

int strata_digest_parse(const char *text, const char *what, struct strata_digest *out,
			struct strata_error **err)
{
	if (text == NULL)
		return strata_error_set(err, 0, "%s: missing digest", what);
	if (strncmp(text, "sha256:", 7) != 0)
		return strata_error_set(err, 0, "%s: unsupported digest `%.80s` (only sha256 is supported)",
					what, text);
	if (!strata_digest_parse_hex(text + 7, strlen(text + 7), out))
		return strata_error_set(err, 0, "%s: invalid digest `%.80s` (expected sha256: and 64 hex digits)",
					what, text);
	return 0;
}

bool strata_digest_equal(const struct strata_digest *a, const struct strata_digest *b)
{
	return memcmp(a->bytes, b->bytes, STRATA_DIGEST_LEN) == 0;
}

bool strata_digest_is_zero(const struct strata_digest *d)
{
	static const struct strata_digest zero;

	return strata_digest_equal(d, &zero);
}
