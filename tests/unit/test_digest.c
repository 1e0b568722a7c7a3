/*
 * Unit tests for core/digest.c: SHA-256 hashing and the "sha256:<hex>" form.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/digest.h"
#include "suites.h"

/* Test vectors from FIPS 180-2, appendix B.1, and the hash of the empty message. */
#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA256_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void assert_hex(const struct strata_digest *d, const char *expected)
{
	char hex[STRATA_DIGEST_HEX_LEN + 1];

	strata_digest_hex(d, hex);
	ck_assert_str_eq(hex, expected);
}

/*
 * Parses `text` and checks that it fails with a message that quotes `text`
 * and names the field.  The message keeps only the first 80 bytes of a
 * longer value, so only that prefix is looked for then.
 */
static void assert_parse_rejected(const char *text, const char *expected_words)
{
	struct strata_digest d;
	struct strata_error *err = NULL;
	size_t prefix_len = strlen(text) > 80 ? 80 : strlen(text);
	char *quoted = calloc(1, prefix_len + 3);
	int rc;

	rc = strata_digest_parse(text, "manifest.json Config", &d, &err);
	ck_assert_msg(rc == -1, "digest `%s` was accepted", text);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(err->message);
	ck_assert_int_eq(err->errnum, 0);

	quoted[0] = '`';
	memcpy(quoted + 1, text, prefix_len);
	if (prefix_len == strlen(text))
		quoted[prefix_len + 1] = '`';
	ck_assert_msg(strstr(err->message, quoted) != NULL, "message `%s` does not name %s", err->message, quoted);
	ck_assert_msg(strstr(err->message, "manifest.json Config") != NULL, "message `%s` does not name the field",
		      err->message);
	ck_assert_msg(strstr(err->message, expected_words) != NULL, "message `%s` does not contain `%s`",
		      err->message, expected_words);

	free(quoted);
	strata_error_free(err);
}

START_TEST(test_digest_sha256_empty)
{
	struct strata_digest d;

	strata_sha256_buffer("", 0, &d);
	assert_hex(&d, SHA256_EMPTY);
	ck_assert(!strata_digest_is_zero(&d));
}
END_TEST

START_TEST(test_digest_sha256_abc)
{
	struct strata_digest d;

	strata_sha256_buffer("abc", 3, &d);
	assert_hex(&d, SHA256_ABC);
}
END_TEST

START_TEST(test_digest_streaming_matches_buffer)
{
	static const size_t chunk_sizes[] = { 1, 3, 63, 64, 65, 4096, 100000 };
	const size_t len = 300007;
	unsigned char *data = malloc(len);
	struct strata_digest expected;
	struct strata_sha256 *ctx = strata_sha256_new();

	for (size_t i = 0; i < len; i++)
		data[i] = (unsigned char)(i * 31 + i / 7);
	strata_sha256_buffer(data, len, &expected);

	/* One context for every chunk size: final() must leave it ready for the next hash. */
	for (size_t k = 0; k < sizeof(chunk_sizes) / sizeof(chunk_sizes[0]); k++) {
		struct strata_digest streamed;

		for (size_t off = 0; off < len; off += chunk_sizes[k]) {
			size_t n = len - off < chunk_sizes[k] ? len - off : chunk_sizes[k];

			strata_sha256_update(ctx, data + off, n);
		}
		strata_sha256_update(ctx, data, 0);
		strata_sha256_final(ctx, &streamed);
		ck_assert_msg(strata_digest_equal(&streamed, &expected), "chunk size %zu gives another digest",
			      chunk_sizes[k]);
	}

	strata_sha256_free(ctx);
	free(data);
}
END_TEST

START_TEST(test_digest_streaming_abc_and_empty)
{
	struct strata_sha256 *ctx = strata_sha256_new();
	struct strata_digest d;

	strata_sha256_update(ctx, "a", 1);
	strata_sha256_update(ctx, "bc", 2);
	strata_sha256_final(ctx, &d);
	assert_hex(&d, SHA256_ABC);

	strata_sha256_final(ctx, &d);
	assert_hex(&d, SHA256_EMPTY);

	strata_sha256_free(ctx);
	strata_sha256_free(NULL);
}
END_TEST

