/* The bounded YAML layer of the spec parser; see spec-yaml.h.
 *
 * libyaml's own document loader is not used: it neither limits alias
 * expansion nor nesting, and it does not type plain scalars the way PyYAML
 * (and so the JSON Schema tests) do. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "spec-yaml.h"
#include "util.h"

#define ARENA_BLOCK 1024       /* nodes */
#define TEXT_BLOCK  (64 << 10) /* bytes of texts and items */

struct yctx {
    struct spec_yaml_error *err;
    bool failed;
};

__attribute__((format(printf, 4, 5))) static void errat(struct yctx *c, unsigned line, unsigned col,
                                                        const char *fmt, ...)
{
    va_list ap;

    if (c->failed)
        return; /* the first problem is the one to fix */
    c->failed = true;
    c->err->line = line;
    c->err->col = col;
    va_start(ap, fmt);
    vsnprintf(c->err->msg, sizeof(c->err->msg), fmt, ap);
    va_end(ap);
}

static struct spec_node *node_new(struct spec_doc *d)
{
    if (d->nblocks == 0 || d->used == ARENA_BLOCK) {
        d->blocks = xrealloc(d->blocks, (d->nblocks + 1) * sizeof(*d->blocks));
        d->blocks[d->nblocks++] = xcalloc(ARENA_BLOCK, sizeof(struct spec_node));
        d->used = 0;
    }
    return &d->blocks[d->nblocks - 1][d->used++];
}

/* `size` bytes aligned for a pointer */
static void *arena_alloc(struct spec_arena *a, size_t size)
{
    size_t at = (a->used + sizeof(void *) - 1) & ~(sizeof(void *) - 1);

    if (!a->n || at + size > a->size) {
        a->size = size > TEXT_BLOCK ? size : TEXT_BLOCK;
        a->blocks = xrealloc(a->blocks, (a->n + 1) * sizeof(*a->blocks));
        a->blocks[a->n++] = xmalloc(a->size);
        at = 0;
    }
    a->used = at + size;
    return a->blocks[a->n - 1] + at;
}

void spec_yaml_free(struct spec_doc *d)
{
    for (size_t b = 0; b < d->nblocks; b++)
        free(d->blocks[b]);
    free(d->blocks);
    for (size_t b = 0; b < d->arena.n; b++)
        free(d->arena.blocks[b]);
    free(d->arena.blocks);
    for (size_t i = 0; i < d->acap; i++)
        free(d->anchors[i].name);
    free(d->anchors);
}

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ULL;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct spec_anchor *anchor_slot(struct spec_doc *d, const char *name)
{
    size_t i = hash_str(name) & (d->acap - 1);

    while (d->anchors[i].name && strcmp(d->anchors[i].name, name))
        i = (i + 1) & (d->acap - 1);
    return &d->anchors[i];
}

/* A later anchor of the same name replaces the earlier one, as in YAML. */
static void anchor_set(struct spec_doc *d, const char *name, struct spec_node *n)
{
    if (2 * (d->an + 1) > d->acap) {
        struct spec_anchor *old = d->anchors;
        size_t oldcap = d->acap;
        d->acap = oldcap ? 2 * oldcap : 64;
        d->anchors = xcalloc(d->acap, sizeof(*d->anchors));
        for (size_t i = 0; i < oldcap; i++)
            if (old[i].name)
                *anchor_slot(d, old[i].name) = old[i];
        free(old);
    }
    struct spec_anchor *a = anchor_slot(d, name);
    if (!a->name) {
        a->name = xstrdup(name);
        d->an++;
    }
    a->node = n;
}

static struct spec_node *anchor_get(struct spec_doc *d, const char *name)
{
    if (!d->acap)
        return NULL;
    return anchor_slot(d, name)->node;
}

/* ---- Plain scalar resolution (PyYAML's YAML 1.1 resolvers) ------------- */

static bool is_one_of(const char *s, const char *const *words)
{
    for (; *words; words++)
        if (!strcmp(s, *words))
            return true;
    return false;
}

