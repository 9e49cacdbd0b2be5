/* A tiny static program run inside test containers to look at them from
 * the inside and to misbehave on purpose (crun's tests/init.c is the model).
 *
 *   probe hog MB            allocate and touch MB megabytes, print progress
 *   probe forkbomb          fork until refused; print how many succeeded
 *   probe term-exit CODE    on SIGTERM exit CODE; print "ready" when armed
 *   probe ignore-term       ignore SIGTERM; print "ready"; wait forever
 *   probe orphans N         leave N zombies for init (grandchildren whose
 *                           parent exited), then wait until init reaped them
 *                           and print "zombies=<count>"
 *   probe fds               list open fds (as "fds=0,1,2")
 *   probe exit CODE         exit with CODE
 *   probe kill-self SIG     kill itself with SIG
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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
    if (!strcmp(cmd, "kill-self")) {
        signal(arg, SIG_DFL);
        kill(getpid(), arg);
        pause();
    }
    fprintf(stderr, "probe: unknown command '%s'\n", cmd);
    return 64;
}
