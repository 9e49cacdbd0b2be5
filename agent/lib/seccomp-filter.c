#include "seccomp-profile.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "util.h"

/* const struct berth_seccomp_profile berth_seccomp_default, from Docker's
 * default.json (agent/gen/seccomp-gen.c) */
#include "berth-seccomp-default.h"

/* The running kernel's major << 16 | minor */
static uint32_t kernel_version(void)
{
    static uint32_t v;
    struct utsname u;
    unsigned major, minor;

    if (!v && uname(&u) == 0 && sscanf(u.release, "%u.%u", &major, &minor) == 2)
        v = major << 16 | (minor & 0xffff);
    return v;
}

/* Go's name of the native architecture, as the profile's conditions use it */
static uint32_t native_goarch(void)
{
    switch (seccomp_arch_native()) {
    case SCMP_ARCH_X86_64:
        return BERTH_SECCOMP_GOARCH_AMD64;
    case SCMP_ARCH_X86:
        return BERTH_SECCOMP_GOARCH_386;
    case SCMP_ARCH_AARCH64:
        return BERTH_SECCOMP_GOARCH_ARM64;
    case SCMP_ARCH_ARM:
        return BERTH_SECCOMP_GOARCH_ARM;
    case SCMP_ARCH_PPC64LE:
        return BERTH_SECCOMP_GOARCH_PPC64LE;
    case SCMP_ARCH_S390X:
        return BERTH_SECCOMP_GOARCH_S390X;
    case SCMP_ARCH_RISCV64:
        return BERTH_SECCOMP_GOARCH_RISCV64;
    default:
        return 0;
    }
}

/* moby's setupSeccomp(): the excludes first, then the includes */
static bool applies(const struct berth_seccomp_rule *r, uint64_t caps, uint32_t arch,
                    uint32_t kernel)
{
    if ((r->arches_out & arch) || (r->caps_none & caps) ||
        (r->kernel_below && kernel >= r->kernel_below))
        return false;
    if ((r->arches_in && !(r->arches_in & arch)) || (r->caps_all & caps) != r->caps_all ||
        (r->kernel_min && kernel < r->kernel_min))
        return false;
    return true;
}

static int add_arches(scmp_filter_ctx ctx, const struct berth_seccomp_profile *p, berth_error *err)
{
    const char *g = p->arch_groups;
    uint32_t native = seccomp_arch_native();

    for (uint32_t i = 0; i < p->narch_groups; i++, g += strlen(g) + 1) {
        char buf[256], *save = NULL, *a;
        bool first = true, ours = p->arches_explicit;
        snprintf(buf, sizeof(buf), "%s", g);
        for (a = strtok_r(buf, " ", &save); a; a = strtok_r(NULL, " ", &save), first = false) {
            uint32_t arch = seccomp_arch_resolve_name(a);
            int r;
            if (first && !ours)
                ours = arch == native;
            if (!ours)
                break;
            if (arch == native)
                continue;
            r = seccomp_arch_add(ctx, arch);
            if (r < 0 && r != -EEXIST)
                return berth_error_set(err, -r, "adding the architecture '%s' to the filter", a);
        }
    }
    return 0;
}

static bool same_index_twice(const struct berth_seccomp_rule *r)
{
    for (uint32_t i = 0; i < r->nargs; i++)
        for (uint32_t k = i + 1; k < r->nargs; k++)
            if (r->args[i].index == r->args[k].index)
                return true;
    return false;
}

static int add_rule(scmp_filter_ctx ctx, const struct berth_seccomp_rule *r, int nr)
{
    struct scmp_arg_cmp cmp[6];
    uint32_t n = r->nargs < 6 ? r->nargs : 6;

    for (uint32_t i = 0; i < n; i++)
        cmp[i] = (struct scmp_arg_cmp){r->args[i].index, (enum scmp_compare)r->args[i].op,
                                       r->args[i].value, r->args[i].value_two};
    if (!same_index_twice(r))
        return seccomp_rule_add_array(ctx, r->action, nr, n, n ? cmp : NULL);
    /* libseccomp cannot AND two conditions on one argument: runc adds each
     * as a rule of its own */
    for (uint32_t i = 0; i < n; i++) {
        int e = seccomp_rule_add_array(ctx, r->action, nr, 1, &cmp[i]);
        if (e < 0)
            return e;
    }
    return 0;
}

