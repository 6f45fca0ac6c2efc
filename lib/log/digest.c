/* SHA-256 and HMAC-SHA-256 with the digest fetched once. OpenSSL 3's
 * one-shot SHA256() and HMAC(), like EVP_sha256() handed to an init, look
 * the algorithm up by name on every call, under a process-wide lock: in
 * pl_verify() and pl_seal() (perf, 200,000 records) that lookup cost more
 * than the hashing (rwlock, strcmp and EVP_MD_up_ref/free on top): four
 * HMACs per record. The
 * fetched digest lives until the process ends. */
#include "digest.h"

#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

static EVP_MD *fetched;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch(void)
{
    fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static const EVP_MD *sha256(void)
{
    pthread_once(&fetch_once, fetch);
    return fetched ? fetched : EVP_sha256(); /* fetching failed: the slow way */
}

/* out = SHA-256 of the parts, in order. */
static int digest(unsigned char out[32], const void *a, size_t alen, const void *b, size_t blen)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned int n = 32;
    int ok = c && EVP_DigestInit_ex(c, sha256(), NULL) && EVP_DigestUpdate(c, a, alen) &&
             (!blen || EVP_DigestUpdate(c, b, blen)) && EVP_DigestFinal_ex(c, out, &n);
    EVP_MD_CTX_free(c);
    if (!ok)
        memset(out, 0, 32);
    return ok ? 0 : -1;
}

int pl_sha256_parts(unsigned char out[32], const void *a, size_t alen, const void *b, size_t blen)
{
    return digest(out, a, alen, b, blen);
}

int pl_sha256(unsigned char out[32], const void *data, size_t len)
{
    return digest(out, data, len, NULL, 0);
}

int pl_hmac_sha256(unsigned char out[32], const void *key, size_t key_len, const void *msg,
                   size_t len)
{
    enum { BLOCK = 64 };
    unsigned char k[BLOCK] = {0}, pad[BLOCK], inner[32];
    if (key_len > BLOCK) {
        if (pl_sha256(k, key, key_len) < 0)
            return -1;
    } else if (key_len) {
        memcpy(k, key, key_len);
    }
    for (int i = 0; i < BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    int rc = digest(inner, pad, BLOCK, msg, len);
    for (int i = 0; i < BLOCK && rc == 0; i++)
        pad[i] = k[i] ^ 0x5c;
    if (rc == 0)
        rc = digest(out, pad, BLOCK, inner, sizeof inner);
    else
        memset(out, 0, 32);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    return rc;
}
