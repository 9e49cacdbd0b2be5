/* Capabilities: podman's default set, names, and applying a set to the
 * calling process (libcap). Sets are 64-bit masks, bit N = capability N. */
#ifndef BERTH_CAPS_H
#define BERTH_CAPS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* podman's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL NET_BIND_SERVICE
 * SETFCAP SETGID SETPCAP SETUID SYS_CHROOT. That is Docker's without NET_RAW,
 * MKNOD and AUDIT_WRITE: berth's default network is the host's, where
 * NET_RAW would let a container sniff and spoof all of its traffic. */
uint64_t berth_caps_default(void);

/* "NET_ADMIN", "net_admin", "CAP_NET_ADMIN" → the mask of that one
 * capability; "ALL" → every bit set. So adding a name is `caps |= mask`,
 * dropping it `caps &= ~mask`. Fails (EINVAL) on an unknown name. */
BERTH_MUST_CHECK int berth_caps_from_name(const char *name, uint64_t *ret_mask, berth_error *err);

/* The default set (berth_caps_default) with `add` added, then `drop`
 * dropped, as the spec's capabilities: {add, drop} say. The names are the
 * spec's, checked when it was parsed: an unknown one is skipped. */
uint64_t berth_caps_resolve(char *const *add, size_t nadd, char *const *drop, size_t ndrop);

/* Two steps around the uid change, in runc's order:
 *   berth_caps_drop_bounding(mask)   while still root with every capability
 *   PR_SET_KEEPCAPS, setgroups, setresgid, setresuid
 *   berth_caps_set(mask)             permitted = effective = mask; inheritable
 *                                    and ambient cleared (as Docker does) */
BERTH_MUST_CHECK int berth_caps_drop_bounding(uint64_t mask, berth_error *err);
BERTH_MUST_CHECK int berth_caps_set(uint64_t mask, berth_error *err);

#endif
