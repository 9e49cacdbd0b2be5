#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "record.h"
#include "util.h"

static const char *const state_names[BERTH_STATE_N] = {
    [BERTH_STATE_STOPPED] = "stopped",         [BERTH_STATE_STARTING] = "starting",
    [BERTH_STATE_RUNNING] = "running",         [BERTH_STATE_BACKOFF] = "backoff",
    [BERTH_STATE_STOPPING] = "stopping",       [BERTH_STATE_FAILED] = "failed",
    [BERTH_STATE_ROLLED_BACK] = "rolled-back",
};

const char *berth_state_name(enum berth_state s)
{
    return (unsigned)s < BERTH_STATE_N ? state_names[s] : "stopped";
}

bool berth_state_parse(const char *name, enum berth_state *ret)
{
    for (size_t i = 0; name && i < BERTH_STATE_N; i++) {
        if (!strcmp(name, state_names[i])) {
            *ret = (enum berth_state)i;
            return true;
        }
    }
    return false;
}

bool berth_state_live(enum berth_state s)
{
    return s != BERTH_STATE_STOPPED && s != BERTH_STATE_FAILED;
}

int berth_status_root_check(const char *root, bool used, berth_error *err)
{
    static const char *const marks[] = {"services", "lock", "agent.json"};
    struct stat st;

    if (stat(root, &st) < 0)
        return berth_error_set(err, errno, "no berth root at '%s'", root);
    if (!S_ISDIR(st.st_mode))
        return berth_error_set(err, ENOTDIR, "no berth root at '%s'", root);
    if (!used)
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(marks); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", root, marks[i]);
        if (access(p, F_OK) == 0)
            return 0;
    }
    berth_error_set(err, 0, "no berth root at '%s': it has no services/, lock or agent.json", root);
    err->code = ENOENT;
    return -1;
}

static char *dup_str(json_t *o, const char *key);

