/* Private to spec*.c and compose.c: the bounded YAML layer. libyaml events become a small
 * node tree; plain scalars are typed with PyYAML's YAML 1.1 implicit
 * resolvers, so that berth and the JSON Schema tests (PyYAML + jsonschema)
 * see the same types. Aliases share nodes; their expansion is counted. */
#ifndef BERTH_SPEC_YAML_H
#define BERTH_SPEC_YAML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The tree's bounds (spec.h has the file's size and errors): */
#define BERTH_SPEC_MAX_DEPTH 64 /* nested mappings/sequences */
#define BERTH_SPEC_MAX_NODES \
    2000000 /* nodes, counting every alias expansion; a full service is ~110 */

/* packed, with 32-bit sizes (a file is at most 16 MiB and 2,000,000
 * nodes): a node takes 40 bytes, not 72, and a diff of many services
 * faults in fewer pages for its tree. Its text and items are carved out
 * of the document's arena, not malloc'ed one by one */
enum __attribute__((packed)) nkind { N_SCALAR, N_SEQ, N_MAP };
/* YAML 1.1 implicit type of a plain scalar, as PyYAML resolves it */
enum __attribute__((packed)) skind { S_STR, S_NULL, S_BOOL, S_INT, S_FLOAT };

struct spec_node {
    enum nkind kind;
    enum skind sk;
    bool decimal; /* S_INT written in plain decimal; S_FLOAT finite, no '_' */
    bool bval;
    unsigned line, col; /* 1-based */
    uint32_t len;
    uint32_t n;
    uint32_t weight;          /* nodes in the subtree, aliases expanded */
    char *text;               /* scalars */
    struct spec_node **items; /* seq: items; map: key, value, key, value... */
};

_Static_assert(sizeof(struct spec_node) == 40, "a node of the tree takes 40 bytes");

/* Blocks that the tree's texts and item arrays are cut from, freed as a
 * whole: a service of bench/reconcile has some 40 of them */
struct spec_arena {
    char **blocks;
    size_t n;
    size_t used, size; /* of the last block */
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
    struct spec_arena arena;
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