static int add_rules(scmp_filter_ctx ctx, const struct berth_seccomp_profile *p, uint64_t caps,
                     berth_error *err)
{
    uint32_t arch = native_goarch(), kernel = kernel_version();

    for (uint32_t i = 0; i < p->nrules; i++) {
        const struct berth_seccomp_rule *r = &p->rules[i];
        const char *name = r->names;
        if (!applies(r, caps, arch, kernel) || r->action == p->default_action)
            continue;
        for (uint32_t k = 0; k < r->nnames; k++, name += strlen(name) + 1) {
            int nr = seccomp_syscall_resolve_name(name), e;
            if (nr == __NR_SCMP_ERROR)
                continue; /* not known to this libseccomp */
            e = add_rule(ctx, r, nr);
            if (e < 0)
                return berth_error_set(err, -e, "adding the seccomp rule for '%s'", name);
        }
    }
    return 0;
}

/* FNV-1a, 64 bits */
static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* What the BPF is a function of: libseccomp's version, the architectures,
 * the default action and the rules that apply (caps and kernel decided) */
static uint64_t filter_key(const struct berth_seccomp_profile *p, uint64_t caps)
{
    const struct scmp_version *v = seccomp_version();
    uint32_t arch = native_goarch(), kernel = kernel_version();
    uint32_t head[] = {v->major,          v->minor,
                       v->micro,          seccomp_arch_native(),
                       p->default_action, (uint32_t)p->arches_explicit};
    const char *g = p->arch_groups;
    uint64_t h = fnv(0xcbf29ce484222325ULL, head, sizeof(head));

    for (uint32_t i = 0; i < p->narch_groups; i++, g += strlen(g) + 1)
        h = fnv(h, g, strlen(g) + 1);
    for (uint32_t i = 0; i < p->nrules; i++) {
        const struct berth_seccomp_rule *r = &p->rules[i];
        const char *end = r->names;
        if (!applies(r, caps, arch, kernel))
            continue;
        for (uint32_t k = 0; k < r->nnames; k++)
            end += strlen(end) + 1;
        h = fnv(h, &i, sizeof(i));
        h = fnv(h, &r->action, sizeof(r->action));
        h = fnv(h, r->names, (size_t)(end - r->names));
        if (r->nargs)
            h = fnv(h, r->args, r->nargs * sizeof(*r->args));
    }
    return h;
}

/* The cache: DIR/<key>.bpf holds the key, then the instructions. */
static char *cache_path(const char *dir, uint64_t key)
{
    return xasprintf("%s/%016llx.bpf", dir, (unsigned long long)key);
}

static int cache_read(const char *dir, uint64_t key, struct berth_seccomp_bpf *ret)
{
    _cleanup_free_ char *path = cache_path(dir, key);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    uint64_t head;
    size_t n;

    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
        st.st_size <= (off_t)sizeof(head) ||
        (st.st_size - sizeof(head)) % sizeof(struct sock_filter) ||
        (st.st_size - sizeof(head)) / sizeof(struct sock_filter) > BPF_MAXINSNS)
        return -1;
    n = (size_t)st.st_size - sizeof(head);
    if (pread(fd, &head, sizeof(head), 0) != sizeof(head) || head != key)
        return -1;
    ret->insns = xmalloc(n);
    if (pread(fd, ret->insns, n, sizeof(head)) != (ssize_t)n) {
        berth_seccomp_bpf_release(ret);
        return -1;
    }
    ret->len = (unsigned short)(n / sizeof(struct sock_filter));
    return 0;
}

