/* Private to spec*.c and compose.c: the bounded YAML layer. libyaml events become a small
 * node tree; plain scalars are typed with PyYAML's YAML 1.1 implicit
 * resolvers, so that berth and the JSON Schema tests (PyYAML + jsonschema)
 * see the same types. Aliases share nodes; their expansion is counted. */
#ifndef BERTH_SPEC_YAML_H
#define BERTH_SPEC_YAML_H

#include <stdbool.h>
#include <stddef.h>

enum nkind { N_SCALAR, N_SEQ, N_MAP };
/* YAML 1.1 implicit type of a plain scalar, as PyYAML resolves it */
enum skind { S_STR, S_NULL, S_BOOL, S_INT, S_FLOAT };

struct spec_node {
    enum nkind kind;
    enum skind sk;
    bool decimal; /* S_INT written in plain decimal; S_FLOAT finite, no '_' */
    bool bval;
    unsigned line, col; /* 1-based */
    char *text;         /* scalars */
    size_t len;
    struct spec_node **items; /* seq: items; map: key, value, key, value... */
    size_t n, cap;
    size_t weight; /* nodes in the subtree, aliases expanded */
};

struct spec_anchor {
    char *name;
    struct spec_node *node;
};

struct spec_doc {
    const char *data;
    size_t len;
    struct spec_node **blocks;
    size_t nblocks, used; /* nodes used in the last block */
    struct spec_anchor *anchors;
    size_t acap, an;
    size_t total; /* expanded node count */
    struct spec_node *root;
};

struct spec_yaml_error {
    unsigned line, col; /* 1-based; 0 when about the whole input */
    char msg[512];
};

/* Parse `len` bytes into `d` (zero it first). On failure returns -1 with the
 * first problem in `err`: a YAML syntax or encoding error, more than one
 * document, an unsupported tag, an undefined alias, nesting deeper than
 * BERTH_SPEC_MAX_DEPTH or more than BERTH_SPEC_MAX_NODES nodes with aliases
 * expanded. An input without a document leaves d->root NULL. */
int spec_yaml_load(struct spec_doc *d, const char *data, size_t len, struct spec_yaml_error *err);

/* Free every node of `d`. */
void spec_yaml_free(struct spec_doc *d);

#endif
