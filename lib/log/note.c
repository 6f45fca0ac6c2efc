/* Ed25519 keys (OpenSSL 3), C2SP signed notes and tlog checkpoints.
 *
 * A signed note is its text (lines ending in '\n'), a blank line, and
 * signature lines "\u2014 <key name> <base64(key id || signature)>"; the
 * signature is Ed25519 over the text. The key id is the first four bytes,
 * big-endian, of SHA-256(name || '\n' || 0x01 || public key), 0x01 being
 * the Ed25519 algorithm byte. A checkpoint is a note whose text is
 * "<origin>\n<tree size>\n<base64 root hash>\n" and optional extension
 * lines; its key name is its origin. */
#include "note.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "digest.h"
#include "error.h"

#define MAX_NOTE (1024 * 1024)
static const char em_dash[] = "\xe2\x80\x94 ";

struct pl_key {
    EVP_PKEY *pkey;
    int has_private;
    unsigned char pub[32];
};

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */
/* ------------------------------------------------------------------------ */

static int key_from(pl_key **out, EVP_PKEY *pkey, int has_private, const char *what)
{
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        return pl_fail(PL_EINVAL, "%s: not an Ed25519 key", what);
    }
    pl_key *k = calloc(1, sizeof *k);
    size_t n = 32;
    if (!k || EVP_PKEY_get_raw_public_key(pkey, k->pub, &n) != 1 || n != 32) {
        free(k);
        EVP_PKEY_free(pkey);
        ERR_clear_error();
        return pl_fail(PL_ENOMEM, "%s: cannot read the public key", what);
    }
    k->pkey = pkey;
    k->has_private = has_private;
    *out = k;
    return PL_OK;
}

static int parse_pem(pl_key **out, const char *pem, size_t len, const char *what)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!pem || len == 0 || len > 65536)
        return pl_fail(PL_EINVAL, "%s: empty or too large for a PEM key", what);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return pl_fail(PL_ENOMEM, "out of memory");
    int priv = memmem(pem, len, "PRIVATE KEY-----", 16) != NULL; /* pem need not end in a NUL */
    EVP_PKEY *pkey = priv ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ERR_clear_error();
    if (!pkey)
        return pl_fail(PL_EINVAL, "%s: not a PEM %s key", what, priv ? "private" : "public");
    return key_from(out, pkey, priv, what);
}

int pl_key_parse(pl_key **out, const char *pem, size_t len)
{
    return parse_pem(out, pem, len, "pem");
}

int pl_key_load(pl_key **out, const char *pem_path)
{
    if (out)
        *out = NULL;
    if (!out || !pem_path)
        return pl_fail(PL_EINVAL, "%s: NULL", out ? "pem_path" : "out");
    FILE *f = fopen(pem_path, "rb");
    if (!f)
        return pl_fail(PL_EINVAL, "%s: cannot read it", pem_path);
    char buf[65537];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    int rc = parse_pem(out, buf, n, pem_path);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int pl_key_has_private(const pl_key *k)
{
    return k && k->has_private;
}

void pl_key_free(pl_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey); /* OpenSSL wipes the private part */
    free(k);
}

const unsigned char *pl_key_public_raw(const pl_key *k)
{
    return k->pub;
}

/* The key ID of C2SP signed-note: the first four bytes of
 * SHA-256(name || "\n" || 0x01 || public key). Returns -1 when OpenSSL
 * fails (out of memory): a zero ID would sign, or look for, the wrong key. */
static int key_id(uint32_t *id, const char *name, const unsigned char pub[32])
{
    unsigned char tail[34], h[32];
    tail[0] = '\n';
    tail[1] = 0x01;
    memcpy(tail + 2, pub, 32);
    if (pl_sha256_parts(h, name, strlen(name), tail, sizeof tail) < 0)
        return -1;
    *id = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    return 0;
}

static int check_name(const char *name)
{
    if (!name || !*name)
        return pl_fail(PL_EINVAL, "name: empty");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '+')
            return pl_fail(PL_EINVAL, "name: printable ASCII without spaces or '+'");
    return PL_OK;
}

static char *b64(const unsigned char *p, size_t n)
{
    char *s = malloc(4 * ((n + 2) / 3) + 1);
    if (s)
        EVP_EncodeBlock((unsigned char *)s, p, (int)n);
    return s;
}

/* Strict standard base64 (padded) of at most cap bytes; returns the
 * length or -1. */