static bool all_in(const char *s, const char *set)
{
    for (; *s; s++)
        if (!strchr(set, *s))
            return false;
    return true;
}

/* [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+ */
static bool is_sexagesimal(const char *s)
{
    const char *p = s + (*s == '-' || *s == '+');
    if (*p < '1' || *p > '9')
        return false;
    while ((*p >= '0' && *p <= '9') || *p == '_')
        p++;
    if (*p != ':')
        return false;
    while (*p == ':') {
        p++;
        if (p[0] >= '0' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9')
            p += 2;
        else if (p[0] >= '0' && p[0] <= '9')
            p++;
        else
            return false;
    }
    return *p == '\0';
}

static void resolve_int(struct spec_node *n, const char *s)
{
    const char *p = s + (*s == '-' || *s == '+');

    n->sk = S_STR;
    if (!*p)
        return;
    if (p[0] == '0' && p[1] == 'b' && p[2] && all_in(p + 2, "01_"))
        n->sk = S_INT;
    else if (p[0] == '0' && p[1] == 'x' && p[2] && all_in(p + 2, "0123456789abcdefABCDEF_"))
        n->sk = S_INT;
    else if (p[0] == '0' && p[1] && all_in(p + 1, "01234567_"))
        n->sk = S_INT;
    else if (!strcmp(p, "0") || (*p >= '1' && *p <= '9' && all_in(p, "0123456789_"))) {
        n->sk = S_INT;
        n->decimal = !strchr(p, '_');
    } else if (is_sexagesimal(s))
        n->sk = S_INT;
}

/* [-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)? | \.[0-9][0-9_]*(...)? | .inf | .nan */
static void resolve_float(struct spec_node *n, const char *s)
{
    static const char *const inf[] = {".inf", ".Inf", ".INF", NULL};
    static const char *const nan[] = {".nan", ".NaN", ".NAN", NULL};
    const char *p = s, *q;

    if (is_one_of(s + (*s == '-' || *s == '+'), inf) || is_one_of(s, nan)) {
        n->sk = S_FLOAT;
        return;
    }
    if (*p == '-' || *p == '+') {
        p++;
        if (*p == '.')
            return; /* PyYAML: a sign needs a digit before the dot */
    }
    q = p;
    while ((*q >= '0' && *q <= '9') || (q != p && *q == '_'))
        q++;
    if (*q != '.')
        return;
    if (q == p && !(q[1] >= '0' && q[1] <= '9'))
        return;
    q++;
    while ((*q >= '0' && *q <= '9') || *q == '_')
        q++;
    if (*q == 'e' || *q == 'E') {
        q++;
        if (*q != '-' && *q != '+')
            return;
        q++;
        if (!(*q >= '0' && *q <= '9'))
            return;
        while (*q >= '0' && *q <= '9')
            q++;
    }
    if (*q)
        return;
    n->sk = S_FLOAT;
    n->decimal = !strchr(s, '_');
}

static void resolve_plain(struct spec_node *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const yes[] = {"yes",  "Yes", "YES", "true", "True",
                                      "TRUE", "on",  "On",  "ON",   NULL};
    static const char *const no[] = {"no",    "No",  "NO",  "false", "False",
                                     "FALSE", "off", "Off", "OFF",   NULL};
    const char *s = n->text;

    n->sk = S_STR;
    if (strlen(s) != n->len)
        return;
    /* most scalars are names and paths: rule them out by the first byte */
    if (*s && !strchr("~nNyYtTfFoO0123456789-+.", *s))
        return;
    if (is_one_of(s, nulls))
        n->sk = S_NULL;
    else if (is_one_of(s, yes) || is_one_of(s, no)) {
        n->sk = S_BOOL;
        n->bval = is_one_of(s, yes);
    } else if ((*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.') {
        resolve_int(n, s);
        if (n->sk == S_STR)
            resolve_float(n, s);
    }
}

/* ---- Building the tree from libyaml events ---------------------------- */

/* libyaml reports reader errors as a byte offset */
static void offset_to_linecol(const char *data, size_t len, size_t off, unsigned *line,
                              unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (data[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)data[i] & 0xC0) != 0x80)
            (*col)++;
    }
}

