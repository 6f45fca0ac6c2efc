/* RFC 9162 Merkle trees (see merkle.h). The proof builders follow the
 * RFC's recursive definitions (PATH, SUBPROOF) over leaf ranges; every
 * perfect subtree they meet is aligned, so it is a stored hash or splits
 * into two. The verifiers are the RFC's iterative algorithms, step by
 * step. */
#include "merkle.h"

#include <string.h>

#include <stdint.h>

#include "error.h"
#include "provledger.h"

/* SHA-256 (FIPS 180-4) of our own, for the tree's hashes: OpenSSL 3's
 * SHA256() allocates a context, and when that fails it returns NULL and
 * leaves the digest unwritten, so a tree hash could silently be garbage
 * (issue 12: a seal then stored a checkpoint its own tree did not match).
 * This one needs no memory and cannot fail. */
typedef struct sha256 {
    uint32_t h[8];
    unsigned char block[64];
    size_t used;
    uint64_t bytes;
} sha256;

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(sha256 *c, const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5],
             g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        h = g, g = f, f = e, e = d + t1, d = cc, cc = b, b = a, a = t1 + t2;
    }
    c->h[0] += a, c->h[1] += b, c->h[2] += cc, c->h[3] += d;
    c->h[4] += e, c->h[5] += f, c->h[6] += g, c->h[7] += h;
}

static void sha256_init(sha256 *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->used = 0;
    c->bytes = 0;
}

static void sha256_update(sha256 *c, const void *data, size_t len)
{
    const unsigned char *p = data;
    c->bytes += len;
    while (len) {
        size_t n = 64 - c->used < len ? 64 - c->used : len;
        memcpy(c->block + c->used, p, n);
        c->used += n, p += n, len -= n;
        if (c->used == 64) {
            sha256_block(c, c->block);
            c->used = 0;
        }
    }
}

static void sha256_final(sha256 *c, unsigned char out[32])
{
    uint64_t bits = c->bytes * 8;
    static const unsigned char pad[64] = {0x80};
    size_t n = c->used < 56 ? 56 - c->used : 120 - c->used;
    sha256_update(c, pad, n);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->h[i];
    }
}

void pl_merkle_leaf(pl_hash out, const void *leaf, size_t len)
{
    static const unsigned char prefix = 0x00;
    sha256 c;
    sha256_init(&c);
    sha256_update(&c, &prefix, 1);
    if (len)
        sha256_update(&c, leaf, len);
    sha256_final(&c, out);
}

void pl_merkle_node(pl_hash out, const pl_hash left, const pl_hash right)
{
    static const unsigned char prefix = 0x01;
    sha256 c;
    sha256_init(&c);
    sha256_update(&c, &prefix, 1);
    sha256_update(&c, left, 32);
    sha256_update(&c, right, 32);
    sha256_final(&c, out);
}

void pl_merkle_empty(pl_hash out)
{
    sha256 c;
    sha256_init(&c);
    sha256_final(&c, out);
}

/* ------------------------------------------------------------------------ */
/* The builder                                                               */
/* ------------------------------------------------------------------------ */

int pl_merkle_builder_init(pl_merkle_builder *b, int64_t size, const pl_hash *frontier, size_t count)
{
    memset(b, 0, sizeof *b);
    if (size < 0)
        return -1;
    size_t want = 0;
    for (int bit = 62; bit >= 0; bit--) {
        if (!((uint64_t)size >> bit & 1))
            continue;
        if (want >= count)
            return -1;
        memcpy(b->stack[want], frontier[want], 32);
        b->level[want] = bit;
        want++;
    }
    if (want != count)
        return -1;
    b->depth = (int)want;
    b->size = size;
    return 0;
}

void pl_merkle_builder_push(pl_merkle_builder *b, const pl_hash leaf, pl_merkle_node_fn on_node, void *ctx)
{
    memcpy(b->stack[b->depth], leaf, 32);
    b->level[b->depth] = 0;
    b->depth++;
    b->size++;
    while (b->depth >= 2 && b->level[b->depth - 1] == b->level[b->depth - 2]) {
        int top = b->depth - 1;
        pl_hash h;
        pl_merkle_node(h, b->stack[top - 1], b->stack[top]);
        memcpy(b->stack[top - 1], h, 32);
        int level = ++b->level[top - 1];
        b->depth--;
        if (on_node && level % 4 == 0)
            on_node(ctx, level, (b->size >> level) - 1, h);
    }
}

