/* Seccomp profiles in Docker's JSON format, and the filters made from them.
 *
 * The default is Docker's own profile (moby's profiles/seccomp/default.json,
 * as Debian ships it in golang-github-docker-docker-dev), turned into the
 * table `berth_seccomp_default` at build time (agent/gen/seccomp-gen.c), so
 * that no JSON is parsed when a container starts. A profile file given by
 * the user is parsed with berth_seccomp_profile_parse() (jansson).
 *
 * A profile becomes a filter for one container as moby's setupSeccomp()
 * and runc make it:
 *   - the architectures: `architectures`, or the `archMap` entry of the
 *     native one with its sub-architectures (x86_64: x86 and x32 too);
 *   - a rule applies unless an `excludes` condition holds: any of its caps
 *     in the container's capability mask, the native arch (Go's name:
 *     "amd64") in its arches, the running kernel >= its minKernel; and only
 *     if every `includes` condition holds: all of its caps in the mask, the
 *     native arch in its arches, the kernel >= its minKernel;
 *   - `args` are ANDed, except that several conditions on one argument
 *     become one rule each (runc's behaviour: libseccomp cannot AND them);
 *   - syscall names this libseccomp does not know are skipped, and so are
 *     rules whose action is the default one.
 *
 *   berth_seccomp_build()    in the parent (libseccomp: ~ a millisecond)
 *   berth_seccomp_install()  in the child, after no_new_privs, just before
 *                            exec: one seccomp(2) call
 */
#ifndef BERTH_SECCOMP_PROFILE_H
#define BERTH_SECCOMP_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct berth_seccomp_arg {
    uint32_t index; /* 0..5 */
    uint32_t op;    /* enum scmp_compare */
    uint64_t value;
    uint64_t value_two;
};

/* Go's names of the architectures, as `includes`/`excludes` write them */
enum {
    BERTH_SECCOMP_GOARCH_AMD64 = 1u << 0,
    BERTH_SECCOMP_GOARCH_X32 = 1u << 1,
    BERTH_SECCOMP_GOARCH_X86 = 1u << 2,
    BERTH_SECCOMP_GOARCH_386 = 1u << 3,
    BERTH_SECCOMP_GOARCH_ARM = 1u << 4,
    BERTH_SECCOMP_GOARCH_ARM64 = 1u << 5,
    BERTH_SECCOMP_GOARCH_PPC64LE = 1u << 6,
    BERTH_SECCOMP_GOARCH_S390X = 1u << 7,
    BERTH_SECCOMP_GOARCH_RISCV64 = 1u << 8,
    BERTH_SECCOMP_GOARCH_OTHER = 1u << 31, /* any other name: never native here */
};

struct berth_seccomp_rule {
    const char *names; /* nnames syscall names, each NUL-terminated, back to back */
    uint32_t nnames;
    uint32_t action; /* libseccomp's action, errno included: SCMP_ACT_ERRNO(38) */
    const struct berth_seccomp_arg *args;
    uint32_t nargs;
    uint64_t caps_all;     /* includes.caps: only when all of these are held */
    uint64_t caps_none;    /* excludes.caps: not when any of these is held */
    uint32_t arches_in;    /* includes.arches (GOARCH bits), 0: any */
    uint32_t arches_out;   /* excludes.arches */
    uint32_t kernel_min;   /* includes.minKernel as major << 16 | minor, 0: none */
    uint32_t kernel_below; /* excludes.minKernel: only on kernels older than this */
};

struct berth_seccomp_profile {
    uint32_t default_action;
    /* `architectures` (explicit: one group, applied as it is) or the
     * archMap: ngroups groups, each "main sub sub" in libseccomp's names
     * ("x86_64 x86 x32"), NUL-terminated, back to back */
    const char *arch_groups;
    uint32_t narch_groups;
    int arches_explicit;
    const struct berth_seccomp_rule *rules;
    uint32_t nrules;
};

/* Docker's default profile, compiled in. */
extern const struct berth_seccomp_profile berth_seccomp_default;

/* Parse a profile in Docker's format (`len` bytes of JSON); `name` (the
 * file) names it in errors: "seccomp profile '/etc/p.json': syscalls[3]:
 * unknown action 'SCMP_ACT_FOO'". Free the result with
 * berth_seccomp_profile_free(). */
BERTH_MUST_CHECK int berth_seccomp_profile_parse(const char *text, size_t len, const char *name,
                                                 struct berth_seccomp_profile **ret,
                                                 berth_error *err);

void berth_seccomp_profile_free(struct berth_seccomp_profile *p);

#define BERTH_SECCOMP_PROFILE_MAX (4u << 20)

/* Read and parse the profile file at `path` (a regular file, at most
 * BERTH_SECCOMP_PROFILE_MAX bytes). */
BERTH_MUST_CHECK int
berth_seccomp_profile_load(const char *path, struct berth_seccomp_profile **ret, berth_error *err);

/* A compiled filter: BPF, ready for seccomp(2). */
struct berth_seccomp_bpf {
    void *insns; /* struct sock_filter[len] */
    unsigned short len;
};

/* Build the filter of `p` for a container holding capability mask `caps`
 * on this kernel and architecture. Release with berth_seccomp_bpf_release().
 *
 * libseccomp takes ~20 ms for Docker's profile on x86_64 (three
 * architectures: x86_64, x86 and x32; ~1.5 ms for x86_64 alone), more than
 * all the rest of a container's start. So filters are cached: the last
 * one in memory, and each in `cache_dir` (NULL: none; created 0700) as
 * "<key>.bpf", where the key is a hash of libseccomp's version, the
 * architectures and exactly the rules that apply. A cached filter is read
 * in ~20 us. */
BERTH_MUST_CHECK int berth_seccomp_build(const struct berth_seccomp_profile *p, uint64_t caps,
                                         const char *cache_dir, struct berth_seccomp_bpf *ret,
                                         berth_error *err);

/* ROOT/cache/seccomp (malloc'ed): the cache directory under a root */
char *berth_seccomp_cache_dir(const char *root);

void berth_seccomp_bpf_release(struct berth_seccomp_bpf *b);

/* Load `b` into the calling thread (no_new_privs must be set). -1 with errno. */
int berth_seccomp_install(const struct berth_seccomp_bpf *b);

#endif
