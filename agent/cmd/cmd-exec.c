/* berth exec: run a command inside a running service's container. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "cmd.h"
#include "container.h"
#include "exec.h"
#include "keeper.h"
#include "seccomp-profile.h"
#include "status.h"
#include "user.h"
#include "util.h"

static const char usage_text[] =
    "Usage: berth exec [OPTIONS] NAME [--] CMD [ARGS...]\n"
    "\n"
    "Run CMD inside the running service NAME: in its container's pid, mount,\n"
    "uts, ipc and network namespaces and its cgroup, as the service's user, with\n"
    "its environment, working directory, capabilities and open file limit. CMD is\n"
    "looked up in the container's PATH. Signals sent to berth exec are passed on\n"
    "to CMD; if berth exec is killed, CMD is killed too.\n"
    "\n"
    "Options:\n"
    "  -u, --user USER[:GROUP]  run as this user instead of the service's (uid[:gid]\n"
    "                           or names from the image's /etc/passwd; sets HOME)\n"
    "  -e, --env KEY=VALUE      add or override an environment variable (KEY alone:\n"
    "                           copy its value from here)\n"
    "  -w, --workdir DIR        working directory inside the container\n"
    "  -i, --interactive        keep standard input attached (default: /dev/null)\n"
    "  -t, --tty                when standard input is a terminal, run CMD on a new\n"
    "                           pseudo-terminal of the container (raw mode here with\n"
    "                           -i; window size changes follow); otherwise ignored\n"
    "      --timeout DUR        kill CMD and its process group after DUR (like 5s or\n"
    "                           500ms) and exit with 124, as timeout(1) does; CMD\n"
    "                           then runs in a process group of its own\n"
    "      --root DIR           state directory (default " BERTH_DEFAULT_ROOT ")\n"
    "  -h, --help               this help\n"
    "\n"
    "Exit status: CMD's own (128+N when it died of signal N); 127 when CMD is not\n"
    "found in the container, 126 when it cannot be executed, 124 when --timeout\n"
    "expired; 1 when NAME is not a service or is not running, or another error\n"
    "kept CMD from starting (the reason is printed on one line); 2 for a usage\n"
    "error.\n"
    "\n"
    "Examples:\n"
    "  berth exec web -- ps\n"
    "  berth exec -it -u root web -- sh\n"
    "  echo 'SELECT 1' | berth exec -i db -- psql\n";

struct exec_opts {
    const char *user;
    const char **env;
    size_t nenv;
    const char *workdir;
    bool interactive;
    bool tty;
    uint64_t timeout_ms; /* 0: none */
};

enum { OPT_TIMEOUT = 0x100 };

#define BAD(...) return berth_usage_error("exec", __VA_ARGS__)