void pl_merkle_builder_root(const pl_merkle_builder *b, pl_hash out)
{
    if (b->depth == 0) {
        pl_merkle_empty(out);
        return;
    }
    pl_hash r;
    memcpy(r, b->stack[b->depth - 1], 32);
    for (int i = b->depth - 2; i >= 0; i--)
        pl_merkle_node(r, b->stack[i], r);
    memcpy(out, r, 32);
}

int64_t pl_merkle_builder_size(const pl_merkle_builder *b)
{
    return b->size;
}

void pl_merkle_builder_frontier(const pl_merkle_builder *b, pl_hash *out, size_t *count)
{
    for (int i = 0; i < b->depth; i++)
        memcpy(out[i], b->stack[i], 32);
    *count = (size_t)b->depth;
}

/* ------------------------------------------------------------------------ */
/* Proofs from stored hashes                                                 */
/* ------------------------------------------------------------------------ */

/* The largest power of two below n (n >= 2). */
static int64_t split_point(int64_t n)
{
    int64_t k = 1;
    while (k << 1 < n)
        k <<= 1;
    return k;
}

int pl_merkle_subtree_root(pl_hash out, int64_t start, int64_t end, pl_subtree_fn get, void *ctx)
{
    int64_t n = end - start;
    if (n <= 0)
        return -1;
    if ((n & (n - 1)) == 0 && start % n == 0) { /* NOLINT(clang-analyzer-core.DivideZero): n > 0 */
        int level = 0;
        while ((INT64_C(1) << level) < n)
            level++;
        if (PL_MERKLE_STORED_LEVEL(level))
            return get(ctx, level, start >> level, out);
        pl_hash l, r;
        if (pl_merkle_subtree_root(l, start, start + n / 2, get, ctx) ||
            pl_merkle_subtree_root(r, start + n / 2, end, get, ctx))
            return -1;
        pl_merkle_node(out, l, r);
        return 0;
    }
    int64_t k = split_point(n);
    pl_hash l, r;
    if (pl_merkle_subtree_root(l, start, start + k, get, ctx) || pl_merkle_subtree_root(r, start + k, end, get, ctx))
        return -1;
    pl_merkle_node(out, l, r);
    return 0;
}

/* PATH(m, D[start:end]) appended to proof. */
static int path(pl_hash *proof, size_t *count, int64_t m, int64_t start, int64_t end, pl_subtree_fn get,
                void *ctx)
{
    int64_t n = end - start;
    if (n == 1)
        return 0;
    int64_t k = split_point(n);
    if (m < k) {
        if (path(proof, count, m, start, start + k, get, ctx))
            return -1;
        return pl_merkle_subtree_root(proof[(*count)++], start + k, end, get, ctx);
    }
    if (path(proof, count, m - k, start + k, end, get, ctx))
        return -1;
    return pl_merkle_subtree_root(proof[(*count)++], start, start + k, get, ctx);
}

int pl_merkle_prove_inclusion(pl_hash *proof, size_t *count, int64_t index, int64_t size,
                              pl_subtree_fn get, void *ctx)
{
    *count = 0;
    if (size < 1 || index < 0 || index >= size)
        return -1;
    return path(proof, count, index, 0, size, get, ctx);
}

/* SUBPROOF(m, D[start:end], b) appended to proof. */
static int subproof(pl_hash *proof, size_t *count, int64_t m, int64_t start, int64_t end, int b,
                    pl_subtree_fn get, void *ctx)
{
    int64_t n = end - start;
    if (m == n) {
        if (b)
            return 0;
        return pl_merkle_subtree_root(proof[(*count)++], start, end, get, ctx);
    }
    int64_t k = split_point(n);
    if (m <= k) {
        if (subproof(proof, count, m, start, start + k, b, get, ctx))
            return -1;
        return pl_merkle_subtree_root(proof[(*count)++], start + k, end, get, ctx);
    }
    if (subproof(proof, count, m - k, start + k, end, 0, get, ctx))
        return -1;
    return pl_merkle_subtree_root(proof[(*count)++], start, start + k, get, ctx);
}

