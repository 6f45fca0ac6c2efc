/* Keys, versions and sealed entries of the cache (see cache_codec.h; the
 * entry format and why it is safe are argued at the top of cache.c). */
#include "cache_codec.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

void pl_cc_put_i64(char out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        out[i] = (char)(u & 0xff);
}

/* NUL ends the prefix (neither it nor an entity id can hold one), so no
 * two (prefix, ledger, epoch, entity) ever share a key; entity "" names
 * the epoch's marker. */
void pl_cc_make_key(pl_buf *key, const char *prefix, const char *ledger_id, int64_t epoch,
                    const char *entity)
{
    char num[24];
    int n = snprintf(num, sizeof num, ":%lld:", (long long)epoch);
    key->len = 0;
    pl_buf_put(key, prefix, strlen(prefix) + 1);
    pl_buf_put(key, ledger_id, strlen(ledger_id));
    pl_buf_put(key, num, (size_t)n);
    pl_buf_put(key, entity, strlen(entity));
}

void pl_cc_answer_version(char out[VERSION_HEX + 1], const pl_result *r)
{
    pl_time tt = INT64_MIN;
    int64_t id = INT64_MIN;
    for (size_t i = 0; i < r->count; i++) {
        const pl_record *rec = &r->records[i];
        if (rec->transaction_time > tt || (rec->transaction_time == tt && rec->id > id))
            tt = rec->transaction_time, id = rec->id;
    }
    snprintf(out, VERSION_HEX + 1, "%016llx%016llx",
             (unsigned long long)((uint64_t)tt ^ UINT64_C(0x8000000000000000)),
             (unsigned long long)((uint64_t)id ^ UINT64_C(0x8000000000000000)));
}

static void mac_part(EVP_MAC_CTX *m, const void *p, size_t n)
{
    unsigned char len[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    EVP_MAC_update(m, len, 4);
    EVP_MAC_update(m, p, n);
}

/* What the entry answers (ledger, epoch, entity, question) and the entry's
 * own bytes after the MAC slot. */
int pl_cc_entry_mac(EVP_MAC_CTX *m, unsigned char out[32], const char *ledger_id, int64_t epoch,
                    const char *entity, const pl_buf *field, const char *version,
                    const char *filled_at, const char *payload, size_t payload_len)
{
    if (!m)
        return -1;
    char ep[8];
    pl_cc_put_i64(ep, epoch);
    EVP_MAC_update(m, (const unsigned char *)"plc1", 4);
    mac_part(m, ledger_id, strlen(ledger_id));
    EVP_MAC_update(m, (const unsigned char *)ep, 8);
    mac_part(m, entity, strlen(entity));
    mac_part(m, field->data, field->len);
    EVP_MAC_update(m, (const unsigned char *)version, VERSION_HEX);
    EVP_MAC_update(m, (const unsigned char *)filled_at, 8);
    mac_part(m, payload, payload_len);
    size_t len = 0;
    return EVP_MAC_final(m, out, &len, 32) == 1 && len == 32 ? 0 : -1;
}

int pl_cc_entry_seal(pl_buf *val, EVP_MAC_CTX *m, const char *ledger_id, int64_t epoch,
                     const char *entity, const pl_buf *field, const pl_result *r,
                     pl_time valid_until, pl_time filled_at)
{
    char version[VERSION_HEX + 1], filled[8];
    pl_cc_answer_version(version, r);
    pl_wire_put_time(filled, filled_at);
    size_t start = val->len;
    pl_buf_put(val, version, VERSION_HEX);
    pl_buf_put(val, filled, 8);
    pl_buf_put(val, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 32);
    unsigned char mac[32];
    if (pl_result_encode(val, r, valid_until) < 0 || val->failed ||
        pl_cc_entry_mac(m, mac, ledger_id, epoch, entity, field, version, filled,
                        val->data + start + ENTRY_HEADER, val->len - start - ENTRY_HEADER) < 0)
        return -1;
    memcpy(val->data + start + VERSION_HEX + 8, mac, 32);
    return 0;
}

int pl_cc_entry_verify(EVP_MAC_CTX *m, const char *ledger_id, int64_t epoch, const char *entity,
                       const pl_buf *field, const char *val, size_t len, pl_time *filled_at)
{
    if (len < ENTRY_HEADER)
        return -1;
    unsigned char mac[32];
    if (pl_cc_entry_mac(m, mac, ledger_id, epoch, entity, field, val, val + VERSION_HEX,
                        val + ENTRY_HEADER, len - ENTRY_HEADER) < 0)
        return -1;
    if (CRYPTO_memcmp(mac, val + VERSION_HEX + 8, 32) != 0)
        return -1;
    *filled_at = pl_wire_get_time(val + VERSION_HEX);
    return 0;
}
