/* The cache's pure parts: Redis key names, answer versions, and how a
 * cached answer is sealed into a Redis value and verified on the way back.
 * No I/O, no locks: cache.c owns the keyed MAC context and hands each call
 * a fresh copy. Split from cache.c so that they can be tested without
 * servers (tests/check_unit_cache_codec.c). */
#ifndef PL_CACHE_CODEC_H
#define PL_CACHE_CODEC_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "provledger.h"
#include "result.h"
#include "wire.h"

#define VERSION_HEX 32
#define ENTRY_HEADER (VERSION_HEX + 8 + 32) /* version, filled_at, MAC */

/* v as 8 bytes, big endian (int8 wire format). */
void pl_cc_put_i64(char out[8], int64_t v);

/* The hash of (prefix, ledger, epoch, entity): prefix NUL ledger_id
 * ":" epoch ":" entity; entity "" names the epoch's marker. */
void pl_cc_make_key(pl_buf *key, const char *prefix, const char *ledger_id, int64_t epoch,
                    const char *entity);

/* The greatest (transaction time, id) of r, as fixed-width hex that sorts
 * like the pair (an empty answer is all zeros). */
void pl_cc_answer_version(char out[VERSION_HEX + 1], const pl_result *r);

/* The MAC of an entry, with m a fresh copy of the keyed HMAC-SHA-256
 * context (finalized here, freed by the caller). Returns -1 when m is NULL
 * or OpenSSL failed. */
int pl_cc_entry_mac(EVP_MAC_CTX *m, unsigned char out[32], const char *ledger_id, int64_t epoch,
                    const char *entity, const pl_buf *field, const char *version,
                    const char *filled_at, const char *payload, size_t payload_len);

/* Appends to val the entry answering (ledger_id, epoch, entity, field) with
 * r: version | filled_at | MAC | pl_result_encode(r, valid_until).
 * m as for pl_cc_entry_mac. Returns 0, or -1 (out of memory, no MAC). */
int pl_cc_entry_seal(pl_buf *val, EVP_MAC_CTX *m, const char *ledger_id, int64_t epoch,
                     const char *entity, const pl_buf *field, const pl_result *r,
                     pl_time valid_until, pl_time filled_at);

/* Checks that the len bytes at val are an entry sealed for (ledger_id,
 * epoch, entity, field) under m's key. Returns 0 with *filled_at set (the
 * encoded answer is at val + ENTRY_HEADER), or -1 when too short or the
 * MAC does not verify. */
int pl_cc_entry_verify(EVP_MAC_CTX *m, const char *ledger_id, int64_t epoch, const char *entity,
                       const pl_buf *field, const char *val, size_t len, pl_time *filled_at);

#endif