/* The byte at 1-based line/column (columns count characters). */
static int char_at(const char *data, size_t len, unsigned line, unsigned col)
{
    size_t i = 0;

    for (unsigned l = 1; l < line; l++) {
        const char *nl = memchr(data + i, '\n', len - i);
        if (!nl)
            return -1;
        i = (size_t)(nl - data) + 1;
    }
    for (unsigned k = 1; k < col && i < len && data[i] != '\n'; i++)
        if (i + 1 >= len || ((unsigned char)data[i + 1] & 0xC0) != 0x80)
            k++;
    return i < len ? (unsigned char)data[i] : -1;
}

static void yaml_error(struct yctx *c, const struct spec_doc *d, const yaml_parser_t *p)
{
    unsigned line, col;

    if (p->error == YAML_READER_ERROR) {
        offset_to_linecol(d->data, d->len, p->problem_offset, &line, &col);
        if (p->problem_value != -1)
            errat(c, line, col, "invalid input: %s (byte 0x%02x)", p->problem,
                  (unsigned)p->problem_value & 0xff);
        else
            errat(c, line, col, "invalid input: %s", p->problem);
        return;
    }
    if (p->error == YAML_MEMORY_ERROR) {
        errat(c, 0, 0, "out of memory while parsing YAML");
        return;
    }
    line = (unsigned)p->problem_mark.line + 1;
    col = (unsigned)p->problem_mark.column + 1;
    if (char_at(d->data, d->len, line, col) == '\t') {
        errat(c, line, col,
              "yaml syntax error: tab character; indent with spaces, YAML forbids tabs");
        return;
    }
    if (p->context)
        errat(c, line, col, "yaml syntax error: %s %s (line %u)", p->problem ? p->problem : "",
              p->context, (unsigned)p->context_mark.line + 1);
    else
        errat(c, line, col, "yaml syntax error: %s", p->problem ? p->problem : "invalid YAML");
}

static bool tag_ok(struct yctx *c, const yaml_event_t *ev, const char *tag, const char *allowed)
{
    if (!tag || !strcmp(tag, "!") || !strcmp(tag, allowed))
        return true;
    errat(c, (unsigned)ev->start_mark.line + 1, (unsigned)ev->start_mark.column + 1,
          "unsupported YAML tag '%s'", tag);
    return false;
}

/* The items of the open collections, the innermost last: a collection's
 * are copied to the arena, at their final count, when it ends. */
struct builder {
    struct spec_node *stack[BERTH_SPEC_MAX_DEPTH + 1];
    char *anchors[BERTH_SPEC_MAX_DEPTH + 1];
    size_t first[BERTH_SPEC_MAX_DEPTH + 1]; /* of stack[i]'s items in `items` */
    size_t depth;
    int docs;
    struct spec_node **items;
    size_t nitems, cap;
};

static void attach(struct spec_doc *d, struct builder *b, struct spec_node *n)
{
    if (b->depth == 0) {
        d->root = n;
        return;
    }
    if (b->nitems == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->items = xrealloc(b->items, b->cap * sizeof(*b->items));
    }
    b->items[b->nitems++] = n;
    b->stack[b->depth - 1]->weight += n->weight;
}

static void close_collection(struct spec_doc *d, struct builder *b, struct spec_node *n)
{
    size_t first = b->first[b->depth];

    n->n = (uint32_t)(b->nitems - first);
    if (n->n) {
        n->items = arena_alloc(&d->arena, n->n * sizeof(*n->items));
        memcpy(n->items, b->items + first, n->n * sizeof(*n->items));
    }
    b->nitems = first;
}

/* One event. Returns -1 to stop (syntax or bound error recorded), 1 at the
 * end of the stream, 0 to continue. */
