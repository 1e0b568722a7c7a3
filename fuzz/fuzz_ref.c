/* libFuzzer target: image reference parsing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct strata_error *err = NULL;
	char *normal;

	memcpy(text, data, size);
	text[size] = '\0';
	normal = strata_ref_normalize(text, &err);
	/* A normalised reference must normalise to itself. */
	if (normal) {
		struct strata_error *again_err = NULL;
		char *again = strata_ref_normalize(normal, &again_err);

		if (again == NULL || strcmp(again, normal) != 0)
			abort();
		free(again);
	}
	strata_ref_is_id_prefix(text);
	strata_ref_has_domain(text);
	free(normal);
	strata_error_free(err);
	free(text);
	return 0;
}