static int unb64(unsigned char *out, size_t cap, const char *s, size_t n)
{
    if (n == 0 || n % 4 || n / 4 * 3 > cap + 2)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                 c == '/' || (c == '=' && i >= n - 2);
        if (!ok)
            return -1;
    }
    if (s[n - 2] == '=' && s[n - 1] != '=')
        return -1;
    unsigned char tmp[4096];
    if (n / 4 * 3 > sizeof tmp)
        return -1;
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (len < 0)
        return -1;
    len -= (s[n - 1] == '=') + (s[n - 2] == '=');
    if ((size_t)len > cap)
        return -1;
    memcpy(out, tmp, (size_t)len);
    return len;
}

int pl_key_verifier_string(char **out, const pl_key *k, const char *name)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!k)
        return pl_fail(PL_EINVAL, "key: NULL");
    int rc = check_name(name);
    if (rc)
        return rc;
    unsigned char raw[33];
    raw[0] = 0x01;
    memcpy(raw + 1, k->pub, 32);
    uint32_t id;
    if (key_id(&id, name, k->pub) < 0)
        return pl_fail(PL_ENOMEM, "SHA-256 failed (OpenSSL)");
    char *enc = b64(raw, sizeof raw);
    size_t n = strlen(name) + 64;
    char *s = enc ? malloc(n) : NULL;
    if (!s) {
        free(enc);
        return pl_fail(PL_ENOMEM, "out of memory");
    }
    snprintf(s, n, "%s+%08x+%s", name, (unsigned)id, enc);
    free(enc);
    *out = s;
    return PL_OK;
}

/* ------------------------------------------------------------------------ */
/* Notes and checkpoints                                                     */
/* ------------------------------------------------------------------------ */

int pl_checkpoint_body(char **out, const char *origin, int64_t size, const unsigned char root[32])
{
    char *r = b64(root, 32);
    size_t n = strlen(origin) + 80;
    char *s = r ? malloc(n) : NULL;
    if (!s) {
        free(r);
        return pl_fail(PL_ENOMEM, "out of memory");
    }
    snprintf(s, n, "%s\n%lld\n%s\n", origin, (long long)size, r);
    free(r);
    *out = s;
    return PL_OK;
}

int pl_note_sign(char **note, size_t *len, const char *body, const char *name, const pl_key *k)
{
    int rc = check_name(name);
    if (rc)
        return rc;
    if (!k->has_private)
        return pl_fail(PL_EINVAL, "key: a public key cannot sign");
    size_t bn = strlen(body);
    unsigned char sig[4 + 64];
    uint32_t id;
    if (key_id(&id, name, k->pub) < 0)
        return pl_fail(PL_ENOMEM, "SHA-256 failed (OpenSSL)");
    sig[0] = (unsigned char)(id >> 24);
    sig[1] = (unsigned char)(id >> 16);
    sig[2] = (unsigned char)(id >> 8);
    sig[3] = (unsigned char)id;
    size_t siglen = 64;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, sig + 4, &siglen, (const unsigned char *)body, bn) == 1 && siglen == 64;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    if (!ok)
        return pl_fail(PL_ENOMEM, "Ed25519 signing failed");
    char *enc = b64(sig, sizeof sig);
    size_t n = bn + strlen(name) + 200;
    char *s = enc ? malloc(n) : NULL;
    if (!s) {
        free(enc);
        return pl_fail(PL_ENOMEM, "out of memory");
    }
    int w = snprintf(s, n, "%s\n%s%s %s\n", body, em_dash, name, enc);
    free(enc);
    *note = s;
    *len = (size_t)w;
    return PL_OK;
}