static void cache_write(const char *dir, uint64_t key, const struct berth_seccomp_bpf *b)
{
    _cleanup_free_ char *path = cache_path(dir, key);
    size_t n = b->len * sizeof(struct sock_filter);
    _cleanup_free_ char *data = xmalloc(sizeof(key) + n);
    berth_error ign = BERTH_ERROR_INIT;

    memcpy(data, &key, sizeof(key));
    memcpy(data + sizeof(key), b->insns, n);
    /* a cache: without it the next start compiles the filter again */
    if (berth_mkdir_p(dir, 0700, &ign) == 0 &&
        berth_write_file_atomic(path, data, sizeof(key) + n, 0600, &ign) < 0) {
    }
}

/* and the last filter of this process (a keeper's restarts, health checks) */
static struct {
    uint64_t key;
    struct berth_seccomp_bpf bpf;
} last;

static void copy_bpf(struct berth_seccomp_bpf *to, const struct berth_seccomp_bpf *from)
{
    to->insns = xmalloc(from->len * sizeof(struct sock_filter));
    memcpy(to->insns, from->insns, from->len * sizeof(struct sock_filter));
    to->len = from->len;
}

static int export_bpf(scmp_filter_ctx ctx, struct berth_seccomp_bpf *ret, berth_error *err)
{
    _cleanup_close_ int fd = memfd_create("berth-seccomp", MFD_CLOEXEC);
    struct stat st;
    int e;

    if (fd < 0)
        return berth_error_set(err, errno, "creating a memfd for the seccomp filter");
    e = seccomp_export_bpf(ctx, fd);
    if (e < 0)
        return berth_error_set(err, -e, "compiling the seccomp filter");
    if (fstat(fd, &st) < 0)
        return berth_error_set(err, errno, "compiling the seccomp filter");
    if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
        st.st_size / sizeof(struct sock_filter) > BPF_MAXINSNS)
        return berth_error_set(err, E2BIG, "the seccomp filter has %lld bytes",
                               (long long)st.st_size);
    ret->insns = xmalloc((size_t)st.st_size);
    ret->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
    if (pread(fd, ret->insns, (size_t)st.st_size, 0) != st.st_size) {
        berth_seccomp_bpf_release(ret);
        return berth_error_set(err, errno ? errno : EIO, "reading the seccomp filter");
    }
    return 0;
}

static int compile(const struct berth_seccomp_profile *p, uint64_t caps,
                   struct berth_seccomp_bpf *ret, berth_error *err)
{
    scmp_filter_ctx ctx = seccomp_init(p->default_action);
    int r;

    if (!ctx)
        return berth_error_set(err, EINVAL, "creating the seccomp filter");
    /* no_new_privs is berth_child_become()'s, not the filter's */
    r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    if (r < 0)
        berth_error_set(err, -r, "creating the seccomp filter");
    if (r == 0)
        r = add_arches(ctx, p, err);
    if (r == 0)
        r = add_rules(ctx, p, caps, err);
    if (r == 0)
        r = export_bpf(ctx, ret, err);
    seccomp_release(ctx);
    return r < 0 ? -1 : 0;
}

int berth_seccomp_build(const struct berth_seccomp_profile *p, uint64_t caps, const char *cache_dir,
                        struct berth_seccomp_bpf *ret, berth_error *err)
{
    uint64_t key = filter_key(p, caps);

    memset(ret, 0, sizeof(*ret));
    if (last.bpf.insns && last.key == key) {
        copy_bpf(ret, &last.bpf);
        return 0;
    }
    if (!cache_dir || cache_read(cache_dir, key, ret) < 0) {
        if (compile(p, caps, ret, err) < 0)
            return -1;
        if (cache_dir)
            cache_write(cache_dir, key, ret);
    }
    berth_seccomp_bpf_release(&last.bpf);
    copy_bpf(&last.bpf, ret);
    last.key = key;
    return 0;
}

void berth_seccomp_bpf_release(struct berth_seccomp_bpf *b)
{
    free(b->insns);
    b->insns = NULL;
    b->len = 0;
}

int berth_seccomp_install(const struct berth_seccomp_bpf *b)
{
    struct sock_fprog prog = {b->len, b->insns};

    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

char *berth_seccomp_cache_dir(const char *root)
{
    return xasprintf("%s/cache/seccomp", root);
}
