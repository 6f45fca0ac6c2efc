/* The proof verifiers (pl_verify_inclusion, pl_verify_consistency) on
 * arbitrary sizes, indexes and hashes; and, for a tree the target builds
 * itself from the input, that its genuine inclusion proofs verify and a
 * proof with one bit flipped never does. */
#include "fuzz.h"

#include <provledger.h>

#include "merkle.h"

static int64_t get_i64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

/* RFC 9162 MTH over leaves [lo, hi) of hashes h. */
static void mth(pl_hash out, pl_hash *h, int64_t lo, int64_t hi)
{
    if (hi - lo == 1) {
        memcpy(out, h[lo], 32);
        return;
    }
    int64_t k = 1;
    while (k * 2 < hi - lo)
        k *= 2;
    pl_hash l, r;
    mth(l, h, lo, lo + k);
    mth(r, h, lo + k, hi);
    pl_merkle_node(out, l, r);
}

/* RFC 9162 PATH(m, D[lo:hi]) appended to proof. */
static void path(unsigned char *proof, size_t *n, pl_hash *h, int64_t m, int64_t lo, int64_t hi)
{
    if (hi - lo <= 1)
        return;
    int64_t k = 1;
    while (k * 2 < hi - lo)
        k *= 2;
    pl_hash sib;
    if (m < k) {
        path(proof, n, h, m, lo, lo + k);
        mth(sib, h, lo + k, hi);
    } else {
        path(proof, n, h, m - k, lo + k, hi);
        mth(sib, h, lo, lo + k);
    }
    memcpy(proof + 32 * (*n)++, sib, 32);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 24 + 64)
        return 0;
    int64_t a = get_i64(data), b = get_i64(data + 8), c = get_i64(data + 16);
    const unsigned char *h1 = data + 24, *h2 = data + 56;
    const unsigned char *proof = data + 88;
    size_t count = (size - 88) / 32;
    int rc = pl_verify_inclusion(h1, a, b, count ? proof : NULL, count, h2);
    FZ_ASSERT(rc == PL_OK || rc == PL_EVERIFY || rc == PL_EINVAL);
    rc = pl_verify_consistency(a, b, h1, h2, count ? proof : NULL, count);
    FZ_ASSERT(rc == PL_OK || rc == PL_EVERIFY || rc == PL_EINVAL);

    /* A tree of 1..64 leaves from the input. */
    int64_t leaves = (int64_t)(data[0] % 64) + 1, m = (int64_t)((uint64_t)c % (uint64_t)leaves);
    pl_hash h[64], root;
    for (int64_t i = 0; i < leaves; i++)
        pl_merkle_leaf(h[i], data + 24 + (i % 32), (size_t)(i % 40));
    mth(root, h, 0, leaves);
    unsigned char genuine[32 * 8];
    size_t n = 0;
    path(genuine, &n, h, m, 0, leaves);
    FZ_ASSERT(pl_verify_inclusion(h[m], m, leaves, n ? genuine : NULL, n, root) == PL_OK);
    if (n) {
        size_t bit = (size_t)data[1] % (n * 256);
        genuine[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        FZ_ASSERT(pl_verify_inclusion(h[m], m, leaves, genuine, n, root) == PL_EVERIFY);
    }
    return 0;
}
