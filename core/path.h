/*
 * Sanitising of names taken from untrusted tar archives.
 */
#ifndef STRATA_PATH_H
#define STRATA_PATH_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/*
 * Normalises a tar entry name into a relative path below the layer root and
 * returns it (malloc'd).  Leading "/" and "./" are dropped, repeated "/" and
 * "." components are removed, and a trailing "/" is dropped.  A ".."
 * component anywhere is rejected: layers describe a tree, and a name that
 * climbs is either an attack or a broken producer.  Returns "" for the root
 * itself ("/", "./", ".").  Names containing NUL cannot occur (tar names are
 * C strings).  On error returns NULL and names `name`.
 */
char *strata_path_normalize(const char *name, struct strata_error **err);

/* Returns true for a name (single component) that is "", "." or "..". */
bool strata_path_component_invalid(const char *component, size_t len);

/* Number of components in a normalised path ("" has 0). */
size_t strata_path_depth(const char *path);

/*
 * Escapes a path for human output: printable ASCII and valid UTF-8 pass
 * through, a backslash is doubled, and control characters and bytes that
 * are not valid UTF-8 become \xHH.
 * Returns a malloc'd string.
 */
char *strata_path_escape(const char *path);

#endif