static int build_event(struct yctx *c, struct spec_doc *d, struct builder *b, yaml_event_t *ev)
{
    unsigned line = (unsigned)ev->start_mark.line + 1, col = (unsigned)ev->start_mark.column + 1;
    struct spec_node *n = NULL;
    char *anchor = NULL;
    bool owned_anchor = false;

    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1) {
            errat(c, line, col, "only one YAML document is allowed in the file");
            return -1;
        }
        return 0;
    case YAML_SCALAR_EVENT:
        n = node_new(d);
        n->kind = N_SCALAR;
        n->len = ev->data.scalar.length;
        n->text = arena_alloc(&d->arena, n->len + 1);
        memcpy(n->text, ev->data.scalar.value, n->len);
        n->text[n->len] = '\0';
        if (tag_ok(c, ev, (const char *)ev->data.scalar.tag, YAML_STR_TAG) &&
            !ev->data.scalar.tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            resolve_plain(n);
        anchor = (char *)ev->data.scalar.anchor;
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (b->depth == BERTH_SPEC_MAX_DEPTH) {
            errat(c, line, col, "nesting deeper than %d levels", BERTH_SPEC_MAX_DEPTH);
            return -1;
        }
        n = node_new(d);
        if (ev->type == YAML_SEQUENCE_START_EVENT) {
            n->kind = N_SEQ;
            tag_ok(c, ev, (const char *)ev->data.sequence_start.tag, YAML_SEQ_TAG);
            anchor = (char *)ev->data.sequence_start.anchor;
        } else {
            n->kind = N_MAP;
            tag_ok(c, ev, (const char *)ev->data.mapping_start.tag, YAML_MAP_TAG);
            anchor = (char *)ev->data.mapping_start.anchor;
        }
        n->line = line;
        n->col = col;
        n->weight = 1;
        if (++d->total > BERTH_SPEC_MAX_NODES)
            goto too_big;
        /* registered at the end: an alias to an unfinished node would be a cycle */
        b->anchors[b->depth] = anchor ? xstrdup(anchor) : NULL;
        b->first[b->depth] = b->nitems;
        b->stack[b->depth++] = n;
        return 0;
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        n = b->stack[--b->depth];
        close_collection(d, b, n);
        anchor = b->anchors[b->depth];
        owned_anchor = true;
        break;
    case YAML_ALIAS_EVENT:
        n = anchor_get(d, (const char *)ev->data.alias.anchor);
        if (!n) {
            errat(c, line, col, "undefined alias '*%s'", (const char *)ev->data.alias.anchor);
            return -1;
        }
        if ((d->total += n->weight) > BERTH_SPEC_MAX_NODES)
            goto too_big;
        attach(d, b, n);
        return 0;
    default:
        return 0;
    }
    if (n->kind == N_SCALAR) {
        n->line = line;
        n->col = col;
        n->weight = 1;
        if (++d->total > BERTH_SPEC_MAX_NODES)
            goto too_big;
    }
    if (anchor)
        anchor_set(d, anchor, n);
    if (owned_anchor)
        free(anchor);
    attach(d, b, n);
    return 0;

too_big:
    errat(c, line, col,
          "document too large: more than %d nodes with aliases expanded (alias bomb?)",
          BERTH_SPEC_MAX_NODES);
    return -1;
}

int spec_yaml_load(struct spec_doc *d, const char *data, size_t len, struct spec_yaml_error *err)
{
    struct yctx ctx = {.err = err}, *c = &ctx;
    struct builder b = {.depth = 0};
    yaml_parser_t p;
    yaml_event_t ev;
    int r;

    d->data = data;
    d->len = len;
    if (!yaml_parser_initialize(&p)) {
        errat(c, 0, 0, "out of memory initialising the YAML parser");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)data, len);
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            yaml_error(c, d, &p);
            r = -1;
            break;
        }
        r = build_event(c, d, &b, &ev);
        yaml_event_delete(&ev);
        if (r)
            break;
    }
    while (b.depth > 0)
        free(b.anchors[--b.depth]);
    free(b.items);
    yaml_parser_delete(&p);
    return r < 0 || c->failed ? -1 : 0;
}