/* The checkpoint: one allocation with its origin and note. */
int pl_checkpoint_parse(pl_checkpoint **out, const char *note, size_t len)
{
    if (!out)
        return pl_fail(PL_EINVAL, "out: NULL");
    *out = NULL;
    if (!note || len == 0)
        return pl_fail(PL_EINVAL, "note: empty");
    if (len > MAX_NOTE)
        return pl_fail(PL_EINVAL, "note: larger than 1 MiB");
    if (memchr(note, '\0', len))
        return pl_fail(PL_EINVAL, "note: contains a NUL byte");
    if (note[len - 1] != '\n')
        return pl_fail(PL_EINVAL, "note: must end with a newline");
    /* The text ends at the last blank line; signatures follow. */
    size_t sep = 0;
    int found = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (note[i] == '\n' && note[i + 1] == '\n') {
            sep = i + 1;
            found = 1;
        }
    if (!found || sep + 1 >= len)
        return pl_fail(PL_EINVAL, "note: no blank line before signature lines");
    const char *p = note;
    const char *l1 = memchr(p, '\n', sep);
    const char *l2 = l1 ? memchr(l1 + 1, '\n', (size_t)(note + sep - l1 - 1)) : NULL;
    const char *l3 = l2 ? memchr(l2 + 1, '\n', (size_t)(note + sep - l2 - 1)) : NULL;
    if (!l3)
        return pl_fail(PL_EINVAL, "note: a checkpoint needs origin, size and root lines");
    size_t olen = (size_t)(l1 - p);
    if (olen == 0)
        return pl_fail(PL_EINVAL, "note: empty origin line");
    const char *sz = l1 + 1;
    size_t szlen = (size_t)(l2 - sz);
    if (szlen == 0 || szlen > 19 || (szlen > 1 && sz[0] == '0'))
        return pl_fail(PL_EINVAL, "note: bad tree size line");
    int64_t size = 0;
    for (size_t i = 0; i < szlen; i++) {
        if (sz[i] < '0' || sz[i] > '9')
            return pl_fail(PL_EINVAL, "note: bad tree size line");
        if (size > (INT64_MAX - (sz[i] - '0')) / 10)
            return pl_fail(PL_EINVAL, "note: tree size too large");
        size = size * 10 + (sz[i] - '0');
    }
    unsigned char root[32];
    if (unb64(root, 32, l2 + 1, (size_t)(l3 - l2 - 1)) != 32)
        return pl_fail(PL_EINVAL, "note: the root hash line is not base64 of 32 bytes");
    pl_checkpoint *cp = calloc(1, sizeof *cp + olen + 1 + len + 1);
    if (!cp)
        return pl_fail(PL_ENOMEM, "out of memory");
    char *o = (char *)(cp + 1);
    memcpy(o, p, olen);
    o[olen] = '\0';
    char *n = o + olen + 1;
    memcpy(n, note, len);
    n[len] = '\0';
    cp->origin = o;
    cp->tree_size = size;
    memcpy(cp->root_hash, root, 32);
    cp->note = n;
    cp->note_len = len;
    cp->sealed_at = PL_TIME_ANY;
    *out = cp;
    return PL_OK;
}

int pl_checkpoint_verify(const pl_checkpoint *cp, const pl_key *pub)
{
    if (!cp || !pub)
        return pl_fail(PL_EINVAL, "%s: NULL", cp ? "pub" : "cp");
    const char *note = cp->note;
    size_t len = cp->note_len;
    size_t sep = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (note[i] == '\n' && note[i + 1] == '\n')
            sep = i + 1;
    if (!sep)
        return pl_fail(PL_EVERIFY, "the note has no signatures");
    uint32_t want;
    if (key_id(&want, cp->origin, pub->pub) < 0)
        return pl_fail(PL_ENOMEM, "SHA-256 failed (OpenSSL)");
    size_t nlen = strlen(cp->origin);
    EVP_PKEY *vk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub->pub, 32);
    int verified = 0;
    for (size_t at = sep + 1; at < len && vk && !verified;) {
        const char *line = note + at;
        const char *end = memchr(line, '\n', len - at);
        size_t ll = (size_t)(end - line);
        at += ll + 1;
        if (ll < 4 + nlen + 1 || memcmp(line, em_dash, 4) != 0 || memcmp(line + 4, cp->origin, nlen) != 0 ||
            line[4 + nlen] != ' ')
            continue;
        unsigned char sig[68];
        if (unb64(sig, sizeof sig, line + 5 + nlen, ll - 5 - nlen) != 68)
            continue;
        uint32_t id = (uint32_t)sig[0] << 24 | (uint32_t)sig[1] << 16 | (uint32_t)sig[2] << 8 | sig[3];
        if (id != want)
            continue;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        verified = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, vk) == 1 &&
                   EVP_DigestVerify(ctx, sig + 4, 64, (const unsigned char *)note, sep) == 1;
        EVP_MD_CTX_free(ctx);
    }
    EVP_PKEY_free(vk);
    ERR_clear_error();
    return verified ? PL_OK
                    : pl_fail(PL_EVERIFY, "no signature by key %s+%08x verifies", cp->origin, (unsigned)want);
}

void pl_checkpoint_free(pl_checkpoint *cp)
{
    free(cp);
}
