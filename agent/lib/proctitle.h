/* Process names that say what a process is: `ps` and `pgrep berth` find a
 * keeper as "berth-keeper NAME --root ROOT" and a container's pid 1 as
 * "berth-init", not as berth's command line (whose exe link reads "/",
 * selfexe.h) nor as the keeper's (which pid 1, a fork of it, would show
 * inside the container, the root's path with it).
 *
 * The name is written where the kernel shows /proc/PID/cmdline from (the
 * memory of main's argv, which it cannot grow) and, its first word cut to
 * 15 bytes, as comm (PR_SET_NAME). */
#ifndef BERTH_PROCTITLE_H
#define BERTH_PROCTITLE_H

/* Remember main's argv: the memory the title is written to. */
void berth_proctitle_init(int argc, char **argv);

/* Make the command line `args` (NULL-terminated), cut to what fits in
 * main's argv; comm becomes args[0]. Needs CAP_SYS_RESOURCE for a command
 * line shorter than main's without empty trailing words
 * (PR_SET_MM_ARG_END); without it they stay. Main's argv strings are gone
 * afterwards: whatever still points at them must have been copied. */
void berth_proctitle_set(const char *const *args);

#endif
