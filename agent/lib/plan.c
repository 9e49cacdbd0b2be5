#include "plan.h"

#include <errno.h>
#include <nettle/sha2.h>
#include <string.h>
#include <strings.h>

#include "record.h"
#include "status.h"
#include "util.h"

const char *berth_action_name(enum berth_action a)
{
    static const char *const names[] = {"create", "replace", "remove",
                                        "start",  "stop",    "unchanged"};
    return a < BERTH_ACTION_N ? names[a] : "?";
}

void berth_service_shape_hash(const struct berth_service *svc, char out[65])
{
    struct berth_service copy = *svc;

    copy.enabled = true;
    berth_service_hash(&copy, out);
}

bool berth_env_name_is_secret(const char *name)
{
    static const char *const words[] = {"PASSWORD", "PASSWD",     "PASS", "SECRET", "TOKEN",
                                        "KEY",      "CREDENTIAL", "AUTH", "CERT",   "PRIVATE"};
    for (size_t i = 0; i < ARRAY_SIZE(words); i++)
        if (strcasestr(name, words[i]))
            return true;
    return false;
}

static int cmp_field(const void *a, const void *b)
{
    return strcmp(((const struct berth_field *)a)->path, ((const struct berth_field *)b)->path);
}

static void add_change(struct berth_plan_item *it, const char *path, const char *old,
                       const char *new)
{
    struct berth_change *c;

    if (!strcmp(path, "enabled"))
        return; /* start/stop, not a replacement */
    it->changes = xrealloc(it->changes, (it->nchanges + 1) * sizeof(*it->changes));
    c = &it->changes[it->nchanges++];
    c->path = xstrdup(path);
    c->old = old ? xstrdup(old) : NULL;
    c->new = new ? xstrdup(new) : NULL;
    c->secret = !strncmp(path, "env.", 4) && berth_env_name_is_secret(path + 4);
}

/* Field-by-field differences between the stored canonical spec and the
 * desired service: a merge of two path-sorted lists. */
static void diff_fields(struct berth_plan_item *it, const char *stored_json,
                        const struct berth_service *svc)
{
    struct berth_field *a = NULL, *b = NULL;
    long na = stored_json ? berth_canonical_json_fields(stored_json, &a) : 0;
    size_t nb = berth_service_fields(svc, &b);
    size_t i = 0, j = 0;

    if (na < 0)
        na = 0;
    /* qsort's base must not be NULL, even for no elements */
    if (na > 1)
        qsort(a, (size_t)na, sizeof(*a), cmp_field);
    if (nb > 1)
        qsort(b, nb, sizeof(*b), cmp_field);
    while (i < (size_t)na || j < nb) {
        int c = i >= (size_t)na ? 1 : j >= nb ? -1 : strcmp(a[i].path, b[j].path);
        if (c < 0) {
            add_change(it, a[i].path, a[i].value, NULL);
            i++;
        } else if (c > 0) {
            add_change(it, b[j].path, NULL, b[j].value);
            j++;
        } else {
            if (strcmp(a[i].value, b[j].value))
                add_change(it, a[i].path, a[i].value, b[j].value);
            i++;
            j++;
        }
    }
    berth_fields_free(a, (size_t)(na > 0 ? na : 0));
    berth_fields_free(b, nb);
}

struct record {
    char *name;
    char hash[65];     /* "" when the record is incomplete */
    char rejected[65]; /* a spec rolled back from, "" for none */
    enum berth_state state;
    char *start_error; /* why the recorded spec failed to start (its keeper exited) */
    bool running;
    bool orphaned;
};

/* Record `i` of `recs`: its status and whether its keeper runs (the
 * listed status read looks), and the stored hash, all opened relative to
 * ROOT/services */
static void read_record(const struct berth_records *recs, size_t i, struct record *r)
{
    struct berth_record_at at = berth_records_at(recs, i);
    struct berth_status st;

    berth_status_read_listed(recs, i, true, &st);
    memset(r, 0, sizeof(*r));
    r->name = TAKE_PTR(st.name);
    berth_record_read_hash_at(&at, BERTH_RECORD_HASH, r->hash);
    /* the status read it (rejected.sha256's first line) */
    if (st.rejected_spec_hash && strlen(st.rejected_spec_hash) == 64)
        memcpy(r->rejected, st.rejected_spec_hash, 65);
    r->state = st.state;
    /* a keeper on its way out (a stop asked for by a berth killed since)
     * is not running the service for long: a start waits for it */
    r->running = st.keeper == BERTH_KEEPER_ALIVE && !st.stopping;
    /* the status read looked when the state says a keeper runs; a record
     * no keeper ran has no container */
    r->orphaned = st.keeper_gone ? st.orphaned
                                 : st.keeper == BERTH_KEEPER_GONE && berth_record_orphaned_at(&at);
    if (st.state == BERTH_STATE_FAILED && st.start_error && st.spec_hash && r->hash[0] &&
        !strcmp(st.spec_hash, r->hash))
        r->start_error = TAKE_PTR(st.start_error);
    berth_status_release(&st);
}

/* in name order, as berth_records lists them */
static int read_records(const char *root, struct record **ret, size_t *ret_n, berth_error *err)
{
    struct berth_records recs;
    struct record *v;

    if (berth_records_open(root, &recs, err) < 0)
        return -1;
    v = xcalloc(recs.n, sizeof(*v));
    for (size_t i = 0; i < recs.n; i++)
        read_record(&recs, i, &v[i]);
    *ret = v;
    *ret_n = recs.n;
    berth_records_close(&recs);
    return 0;
}

