/* unpack: OCI layer semantics (whiteouts, opaque directories, a file over
 * a directory), format detection, Go-written layers without end blocks,
 * and the caps; archives are written here with libarchive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unpack.h"
#include "util.h"

struct ent {
    const char *name;
    char kind; /* f file, d dir, l symlink */
    const char *data;
};

/* A minimal ustar writer (libarchive's writer drags in libxml2 when
 * linked statically). */
static void put_octal(char *field, size_t len, uint64_t v)
{
    /* len-1 octal digits, most significant first, then NUL */
    field[len - 1] = '\0';
    for (size_t i = len - 1; i-- > 0; v >>= 3)
        field[i] = (char)('0' + (v & 7));
}

static void write_tar(const char *path, const struct ent *e, size_t n)
{
    FILE *f = fopen(path, "w");
    static const char zeros[1024];

    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        char h[512];
        size_t size = e[i].kind == 'f' ? strlen(e[i].data) : 0;
        unsigned sum = 0;
        memset(h, 0, sizeof(h));
        assert_true(strlen(e[i].name) < 100);
        memcpy(h, e[i].name, strlen(e[i].name));
        put_octal(h + 100, 8, e[i].kind == 'd' ? 0755 : 0644);
        put_octal(h + 108, 8, 0);
        put_octal(h + 116, 8, 0);
        put_octal(h + 124, 12, size);
        put_octal(h + 136, 12, 1700000000);
        h[156] = e[i].kind == 'd' ? '5' : e[i].kind == 'l' ? '2' : '0';
        if (e[i].kind == 'l')
            memcpy(h + 157, e[i].data, strlen(e[i].data));
        memcpy(h + 257, "ustar", 6);
        memcpy(h + 263, "00", 2);
        memset(h + 148, ' ', 8);
        for (size_t k = 0; k < sizeof(h); k++)
            sum += (unsigned char)h[k];
        put_octal(h + 148, 7, sum);
        fwrite(h, 1, sizeof(h), f);
        if (size) {
            fwrite(e[i].data, 1, size, f);
            fwrite(zeros, 1, (512 - size % 512) % 512, f);
        }
    }
    fwrite(zeros, 1, sizeof(zeros), f);
    fclose(f);
}

