/* YAML text from jansson documents, through libyaml's emitter: the output
 * of the migration bridges (export.h, compose.h). Objects keep their
 * insertion order; a string is written plain only when every YAML 1.1
 * reader takes it back as that same string ("8080", "yes", "1e3", "~" and
 * anything with YAML syntax in it are double-quoted), so that berth,
 * PyYAML and kubectl read what was meant. */
#ifndef BERTH_YAML_EMIT_H
#define BERTH_YAML_EMIT_H

#include <jansson.h>
#include <stddef.h>

#include "error.h"

/* The `n` documents as one YAML stream, each started by "---" when there
 * are several. Returns 0 and a malloc'ed, NUL-terminated text in `ret`. */
BERTH_MUST_CHECK int berth_yaml_emit(json_t *const *docs, size_t n, char **ret, berth_error *err);

/* Whether `s` can be written as a plain YAML 1.1 scalar and read back as
 * the same string. */
bool berth_yaml_plain_ok(const char *s);

#endif
