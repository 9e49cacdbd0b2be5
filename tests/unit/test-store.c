/* store: the parallel API the reconciler uses, against the fault server
 * (tests/integration/faultserver.py) on 127.0.0.1: several images at once,
 * a failing one does not stop the others, mirrors, duplicates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "util.h"

static void sh(const char *cmd)
{
    assert_int_equal(system(cmd), 0);
}

static void test_ensure_images_parallel(void **state)
{
    (void)state;
    char dir[] = "/tmp/berth-test-store.XXXXXX";
    assert_non_null(mkdtemp(dir));
    _cleanup_free_ char *prep = xasprintf(
        "set -e; cd %s; mkdir -p src/bin www root; echo hi > src/bin/hello; "
        "tar -C src -czf www/a.tar.gz .; echo other > src/bin/other; tar -C src -cf www/b.tar .",
        dir);
    sh(prep);
    const char *srcdir = getenv("BERTH_SOURCE_DIR");
    assert_non_null(srcdir);
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        _cleanup_free_ char *server = xasprintf("%s/tests/integration/faultserver.py", srcdir);
        _cleanup_free_ char *www = xasprintf("%s/www", dir);
        execl("/usr/bin/python3", "python3", server, www, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char line[32] = "";
    FILE *f = fdopen(out[0], "r");
    assert_non_null(fgets(line, sizeof(line), f));
    int port = atoi(line);
    assert_true(port > 0);

    char a[65], b[65];
    berth_error err = BERTH_ERROR_INIT;
    _cleanup_free_ char *apath = xasprintf("%s/www/a.tar.gz", dir);
    _cleanup_free_ char *bpath = xasprintf("%s/www/b.tar", dir);
    assert_int_equal(berth_sha256_file(apath, a, &err), 0);
    assert_int_equal(berth_sha256_file(bpath, b, &err), 0);
    _cleanup_free_ char *ua = xasprintf("http://127.0.0.1:%d/a.tar.gz", port);
    _cleanup_free_ char *ub = xasprintf("http://127.0.0.1:%d/b.tar", port);
    _cleanup_free_ char *missing = xasprintf("http://127.0.0.1:%d/missing", port);
    _cleanup_free_ char *da = xasprintf("sha256:%s", a);
    _cleanup_free_ char *db = xasprintf("sha256:%s", b);
    const char *urls_a[] = {ua}, *urls_b[] = {missing, ub};
    struct berth_image_ref refs[] = {
        {.urls = urls_a, .nurls = 1, .digest = da},
        {.urls = urls_b, .nurls = 2, .digest = db, .format = BERTH_FORMAT_ROOTFS},
        {.urls = urls_a, .nurls = 1, .digest = db}, /* wrong digest for that URL */
        {.urls = urls_a, .nurls = 1, .digest = da}, /* the same image twice */
    };
    struct berth_image rets[4];
    berth_error errs[4];
    struct berth_fetch_options opt;
    berth_fetch_options_init(&opt);
    opt.retry_delay_ms = 10;
    _cleanup_free_ char *root = xasprintf("%s/root", dir);

    assert_int_equal(berth_store_ensure_images(root, refs, 4, &opt, rets, errs), 1);
    assert_string_equal(rets[0].digest, a);
    assert_string_equal(rets[1].digest, b);
    assert_string_equal(rets[3].digest, a);
    assert_string_equal(rets[0].rootfs, rets[3].rootfs);
    assert_non_null(strstr(errs[2].msg, "digest mismatch"));
    assert_int_equal(rets[0].format, BERTH_FORMAT_ROOTFS);
    assert_non_null(rets[0].config.entrypoint);
    assert_null(rets[0].config.entrypoint[0]);
    _cleanup_free_ char *hello = xasprintf("%s/bin/other", rets[1].rootfs);
    struct stat st;
    assert_int_equal(stat(hello, &st), 0);
    for (int i = 0; i < 4; i++)
        if (i != 2)
            berth_image_release(&rets[i]);

    /* the single form finds it in the store, without the network */
    struct berth_image img;
    const char *nowhere[] = {"http://127.0.0.1:1/x"};
    struct berth_image_ref again = {.urls = nowhere, .nurls = 1, .digest = db};
    assert_int_equal(berth_store_ensure_image(root, &again, &opt, &img, &err), 0);
    berth_image_release(&img);

    close(in[1]); /* the server exits when stdin closes */
    fclose(f);
    waitpid(pid, NULL, 0);
    assert_int_equal(berth_rm_rf(dir, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ensure_images_parallel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
