/* verify: streaming digests and minisign, against vectors made with the
 * real minisign 0.11 (`minisign -G -W`, `minisign -S` and `-S -l`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util.h"
#include "verify.h"

static const char pubkey[] = "untrusted comment: minisign public key 43628E3D9BC26300\n"
                             "RWQAY8KbPY5iQ5nKzetfpVhO1RO8ehIr81DO2j20co7ymEegwfFOwWJh\n";
static const char msg[] = "berth test vector\n";
static const char sig_prehashed[] =
    "untrusted comment: signature from minisign secret key\n"
    "RUQAY8KbPY5iQ7231Pv6diHqx2SZAGBedXGYcdsfV6sV7GUIXsw93KD4uICfzVtkdI24orjoNgud+sf0ksCmwMx8VCoI"
    "QL6OngE=\n"
    "trusted comment: trusted vector\n"
    "mAMAjstcpThMhKyMRdlL9PBQL0C7xKvR/oFFcJfKUbxBP/IC4RIVdiRgeixBAwqy7jjutdjF6vI5+542PSrfBA==\n";
static const char sig_legacy[] =
    "untrusted comment: signature from minisign secret key\n"
    "RWQAY8KbPY5iQ/A2/sYY4hZNTd68M6+N7M/MmwA1R0vU3Vm1rCpCK7wGlJPEB1Qe2tj+7Af+kRJ4Q7LQITJ99V28fIto"
    "0McAqQk=\n"
    "trusted comment: trusted vector\n"
    "OIg3aI/ld2sxWKP0670XIk/VKaAhMOWP4G/4VjQ13gjOkXDnv3hZRPx/HL+A0VHsvfXumfXF72miOhz7kKC3Aw==\n";

static int verify(const char *key_text, const char *sig_text, const char *data)
{
    struct berth_minisign_key key;
    struct berth_minisign_sig sig;
    berth_error err = BERTH_ERROR_INIT;
    int r;

    if (berth_minisign_key_parse(key_text, &key, &err) < 0 ||
        berth_minisign_sig_parse(sig_text, strlen(sig_text), &sig, &err) < 0)
        return -2;
    r = berth_minisign_verify(&key, &sig, data, strlen(data), &err);
    berth_minisign_sig_release(&sig);
    return r;
}

static void test_minisign_good(void **state)
{
    (void)state;
    assert_int_equal(verify(pubkey, sig_prehashed, msg), 0);
    assert_int_equal(verify(pubkey, sig_legacy, msg), 0);
    /* the bare key line works as well as the .pub file */
    assert_int_equal(verify(strchr(pubkey, '\n') + 1, sig_prehashed, msg), 0);
}

static void test_minisign_tampered(void **state)
{
    (void)state;
    assert_int_equal(verify(pubkey, sig_prehashed, "berth test vector!\n"), -1);
    assert_int_equal(verify(pubkey, sig_legacy, "Berth test vector\n"), -1);
    char *t = xstrdup(sig_prehashed);
    char *c = strstr(t, "trusted vector");
    c[0] = 'T';
    assert_int_equal(verify(pubkey, t, msg), -1);
    free(t);
    /* another key number */
    char *k = xstrdup(pubkey);
    char *line = strchr(k, '\n') + 1;
    line[4] = line[4] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(k, sig_prehashed, msg), -1);
    free(k);
}

static void test_minisign_garbage(void **state)
{
    (void)state;
    struct berth_minisign_key key;
    struct berth_minisign_sig sig;
    berth_error err = BERTH_ERROR_INIT;
    assert_int_equal(berth_minisign_key_parse("RWnotakey", &key, &err), -1);
    assert_non_null(strstr(err.msg, "public key"));
    assert_int_equal(berth_minisign_sig_parse("x\ny\n", 4, &sig, &err), -1);
    assert_int_equal(berth_minisign_sig_parse("", 0, &sig, &err), -1);
}

static void test_digest_streaming(void **state)
{
    (void)state;
    struct berth_digest d;
    berth_error err = BERTH_ERROR_INIT;
    char hex[65], hex2[65];
    unsigned char b2[64];

    assert_int_equal(berth_digest_init(&d, true, &err), 0);
    berth_digest_update(&d, "ab", 2);
    berth_digest_update(&d, "c", 1);
    assert_int_equal(d.size, 3);
    berth_digest_final(&d, hex, b2);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(b2[0], 0xba); /* BLAKE2b-512("abc") = ba80a53f... */
    assert_int_equal(b2[1], 0x80);
    berth_digest_reset(&d);
    berth_digest_update(&d, "abc", 3);
    berth_digest_final(&d, hex2, NULL);
    assert_string_equal(hex, hex2);
    berth_digest_release(&d);
}

static void test_digest_parse(void **state)
{
    (void)state;
    char hex[65];
    berth_error err = BERTH_ERROR_INIT;
    const char *ok = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_int_equal(berth_digest_parse(ok, hex, &err), 0);
    assert_string_equal(hex, ok + 7);
    assert_int_equal(berth_digest_parse("sha512:abc", hex, &err), -1);
    assert_int_equal(berth_digest_parse("sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB"
                                        "410FF61F20015AD",
                                        hex, &err),
                     -1);
    assert_int_equal(berth_digest_parse("sha256:abc", hex, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minisign_good),    cmocka_unit_test(test_minisign_tampered),
        cmocka_unit_test(test_minisign_garbage), cmocka_unit_test(test_digest_streaming),
        cmocka_unit_test(test_digest_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
