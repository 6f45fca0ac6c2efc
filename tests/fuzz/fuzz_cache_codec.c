/* The decoder of cached answers read from Redis (lib/cache/cache_codec.c,
 * pl_result_decode): raw bytes decode or are refused, never crash; raw
 * bytes taken as an entry never pass its MAC; and for every answer the
 * decoder accepts, the entry sealed for it verifies and decodes to the
 * same answer, while the same entry with one byte changed, or cut short,
 * or asked for under another entity, is rejected. */
#include "fuzz.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <provledger.h>

#include "cache_codec.h"
#include "result.h"

static EVP_MAC_CTX *base;

static EVP_MAC_CTX *keyed(void)
{
    if (!base) {
        unsigned char key[32];
        for (int i = 0; i < 32; i++)
            key[i] = (unsigned char)(31 * i + 7);
        EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        base = mac ? EVP_MAC_CTX_new(mac) : NULL;
        EVP_MAC_free(mac);
        char digest[] = "SHA256";
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                               OSSL_PARAM_construct_end()};
        if (!base || EVP_MAC_init(base, key, sizeof key, params) != 1)
            abort();
    }
    return EVP_MAC_CTX_dup(base);
}

static int verify(const char *entity, const pl_buf *field, const char *val, size_t len)
{
    EVP_MAC_CTX *m = keyed();
    pl_time filled;
    int rc = pl_cc_entry_verify(m, "ledger", 7, entity, field, val, len, &filled);
    EVP_MAC_CTX_free(m);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_buf field;
    memset(&field, 0, sizeof field);
    pl_buf_put(&field, "f", 1);
    /* Bytes nobody sealed are never an entry. */
    FZ_ASSERT(verify("e", &field, (const char *)data, size) < 0);

    pl_time until;
    pl_result *r = pl_result_decode((const char *)data, size, &until);
    if (r) {
        pl_buf enc, val;
        memset(&enc, 0, sizeof enc);
        memset(&val, 0, sizeof val);
        FZ_ASSERT(pl_result_encode(&enc, r, until) == 0 && !enc.failed);
        EVP_MAC_CTX *m = keyed();
        FZ_ASSERT(pl_cc_entry_seal(&val, m, "ledger", 7, "e", &field, r, until, 1000) == 0);
        EVP_MAC_CTX_free(m);
        FZ_ASSERT(verify("e", &field, val.data, val.len) == 0);
        /* The authentic entry decodes to the same answer. */
        pl_time until2;
        pl_result *r2 = pl_result_decode(val.data + ENTRY_HEADER, val.len - ENTRY_HEADER, &until2);
        FZ_ASSERT(r2 && until2 == until && pl_result_count(r2) == pl_result_count(r));
        pl_buf enc2;
        memset(&enc2, 0, sizeof enc2);
        FZ_ASSERT(pl_result_encode(&enc2, r2, until2) == 0);
        FZ_ASSERT(enc2.len == enc.len && memcmp(enc2.data, enc.data, enc.len) == 0);
        pl_buf_free(&enc2);
        pl_result_free(r2);
        /* Changed, cut short, or for another entity: rejected. */
        size_t at = size ? (size_t)data[0] * 257u % val.len : 0;
        unsigned char flip = size > 1 && data[1] ? data[1] : 1;
        val.data[at] = (char)(val.data[at] ^ flip);
        FZ_ASSERT(verify("e", &field, val.data, val.len) < 0);
        val.data[at] = (char)(val.data[at] ^ flip);
        FZ_ASSERT(verify("e", &field, val.data, val.len - 1) < 0);
        FZ_ASSERT(verify("e2", &field, val.data, val.len) < 0);
        pl_buf_free(&enc);
        pl_buf_free(&val);
        pl_result_free(r);
    }
    pl_buf_free(&field);
    return 0;
}