static void free_records(struct record *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].start_error);
    }
    free(v);
}

static struct berth_plan_item *add_item(struct berth_plan *p, const char *name, enum berth_action a)
{
    struct berth_plan_item *it;

    p->items = xrealloc(p->items, (p->n + 1) * sizeof(*p->items));
    it = &p->items[p->n++];
    memset(it, 0, sizeof(*it));
    it->name = xstrdup(name);
    it->action = a;
    return it;
}

static enum berth_action decide(const struct berth_service *svc, const char *hash,
                                const struct record *r)
{
    if (!r)
        return BERTH_ACTION_CREATE;
    /* rolled back from this very spec: not again until the file changes */
    if (strcmp(r->hash, hash) && strcmp(r->rejected, hash))
        return BERTH_ACTION_REPLACE;
    if (strcmp(r->hash, hash))
        return r->running || !svc->enabled ? BERTH_ACTION_UNCHANGED : BERTH_ACTION_START;
    if (!svc->enabled)
        return r->running ? BERTH_ACTION_STOP : BERTH_ACTION_UNCHANGED;
    /* a keeper in backoff is already on it */
    return r->running ? BERTH_ACTION_UNCHANGED : BERTH_ACTION_START;
}

static void id_add(struct sha256_ctx *ctx, const void *data, size_t len)
{
    sha256_update(ctx, len, data);
}

int berth_plan_compute(const char *root, const struct berth_spec *spec, struct berth_plan *p,
                       berth_error *err)
{
    struct record *recs;
    size_t nrecs, i = 0, j = 0;
    struct sha256_ctx ctx;
    uint8_t md[SHA256_DIGEST_SIZE];
    char hex[65];

    memset(p, 0, sizeof(*p));
    if (read_records(root, &recs, &nrecs, err) < 0)
        return berth_error_wrap(err, "reading the services under '%s'", root);
    sha256_init(&ctx);
    /* services are sorted by name, and so are records: merge them */
    while (i < spec->nservices || j < nrecs) {
        const struct berth_service *svc = i < spec->nservices ? &spec->services[i] : NULL;
        const struct record *r = j < nrecs ? &recs[j] : NULL;
        int c = !svc ? 1 : !r ? -1 : strcmp(svc->name, r->name);
        struct berth_plan_item *it;

        if (c > 0) {
            it = add_item(p, r->name, BERTH_ACTION_REMOVE);
        } else {
            char hash[65];
            berth_service_shape_hash(svc, hash);
            it = add_item(p, svc->name, decide(svc, hash, c == 0 ? r : NULL));
            it->desired = svc;
            memcpy(it->hash, hash, sizeof(hash));
            id_add(&ctx, svc->name, strlen(svc->name) + 1);
            id_add(&ctx, hash, 64);
            id_add(&ctx, svc->enabled ? "1" : "0", 1);
            if (it->action == BERTH_ACTION_REPLACE) {
                /* only replacements need the stored spec */
                _cleanup_free_ char *stored = berth_record_read_spec(root, r->name);
                diff_fields(it, stored, svc);
            }
            i++;
        }
        if (c >= 0) {
            it->running = r->running;
            it->orphaned = r->orphaned;
            it->rolled_back = c == 0 && !strcmp(r->rejected, it->hash);
            it->forget_rejection = c == 0 && r->rejected[0] && !it->rolled_back;
            it->state = berth_state_name(r->state);
            if (it->action == BERTH_ACTION_START && r->start_error && !strcmp(r->hash, it->hash))
                it->start_error = xstrdup(r->start_error);
            id_add(&ctx, "|", 1);
            id_add(&ctx, r->name, strlen(r->name) + 1);
            id_add(&ctx, r->hash, strlen(r->hash) + 1);
            id_add(&ctx, r->running ? "1" : "0", 1);
            j++;
        }
        p->counts[it->action]++;
        id_add(&ctx, ";", 1);
    }
    sha256_digest(&ctx, sizeof(md), md);
    berth_hex(md, sizeof(md), hex);
    memcpy(p->id, hex, 12);
    p->id[12] = '\0';
    free_records(recs, nrecs);
    return 0;
}

size_t berth_plan_hold_failed(struct berth_plan *p)
{
    size_t held = 0;

    for (size_t i = 0; i < p->n; i++) {
        struct berth_plan_item *it = &p->items[i];
        if (it->action != BERTH_ACTION_START || !it->start_error)
            continue;
        p->counts[it->action]--;
        it->action = BERTH_ACTION_UNCHANGED;
        p->counts[it->action]++;
        held++;
    }
    return held;
}

bool berth_plan_is_noop(const struct berth_plan *p)
{
    return p->counts[BERTH_ACTION_UNCHANGED] == p->n;
}

void berth_plan_release(struct berth_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct berth_plan_item *it = &p->items[i];
        for (size_t k = 0; k < it->nchanges; k++) {
            free(it->changes[k].path);
            free(it->changes[k].old);
            free(it->changes[k].new);
        }
        free(it->changes);
        free(it->name);
        free(it->start_error);
    }
    free(p->items);
    memset(p, 0, sizeof(*p));
}