static int parse_args(int argc, char **argv, struct berth_globals *g, struct exec_opts *o)
{
    static const struct option longopts[] = {
        BERTH_GLOBAL_LONGOPTS,
        {"help", no_argument, NULL, 'h'},
        {"user", required_argument, NULL, 'u'},
        {"env", required_argument, NULL, 'e'},
        {"workdir", required_argument, NULL, 'w'},
        {"interactive", no_argument, NULL, 'i'},
        {"tty", no_argument, NULL, 't'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0},
    };
    int c;

    opterr = 0;
    /* '+': options end at NAME; what follows is the command */
    while ((c = getopt_long(argc, argv, "+:hu:e:w:itqv", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage_text, stdout);
            return -1;
        case 'u':
            o->user = optarg;
            break;
        case 'e':
            if (!*optarg || *optarg == '=')
                BAD("invalid environment variable '%s': expected KEY=VALUE", optarg);
            o->env = xrealloc(o->env, (o->nenv + 1) * sizeof(char *));
            o->env[o->nenv++] = optarg;
            break;
        case 'w':
            if (*optarg != '/')
                BAD("invalid --workdir '%s': must be an absolute path", optarg);
            o->workdir = optarg;
            break;
        case 'i':
            o->interactive = true;
            break;
        case 't':
            o->tty = true;
            break;
        case OPT_TIMEOUT:
            if (berth_parse_duration(optarg, &o->timeout_ms) < 0 || !o->timeout_ms ||
                o->timeout_ms > INT32_MAX)
                BAD("invalid --timeout '%s': expected a duration like 5s or 500ms", optarg);
            break;
        case ':':
            BAD("option '%s' needs a value", argv[optind - 1]);
        default:
            if (!berth_global_option(c, optarg, g))
                BAD("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        BAD("no service name given");
    return 0;
}

/* The service's environment, then HOME for another user, TERM for a
 * terminal, then -e. */
static char **build_env(char **base, const struct exec_opts *o, const char *home, bool tty)
{
    char **env = NULL;
    size_t n = 0;

    for (char **p = base; p && *p; p++)
        if (strchr(*p, '='))
            berth_env_set(&env, &n, *p);
    if (o->user) {
        _cleanup_free_ char *h = xasprintf("HOME=%s", home);
        berth_env_set(&env, &n, h);
    }
    if (tty) {
        bool has = false;
        for (size_t i = 0; i < n; i++)
            has |= !strncmp(env[i], "TERM=", 5);
        if (!has) {
            _cleanup_free_ char *t =
                xasprintf("TERM=%s", getenv("TERM") ? getenv("TERM") : "xterm");
            berth_env_set(&env, &n, t);
        }
    }
    for (size_t i = 0; i < o->nenv; i++)
        berth_env_set_arg(&env, &n, o->env[i]);
    /* never NULL: it becomes the command's environ */
    return env ? env : xcalloc(1, sizeof(char *));
}

static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;

    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The running service's init: its pid and a pidfd, or a message. */
static int open_init(const char *root, const char *name, pid_t *ret_pid, int *ret_pidfd)
{
    berth_error err = BERTH_ERROR_INIT;
    struct berth_status st;
    bool running;
    int fd = -1;

    if (berth_status_read(root, name, &st, &err) < 0) {
        berth_die_msg("exec", "service '%s' is not running (it has not started yet)", name);
        return -1;
    }
    running = st.state && !strcmp(st.state, "running") && st.pid > 0;
    if (running)
        fd = (int)syscall(SYS_pidfd_open, st.pid, 0);
    if (fd >= 0) {
        /* the pid is still a container's init, not a reused host pid */
        _cleanup_free_ char *ns = xasprintf("/proc/%d/ns/pid", (int)st.pid);
        if (same_file(ns, "/proc/self/ns/pid")) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        berth_die_msg("exec", "service '%s' is not running (state: %s)", name,
                      running    ? "exited"
                      : st.state ? st.state
                                 : "unknown");
        berth_status_release(&st);
        return -1;
    }
    *ret_pid = st.pid;
    *ret_pidfd = fd;
    berth_status_release(&st);
    return 0;
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the reader is gone; keep draining */
        buf += n;
        len -= (size_t)n;
    }
}

/* Copy what `from` has now to `to`; false at EOF or error (for a pty
 * master: EIO once no slave is open). */
static bool relay(int from, int to)
{
    char buf[16384];
    ssize_t n = read(from, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (n <= 0)
        return false;
    write_all(to, buf, (size_t)n);
    return true;
}

static void copy_winsize(int master)
{
    struct winsize ws;

    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
        ioctl(master, TIOCSWINSZ, &ws);
}

struct waiter {
    int pidfd;  /* the command */
    int sfd;    /* signalfd of the forwarded signals */
    int master; /* pty master, or -1 */
    bool stdin_open;
    uint64_t deadline; /* monotonic ms, 0: none */
};

static void on_signals(struct waiter *w)
{
    struct signalfd_siginfo si;

    while (read(w->sfd, &si, sizeof(si)) == sizeof(si)) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGWINCH && w->master >= 0) {
            copy_winsize(w->master);
            continue;
        }
        /* CMD has a session of its own: our terminal's signals are ours to pass on */
        syscall(SYS_pidfd_send_signal, w->pidfd, sig, NULL, 0);
    }
}

/* Relay and forward until the command exits or the deadline passes; its
 * exit code. */
static int wait_command(struct waiter *w, const char *name)
{
    berth_error err = BERTH_ERROR_INIT;
    int code, timeout = -1, r;

    for (;;) {
        if (w->deadline) {
            uint64_t now = berth_now_ms();
            if (now >= w->deadline)
                break;
            timeout = (int)(w->deadline - now);
        }
        struct pollfd p[4] = {{w->pidfd, POLLIN, 0},
                              {w->sfd, POLLIN, 0},
                              {w->master, POLLIN, 0},
                              {w->stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
        if (poll(p, 4, timeout) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            on_signals(w);
        if (p[2].revents && !relay(w->master, STDOUT_FILENO))
            w->master = -1;
        if (p[3].revents && !relay(STDIN_FILENO, w->master))
            w->stdin_open = false;
        if (p[0].revents)
            break;
    }
    if (w->master >= 0) {
        /* what CMD wrote before it exited; not what its orphans may
         * still write */
        fcntl(w->master, F_SETFL, fcntl(w->master, F_GETFL) | O_NONBLOCK);
        char buf[16384];
        ssize_t n;
        while ((n = read(w->master, buf, sizeof(buf))) > 0)
            write_all(STDOUT_FILENO, buf, (size_t)n);
    }
    /* past the deadline this kills CMD and its process group */
    r = berth_exec_wait(w->pidfd, w->deadline ? 0 : -1, &code, &err);
    if (r < 0) {
        berth_print_error("exec", &err);
        return EXIT_FAIL;
    }
    if (r == 1) {
        berth_die_msg("exec", "the command in '%s' did not finish in time; killed", name);
        return 124;
    }
    return code;
}

static int spawn_fail(const berth_error *err, int r)
{
    berth_print_error("exec", err);
    if (r == BERTH_EXEC_ENOEXEC)
        return err->code == ENOENT ? 127 : 126;
    return EXIT_FAIL;
}

int cmd_exec(int argc, char **argv, struct berth_globals *g)
{
    struct exec_opts o = {0};
    berth_error err = BERTH_ERROR_INIT;
    struct berth_keeper_config kc = {0};
    const struct berth_seccomp_profile *seccomp = NULL;
    struct berth_seccomp_profile *seccomp_owned = NULL;
    _cleanup_free_ char *seccomp_cache = berth_seccomp_cache_dir(g->root);
    struct berth_user user = {0};
    _cleanup_free_ char *dir = NULL, *cfgpath = NULL;
    _cleanup_close_ int initfd = -1, cmdfd = -1, sfd = -1, master = -1, slave = -1;
    struct termios saved;
    bool raw = false, have_kc = false;
    char **env = NULL;
    sigset_t block, old;
    pid_t init_pid = 0, pid = 0;
    int r, rc = EXIT_FAIL;

    r = parse_args(argc, argv, g, &o);
    if (r != 0) {
        free(o.env);
        return r < 0 ? EXIT_OK : EXIT_USAGE;
    }
    const char *name = argv[optind++];
    if (optind < argc && !strcmp(argv[optind], "--"))
        optind++;
    if (optind >= argc) {
        free(o.env);
        return berth_usage_error("exec", "no command given");
    }
    if (!*name || strchr(name, '/') || name[0] == '.') {
        free(o.env);
        return berth_usage_error("exec", "invalid service name '%s'", name);
    }
    dir = berth_service_dir(g->root, name);
    cfgpath = xasprintf("%s/container.json", dir);
    if (access(dir, F_OK) < 0) {
        berth_die_msg("exec", "no service '%s' under '%s'", name, g->root);
        goto out;
    }
    if (open_init(g->root, name, &init_pid, &initfd) < 0)
        goto out;
    if (berth_keeper_config_read(cfgpath, &kc, &err) < 0)
        goto fail;
    have_kc = true;
    /* the service's own filter, as its init and service have */
    if (berth_keeper_config_seccomp(&kc, &seccomp, &seccomp_owned, &err) < 0)
        goto fail;
    if (berth_user_resolve(kc.image_rootfs, o.user ? o.user : kc.user, &user, &err) < 0)
        goto fail;

    o.tty = o.tty && isatty(STDIN_FILENO);
    if (o.tty) {
        if (berth_exec_open_pty(init_pid, &master, &slave, &err) < 0)
            goto fail;
        copy_winsize(master);
        /* the terminal belongs to whoever uses it, as login does */
        if (fchown(slave, user.uid, (gid_t)-1) < 0) {
            /* it stays root's: CMD has it open regardless */
        }
    }
    env = build_env(kc.env, &o, user.home, o.tty);

    /* a closed stdout must not kill us while CMD runs (CMD gets the
     * default disposition back) */
    signal(SIGPIPE, SIG_IGN);
    /* block before CMD exists so that no signal is lost */
    sigemptyset(&block);
    for (size_t i = 0; i < berth_n_forwarded_signals; i++)
        sigaddset(&block, berth_forwarded_signals[i]);
    sigprocmask(SIG_BLOCK, &block, &old);
    sfd = signalfd(-1, &block, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        berth_error_set(&err, errno, "creating a signalfd");
        goto fail_mask;
    }

    struct berth_exec_config cfg = {
        .init_pid = init_pid,
        .init_pidfd = initfd,
        .name = name,
        .argv = argv + optind,
        .env = env,
        .workdir = o.workdir ? o.workdir : kc.workdir,
        .uid = user.uid,
        .gid = user.gid,
        .groups = user.groups,
        .ngroups = user.ngroups,
        .caps = kc.caps,
        .seccomp = seccomp,
        .seccomp_cache = seccomp_cache,
        .nofile = kc.limits.nofile,
        .redirect_stdio = o.tty || !o.interactive,
        .stdio = {o.tty ? slave : -1, o.tty ? slave : STDOUT_FILENO, o.tty ? slave : STDERR_FILENO},
        .tty = o.tty,
    };
    r = berth_exec_spawn(&cfg, &pid, &cmdfd, &err);
    if (r < 0) {
        rc = spawn_fail(&err, r);
        goto out_mask;
    }
    if (slave >= 0) {
        close(slave);
        slave = -1;
    }
    if (o.tty && o.interactive && tcgetattr(STDIN_FILENO, &saved) == 0) {
        struct termios t = saved;
        cfmakeraw(&t);
        raw = tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) == 0;
    }
    struct waiter w = {cmdfd, sfd, master, o.tty && o.interactive,
                       o.timeout_ms ? berth_now_ms() + o.timeout_ms : 0};
    rc = wait_command(&w, name);
    if (raw)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    goto out_mask;

fail_mask:
    berth_print_error("exec", &err);
out_mask:
    sigprocmask(SIG_SETMASK, &old, NULL);
    goto out;
fail:
    berth_print_error("exec", &err);
out:
    berth_strv_free(env);
    berth_user_release(&user);
    if (have_kc)
        berth_keeper_config_release(&kc);
    berth_seccomp_profile_free(seccomp_owned);
    free(o.env);
    return rc;
}