static char *tmpdir(void)
{
    char *d = xstrdup("/tmp/berth-test-unpack.XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static bool exists(const char *dir, const char *rel)
{
    struct stat st;
    _cleanup_free_ char *p = xasprintf("%s/%s", dir, rel);
    return lstat(p, &st) == 0;
}

static void test_layers(void **state)
{
    (void)state;
    _cleanup_free_ char *d = tmpdir();
    _cleanup_free_ char *l1 = xasprintf("%s/l1.tar", d);
    _cleanup_free_ char *l2 = xasprintf("%s/l2.tar", d);
    _cleanup_free_ char *root = xasprintf("%s/root", d);
    const struct ent lower[] = {{"a", 'd', NULL},      {"a/x", 'f', "x"}, {"a/y", 'f', "y"},
                                {"b", 'd', NULL},      {"b/z", 'f', "z"}, {"b/sub", 'd', NULL},
                                {"b/sub/q", 'f', "q"}, {"c", 'd', NULL},  {"c/deep", 'f', "d"},
                                {"e", 'f', "old"}};
    const struct ent upper[] = {
        {"a/.wh.x", 'f', ""},
        {"b/new", 'f', "n"},
        {"b/.wh..wh..opq", 'f', ""}, /* after b/new: order must not matter */
        {"c", 'f', "now a file"},
        {"e", 'f', "new"}};
    struct berth_unpack_stats st = {0};
    berth_error err = BERTH_ERROR_INIT;

    write_tar(l1, lower, ARRAY_SIZE(lower));
    write_tar(l2, upper, ARRAY_SIZE(upper));
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(berth_unpack_layer(l1, root, NULL, &st, &err), 0);
    assert_int_equal(berth_unpack_layer(l2, root, NULL, &st, &err), 0);
    assert_false(exists(root, "a/x"));
    assert_true(exists(root, "a/y"));
    assert_true(exists(root, "b/new"));
    assert_false(exists(root, "b/z"));
    assert_false(exists(root, "b/sub"));
    assert_false(exists(root, "b/.wh..wh..opq"));
    assert_false(exists(root, "a/.wh.x"));
    _cleanup_free_ char *data = NULL;
    _cleanup_free_ char *c = xasprintf("%s/c", root);
    _cleanup_free_ char *e = xasprintf("%s/e", root);
    assert_int_equal(berth_read_file(c, 100, &data, NULL, &err), 0);
    assert_string_equal(data, "now a file");
    free(data);
    data = NULL;
    assert_int_equal(berth_read_file(e, 100, &data, NULL, &err), 0);
    assert_string_equal(data, "new");
    assert_int_equal(st.whiteouts, 2);
    assert_int_equal(berth_rm_rf(d, &err), 0);
}

static void test_detect(void **state)
{
    (void)state;
    _cleanup_free_ char *d = tmpdir();
    _cleanup_free_ char *t = xasprintf("%s/t.tar", d);
    enum berth_image_format f;
    berth_error err = BERTH_ERROR_INIT;
    const struct ent oci[] = {{"oci-layout", 'f', "{}"},
                              {"index.json", 'f', "{}"},
                              {"blobs", 'd', NULL},
                              {"blobs/sha256/0123456789abcdef0123456789abcdef0123456789abcdef"
                               "0123456789abcdef",
                               'f', "x"}};
    const struct ent docker[] = {
        {"manifest.json", 'f', "[]"},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/layer.tar", 'f', ""},
        {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.json", 'f', "{}"},
        {"repositories", 'f', "{}"}};
    const struct ent rootfs[] = {{"./manifest.json", 'f', "[]"}, {"./bin", 'd', NULL}};

    write_tar(t, oci, ARRAY_SIZE(oci));
    assert_int_equal(berth_unpack_detect(t, &f, &err), 0);
    assert_int_equal(f, BERTH_FORMAT_OCI);
    write_tar(t, docker, ARRAY_SIZE(docker));
    assert_int_equal(berth_unpack_detect(t, &f, &err), 0);
    assert_int_equal(f, BERTH_FORMAT_DOCKER);
    write_tar(t, rootfs, ARRAY_SIZE(rootfs));
    assert_int_equal(berth_unpack_detect(t, &f, &err), 0);
    assert_int_equal(f, BERTH_FORMAT_ROOTFS);
    assert_int_equal(berth_image_format_from_name("oci"), BERTH_FORMAT_OCI);
    assert_int_equal(berth_image_format_from_name("zip"), -1);
    assert_string_equal(berth_image_format_name(BERTH_FORMAT_DOCKER), "docker");
    assert_int_equal(berth_rm_rf(d, &err), 0);
}

/* Go's archive/tar without Close(): no padding, no end blocks */
static void test_unterminated_tar(void **state)
{
    (void)state;
    _cleanup_free_ char *d = tmpdir();
    _cleanup_free_ char *t = xasprintf("%s/t.tar", d);
    _cleanup_free_ char *root = xasprintf("%s/root", d);
    const struct ent e[] = {{"f", 'f', "hello"}};
    berth_error err = BERTH_ERROR_INIT;

    write_tar(t, e, 1);
    /* keep the header and the 5 bytes of data, nothing after */
    _cleanup_free_ char *buf = NULL;
    size_t len;
    assert_int_equal(berth_read_file(t, 1 << 20, &buf, &len, &err), 0);
    assert_true(len >= 512 + 5);
    assert_int_equal(truncate(t, 512 + 5), 0);
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(berth_unpack_tar(t, root, NULL, NULL, &err), 0);
    assert_true(exists(root, "f"));
    assert_int_equal(berth_rm_rf(d, &err), 0);
}

static void test_caps(void **state)
{
    (void)state;
    _cleanup_free_ char *d = tmpdir();
    _cleanup_free_ char *t = xasprintf("%s/t.tar", d);
    _cleanup_free_ char *root = xasprintf("%s/root", d);
    const struct ent e[] = {{"a", 'f', "1234"}, {"b", 'f', "5678"}, {"c", 'f', "9"}};
    struct berth_unpack_limits two = {1 << 20, 2, {0, 0}}, bytes = {6, 100, {0, 0}};
    berth_error err = BERTH_ERROR_INIT;

    write_tar(t, e, ARRAY_SIZE(e));
    assert_int_equal(mkdir(root, 0755), 0);
    assert_int_equal(berth_unpack_tar(t, root, &two, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "more than 2 entries"));
    berth_error_clear(&err);
    assert_int_equal(berth_unpack_tar(t, root, &bytes, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "refusing 'b'"));
    assert_int_equal(berth_rm_rf(d, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_unterminated_tar),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