START_TEST(test_digest_hex_round_trip)
{
	struct strata_digest d;
	struct strata_digest parsed;
	char hex[STRATA_DIGEST_HEX_LEN + 1];
	char text[STRATA_DIGEST_STR_LEN];

	strata_sha256_buffer("abc", 3, &d);
	strata_digest_hex(&d, hex);
	ck_assert_uint_eq(strlen(hex), STRATA_DIGEST_HEX_LEN);
	ck_assert(strata_digest_parse_hex(hex, strlen(hex), &parsed));
	ck_assert(strata_digest_equal(&d, &parsed));

	strata_digest_string(&d, text);
	ck_assert_str_eq(text, "sha256:" SHA256_ABC);
	ck_assert_uint_eq(strlen(text), STRATA_DIGEST_STR_LEN - 1);
}
END_TEST

START_TEST(test_digest_parse_hex_rejects)
{
	struct strata_digest d;
	char upper[] = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
	struct strata_digest abc;

	strata_sha256_buffer("abc", 3, &abc);
	ck_assert(strata_digest_parse_hex(upper, strlen(upper), &d));
	ck_assert(strata_digest_equal(&d, &abc));

	ck_assert(!strata_digest_parse_hex(SHA256_ABC, 63, &d));
	ck_assert(!strata_digest_parse_hex(SHA256_ABC "0", 65, &d));
	ck_assert(!strata_digest_parse_hex("", 0, &d));
	upper[10] = 'g';
	ck_assert(!strata_digest_parse_hex(upper, strlen(upper), &d));
	upper[10] = ' ';
	ck_assert(!strata_digest_parse_hex(upper, strlen(upper), &d));
}
END_TEST

START_TEST(test_digest_parse_accepts_sha256)
{
	struct strata_digest d;
	struct strata_digest abc;
	struct strata_error *err = NULL;

	strata_sha256_buffer("abc", 3, &abc);
	ck_assert_int_eq(strata_digest_parse("sha256:" SHA256_ABC, "config", &d, &err), 0);
	ck_assert_ptr_null(err);
	ck_assert(strata_digest_equal(&d, &abc));
}
END_TEST

START_TEST(test_digest_parse_rejects_other_algorithms)
{
	assert_parse_rejected("sha512:" SHA256_ABC SHA256_ABC, "unsupported");
	assert_parse_rejected("sha384:" SHA256_ABC, "unsupported");
	assert_parse_rejected("SHA256:" SHA256_ABC, "unsupported");
	assert_parse_rejected(SHA256_ABC, "unsupported");
	assert_parse_rejected("", "unsupported");
}
END_TEST

START_TEST(test_digest_parse_rejects_malformed_hex)
{
	char nonhex[] = "sha256:" SHA256_ABC;

	nonhex[20] = 'z';
	assert_parse_rejected("sha256:" "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a", "invalid");
	assert_parse_rejected("sha256:" SHA256_ABC "0", "invalid");
	assert_parse_rejected("sha256:", "invalid");
	assert_parse_rejected(nonhex, "invalid");
	assert_parse_rejected("sha256: " SHA256_ABC, "invalid");
}
END_TEST

START_TEST(test_digest_parse_null_is_missing)
{
	struct strata_digest d;
	struct strata_error *err = NULL;

	ck_assert_int_eq(strata_digest_parse(NULL, "config digest", &d, &err), -1);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(err->message, "config digest: missing digest");
	strata_error_free(err);
}
END_TEST

START_TEST(test_digest_equal_and_zero)
{
	struct strata_digest zero = {0};
	struct strata_digest a;
	struct strata_digest b;

	ck_assert(strata_digest_is_zero(&zero));
	strata_sha256_buffer("abc", 3, &a);
	b = a;
	ck_assert(strata_digest_equal(&a, &b));
	b.bytes[STRATA_DIGEST_LEN - 1] ^= 1;
	ck_assert(!strata_digest_equal(&a, &b));
	ck_assert(!strata_digest_is_zero(&b));
}
END_TEST

Suite *digest_suite(void)
{
	Suite *s = suite_create("digest");
	TCase *tc = tcase_create("digest");

	tcase_add_test(tc, test_digest_sha256_empty);
	tcase_add_test(tc, test_digest_sha256_abc);
	tcase_add_test(tc, test_digest_streaming_matches_buffer);
	tcase_add_test(tc, test_digest_streaming_abc_and_empty);
	tcase_add_test(tc, test_digest_hex_round_trip);
	tcase_add_test(tc, test_digest_parse_hex_rejects);
	tcase_add_test(tc, test_digest_parse_accepts_sha256);
	tcase_add_test(tc, test_digest_parse_rejects_other_algorithms);
	tcase_add_test(tc, test_digest_parse_rejects_malformed_hex);
	tcase_add_test(tc, test_digest_parse_null_is_missing);
	tcase_add_test(tc, test_digest_equal_and_zero);
	suite_add_tcase(s, tc);
	return s;
}