int pl_merkle_prove_consistency(pl_hash *proof, size_t *count, int64_t m, int64_t n, pl_subtree_fn get,
                                void *ctx)
{
    *count = 0;
    if (m < 1 || m > n)
        return -1;
    return subproof(proof, count, m, 0, n, 1, get, ctx);
}

/* ------------------------------------------------------------------------ */
/* Verification (RFC 9162 2.1.3.2, 2.1.4.2)                                  */
/* ------------------------------------------------------------------------ */

int pl_merkle_verify_inclusion(const pl_hash leaf, int64_t index, int64_t size, const pl_hash *proof,
                               size_t count, const pl_hash root)
{
    if (index < 0 || size < 1 || index >= size || (count && !proof))
        return -1;
    uint64_t fn = (uint64_t)index, sn = (uint64_t)size - 1;
    pl_hash r;
    memcpy(r, leaf, 32);
    for (size_t i = 0; i < count; i++) {
        if (sn == 0)
            return -1;
        if ((fn & 1) || fn == sn) {
            pl_merkle_node(r, proof[i], r);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            pl_merkle_node(r, r, proof[i]);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(r, root, 32) == 0 ? 0 : -1;
}

int pl_merkle_verify_consistency(int64_t m, int64_t n, const pl_hash root_m, const pl_hash root_n,
                                 const pl_hash *proof, size_t count)
{
    if (m < 1 || n < m || (count && !proof))
        return -1;
    if (m == n)
        return count == 0 && memcmp(root_m, root_n, 32) == 0 ? 0 : -1;
    if (count == 0)
        return -1;
    /* When m is a power of two, its root is the proof's implicit first. */
    const unsigned char *first;
    size_t at;
    if ((m & (m - 1)) == 0) {
        first = root_m;
        at = 0;
    } else {
        first = proof[0];
        at = 1;
    }
    uint64_t fn = (uint64_t)m - 1, sn = (uint64_t)n - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    pl_hash fr, sr;
    memcpy(fr, first, 32);
    memcpy(sr, first, 32);
    for (size_t i = at; i < count; i++) {
        if (sn == 0)
            return -1;
        if ((fn & 1) || fn == sn) {
            pl_merkle_node(fr, proof[i], fr);
            pl_merkle_node(sr, proof[i], sr);
            if (!(fn & 1))
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
        } else {
            pl_merkle_node(sr, sr, proof[i]);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && memcmp(fr, root_m, 32) == 0 && memcmp(sr, root_n, 32) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* The public verifiers                                                      */
/* ------------------------------------------------------------------------ */

int pl_verify_inclusion(const unsigned char leaf_hash[PL_HASH_SIZE], int64_t leaf_index, int64_t tree_size,
                        const unsigned char *proof, size_t count, const unsigned char root_hash[PL_HASH_SIZE])
{
    if (!leaf_hash || !root_hash || (count && !proof))
        return pl_fail(PL_EINVAL, "leaf_hash, root_hash and proof must not be NULL");
    if (count > 64 ||
        pl_merkle_verify_inclusion(leaf_hash, leaf_index, tree_size, (const pl_hash *)proof, count, root_hash))
        return pl_fail(PL_EVERIFY, "the inclusion proof of leaf %lld in the tree of size %lld does not verify",
                       (long long)leaf_index, (long long)tree_size);
    return PL_OK;
}

int pl_verify_consistency(int64_t from_size, int64_t to_size, const unsigned char from_root[PL_HASH_SIZE],
                          const unsigned char to_root[PL_HASH_SIZE], const unsigned char *proof, size_t count)
{
    if (!from_root || !to_root || (count && !proof))
        return pl_fail(PL_EINVAL, "from_root, to_root and proof must not be NULL");
    if (count > 128 ||
        pl_merkle_verify_consistency(from_size, to_size, from_root, to_root, (const pl_hash *)proof, count))
        return pl_fail(PL_EVERIFY, "the consistency proof from size %lld to %lld does not verify",
                       (long long)from_size, (long long)to_size);
    return PL_OK;
}

int pl_leaf_hash(unsigned char out[PL_HASH_SIZE], const void *leaf, size_t len)
{
    if (!out || (!leaf && len))
        return pl_fail(PL_EINVAL, "out and leaf must not be NULL");
    pl_merkle_leaf(out, leaf, len);
    return PL_OK;
}
