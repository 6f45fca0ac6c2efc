/* SHA-256 and HMAC-SHA-256 of the value commitments, with the algorithm
 * fetched once per process (see digest.c for why; the tree's own hashes
 * use merkle.c's SHA-256, which needs no memory). Each returns 0, or -1 when OpenSSL
 * fails (out of memory); *out is then all zeros, a hash nothing matches. */
#ifndef PL_DIGEST_H
#define PL_DIGEST_H

#include <stddef.h>

/* SHA-256(data). */
int pl_sha256(unsigned char out[32], const void *data, size_t len);
/* SHA-256 of a then b (b may be empty). */
int pl_sha256_parts(unsigned char out[32], const void *a, size_t alen, const void *b, size_t blen);
/* HMAC-SHA-256 (RFC 2104) of msg under key. */
int pl_hmac_sha256(unsigned char out[32], const void *key, size_t key_len, const void *msg,
                   size_t len);

#endif
