/*
 * Image references as users and archives write them: NAME[:TAG].
 */
#ifndef STRATA_REF_H
#define STRATA_REF_H

#include <stdbool.h>

#include "error.h"

/*
 * Validates NAME[:TAG] and returns it with ":latest" added when the tag is
 * missing (malloc'd).  NAME is lower-case path components separated by "/",
 * optionally led by a registry host with a port ("localhost:5000/app");
 * TAG is up to 128 characters of [A-Za-z0-9_.-] not starting with "." or
 * "-".  Digest references (NAME@sha256:...) are rejected with a hint.
 */
char *strata_ref_normalize(const char *ref, struct strata_error **err);

/* Returns true when the first component of NAME is a registry host (has "." or ":" or is "localhost"). */
bool strata_ref_has_domain(const char *name);

/* Returns true for 4 to 64 lower-case hex digits, optionally after "sha256:". */
bool strata_ref_is_id_prefix(const char *ref);

#endif