static json_t *time_json(int64_t t)
{
    char buf[32];
    time_t tt = (time_t)t;
    struct tm tm;

    if (!t)
        return json_null();
    gmtime_r(&tt, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    return json_string(buf);
}

static int64_t time_parse(json_t *v)
{
    struct tm tm = {0};
    const char *s = json_string_value(v);

    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

/* Output as JSON text: bytes that are not UTF-8 (a check prints what it
 * likes) become '?'. */
static json_t *text_json(const char *s)
{
    json_t *j = json_string(s);
    _cleanup_free_ char *copy = NULL;

    if (j)
        return j;
    copy = xstrdup(s);
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    return json_string(copy);
}

static json_t *check_json(const struct berth_status *st)
{
    if (!st->has_check)
        return json_null();
    return json_pack(
        "{s:s, s:o, s:o, s:b, s:o, s:o}", "result", st->check_result ? st->check_result : "",
        "exit_code", st->check_exit_code >= 0 ? json_integer(st->check_exit_code) : json_null(),
        "signal", st->check_signal ? json_integer(st->check_signal) : json_null(), "timed_out",
        st->check_timed_out, "output", text_json(st->check_output ? st->check_output : ""), "at",
        time_json(st->check_at));
}

static void check_parse(json_t *c, struct berth_status *st)
{
    json_t *code = json_object_get(c, "exit_code");

    if (!json_is_object(c))
        return;
    st->has_check = true;
    st->check_result = dup_str(c, "result");
    st->check_exit_code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
    st->check_signal = (int)json_integer_value(json_object_get(c, "signal"));
    st->check_timed_out = json_is_true(json_object_get(c, "timed_out"));
    st->check_output = dup_str(c, "output");
    st->check_at = time_parse(json_object_get(c, "at"));
}

static json_t *to_json(const struct berth_status *st)
{
    json_t *o = json_object();
    json_t *last = json_null();

    if (st->has_exit)
        last = json_pack("{s:i, s:b, s:o}", "code", st->exit_code, "oom_killed", st->exit_oom, "at",
                         time_json(st->exit_at));
    json_object_set_new(o, "name", json_string(st->name));
    json_object_set_new(o, "state", json_string(berth_state_name(st->state)));
    /* "pid" stays the init's, as it always was (extend, never rename) */
    json_object_set_new(o, "pid", st->pid ? json_integer(st->pid) : json_null());
    json_object_set_new(o, "service_pid",
                        st->pid && st->service_pid ? json_integer(st->service_pid) : json_null());
    json_object_set_new(o, "init_pid", st->pid ? json_integer(st->pid) : json_null());
    json_object_set_new(o, "restarts", json_integer(st->restarts));
    json_object_set_new(o, "manual_restarts", json_integer(st->manual_restarts));
    json_object_set_new(o, "started_at", time_json(st->started_at));
    json_object_set_new(o, "image", st->image ? json_string(st->image) : json_null());
    json_object_set_new(o, "health", json_string(st->health ? st->health : "none"));
    json_object_set_new(o, "last_exit", last);
    json_object_set_new(o, "keeper_pid",
                        st->keeper_pid ? json_integer(st->keeper_pid) : json_null());
    json_object_set_new(o, "spec_hash", st->spec_hash ? json_string(st->spec_hash) : json_null());
    json_object_set_new(o, "start_error",
                        st->start_error ? json_string(st->start_error) : json_null());
    json_object_set_new(o, "keeper_gone", json_boolean(st->keeper_gone));
    if (st->keeper_error)
        json_object_set_new(o, "keeper_error", json_string(st->keeper_error));
    json_object_set_new(o, "stopping", json_boolean(st->stopping));
    json_object_set_new(o, "last_check", check_json(st));
    json_object_set_new(
        o, "rejected",
        st->rejected_spec_hash
            ? json_pack("{s:s, s:o}", "spec_hash", st->rejected_spec_hash, "image",
                        st->rejected_image ? json_string(st->rejected_image) : json_null())
            : json_null());
    return o;
}

int berth_status_write(const char *root, const struct berth_status *st, berth_error *err)
{
    json_t *o = to_json(st);
    _cleanup_free_ char *text = json_dumps(o, JSON_SORT_KEYS | JSON_INDENT(2));

    json_decref(o);
    if (!text)
        return berth_error_set(err, ENOMEM, "encoding the status of '%s'", st->name);
    return berth_record_status_write(root, st->name, text, err);
}

static char *dup_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? xstrdup(s) : NULL;
}

static void from_json(json_t *o, struct berth_status *st)
{
    json_t *last = json_object_get(o, "last_exit");

    if (!berth_state_parse(json_string_value(json_object_get(o, "state")), &st->state))
        st->state = BERTH_STATE_STOPPED;
    st->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
    st->service_pid = (pid_t)json_integer_value(json_object_get(o, "service_pid"));
    st->keeper_pid = (pid_t)json_integer_value(json_object_get(o, "keeper_pid"));
    st->restarts = (unsigned)json_integer_value(json_object_get(o, "restarts"));
    st->manual_restarts = (unsigned)json_integer_value(json_object_get(o, "manual_restarts"));
    st->started_at = time_parse(json_object_get(o, "started_at"));
    st->image = dup_str(o, "image");
    st->health = dup_str(o, "health");
    st->spec_hash = dup_str(o, "spec_hash");
    st->start_error = dup_str(o, "start_error");
    st->keeper_error = dup_str(o, "keeper_error");
    st->stopping = json_is_true(json_object_get(o, "stopping"));
    check_parse(json_object_get(o, "last_check"), st);
    if (json_is_object(last)) {
        st->has_exit = true;
        st->exit_code = (int)json_integer_value(json_object_get(last, "code"));
        st->exit_oom = json_is_true(json_object_get(last, "oom_killed"));
        st->exit_at = time_parse(json_object_get(last, "at"));
    }
}

/* The record at `at`; `keeper` is what its lock said when the caller
 * looked already, else BERTH_KEEPER_UNKNOWN (then the lock is looked at
 * only when the state says a keeper runs). */
static int status_read(const struct berth_record_at *at, const char *name,
                       enum berth_keeper_probe keeper, struct berth_status *st, berth_error *err)
{
    json_t *o;
    char rejected[65];

    memset(st, 0, sizeof(*st));
    if (berth_record_status_load_at(at, &o, err) < 0)
        return -1;
    st->name = xstrdup(name);
    from_json(o, st);
    json_decref(o);
    /* rolled back from (rejected.sha256), and running the version it was
     * rolled back to */
    if (berth_record_read_rejected_at(at, rejected, &st->rejected_image))
        st->rejected_spec_hash = xstrdup(rejected);
    if (st->state == BERTH_STATE_RUNNING && st->rejected_spec_hash)
        st->state = BERTH_STATE_ROLLED_BACK;
    if (keeper == BERTH_KEEPER_UNKNOWN && berth_state_live(st->state))
        keeper = berth_record_keeper_probe_at(at, NULL);
    st->keeper = keeper;
    /* the record says alive, the lock says the keeper is gone */
    if (berth_state_live(st->state) && keeper != BERTH_KEEPER_ALIVE) {
        st->keeper_gone = true;
        st->keeper_pid = 0;
        st->orphaned = berth_record_orphaned_at(at);
        if (!st->orphaned) {
            st->state = BERTH_STATE_FAILED;
            st->pid = 0;
            st->service_pid = 0;
        }
    }
    /* no container, no health */
    if (st->state != BERTH_STATE_RUNNING && st->state != BERTH_STATE_ROLLED_BACK) {
        free(st->health);
        st->health = xstrdup("none");
    }
    return 0;
}

int berth_status_read(const char *root, const char *name, struct berth_status *st, berth_error *err)
{
    _cleanup_free_ char *dir = berth_record_dir(root, name);
    struct berth_record_at at = {.dfd = AT_FDCWD, .dir = dir};

    return status_read(&at, name, BERTH_KEEPER_UNKNOWN, st, err);
}

void berth_status_release(struct berth_status *st)
{
    free(st->name);
    free(st->image);
    free(st->health);
    free(st->spec_hash);
    free(st->start_error);
    free(st->keeper_error);
    free(st->rejected_spec_hash);
    free(st->rejected_image);
    free(st->check_result);
    free(st->check_output);
    memset(st, 0, sizeof(*st));
}

void berth_status_read_listed(const struct berth_records *recs, size_t i, bool keeper_first,
                              struct berth_status *st)
{
    struct berth_record_at at = berth_records_at(recs, i);
    /* a record that no keeper ran has no status to read (record.h): most
     * records of a host where many services are disabled */
    enum berth_keeper_probe keeper =
        keeper_first ? berth_record_keeper_probe_at(&at, NULL) : BERTH_KEEPER_UNKNOWN;

    if (keeper == BERTH_KEEPER_NEVER || status_read(&at, recs->names[i], keeper, st, NULL) < 0) {
        /* or a record being created: its spec before the first status */
        memset(st, 0, sizeof(*st));
        st->name = xstrdup(recs->names[i]);
        st->state = BERTH_STATE_STOPPED;
        st->keeper = keeper;
    }
}

int berth_status_list(const char *root, struct berth_status **ret, size_t *ret_n, berth_error *err)
{
    struct berth_records recs;
    struct berth_status *v;

    *ret = NULL;
    *ret_n = 0;
    if (berth_records_open(root, &recs, err) < 0)
        return -1;
    v = xcalloc(recs.n, sizeof(*v));
    for (size_t i = 0; i < recs.n; i++)
        berth_status_read_listed(&recs, i, false, &v[i]);
    *ret = v;
    *ret_n = recs.n;
    berth_records_close(&recs);
    return 0;
}

void berth_status_list_free(struct berth_status *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        berth_status_release(&v[i]);
    free(v);
}

char *berth_status_json(const struct berth_status *v, size_t n)
{
    json_t *arr = json_array();
    json_t *o;
    char *text;

    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, to_json(&v[i]));
    o = json_pack("{s:o}", "services", arr);
    text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        abort();
    return text;
}
