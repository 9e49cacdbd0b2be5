/* libFuzzer target for the desired-state parser: any input must give either
 * a spec or errors, never a crash, a leak or undefined behaviour; for a
 * valid spec, the canonical form must be stable and re-readable. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_service(const struct berth_service *s)
{
    struct berth_field *f = NULL, *g = NULL;
    char h1[65], h2[65];
    char *json = berth_service_canonical_json(s);
    size_t n = berth_service_fields(s, &f);
    long m = berth_canonical_json_fields(json, &g);

    if (m != (long)n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].path, g[i].path) || strcmp(f[i].value, g[i].value))
            abort();
    berth_service_hash(s, h1);
    berth_service_hash(s, h2);
    if (strcmp(h1, h2) || strlen(h1) != 64)
        abort();
    berth_fields_free(f, n);
    berth_fields_free(g, n);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct berth_spec spec = BERTH_SPEC_INIT;
    struct berth_spec_errors errs = BERTH_SPEC_ERRORS_INIT;

    if (berth_spec_parse_buffer((const char *)data, size, "fuzz.yaml", &spec, &errs) == 0) {
        if (errs.n)
            abort();
        for (size_t i = 0; i < spec.nservices; i++) {
            check_service(&spec.services[i]);
            if (berth_spec_find(&spec, spec.services[i].name) != &spec.services[i])
                abort();
        }
    } else {
        if (errs.n == 0 || spec.nservices)
            abort();
        for (size_t i = 0; i < errs.n; i++)
            free(berth_spec_error_format(&errs.v[i]));
    }
    berth_spec_release(&spec);
    berth_spec_errors_release(&errs);
    return 0;
}
