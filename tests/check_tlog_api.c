/* The transparency log through the public API: proofs for every tree size
 * 1..1024 against a tree this file computes independently (plain RFC 9162
 * recursion over the leaf hashes, no library code), the proof verifiers
 * fed wrong indexes, wrong lengths and garbage, sealing under concurrent
 * writers and imports (every record sealed exactly once), and results
 * that do not depend on the session's TimeZone, DateStyle or
 * extra_float_digits. */
#include <openssl/sha.h>
#include <unistd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef unsigned char h32[32];

/* --- an independent RFC 9162 tree ----------------------------------------- */

static void node(h32 out, const h32 l, const h32 r)
{
    unsigned char b[65];
    b[0] = 1;
    memcpy(b + 1, l, 32);
    memcpy(b + 33, r, 32);
    SHA256(b, 65, out);
}

static int64_t split(int64_t n)
{
    int64_t k = 1;
    while (k * 2 < n)
        k *= 2;
    return k;
}

static void mth(h32 out, h32 *d, int64_t n)
{
    if (n == 1) {
        memcpy(out, d[0], 32);
        return;
    }
    int64_t k = split(n);
    h32 l, r;
    mth(l, d, k);
    mth(r, d + k, n - k);
    node(out, l, r);
}

static void path(h32 *out, size_t *c, int64_t m, h32 *d, int64_t n)
{
    if (n == 1)
        return;
    int64_t k = split(n);
    if (m < k) {
        path(out, c, m, d, k);
        mth(out[(*c)++], d + k, n - k);
    } else {
        path(out, c, m - k, d + k, n - k);
        mth(out[(*c)++], d, k);
    }
}

static void subproof(h32 *out, size_t *c, int64_t m, h32 *d, int64_t n, int b)
{
    if (m == n) {
        if (!b)
            mth(out[(*c)++], d, n);
        return;
    }
    int64_t k = split(n);
    if (m <= k) {
        subproof(out, c, m, d, k, b);
        mth(out[(*c)++], d + k, n - k);
    } else {
        subproof(out, c, m - k, d + k, n - k, 0);
        mth(out[(*c)++], d, k);
    }
}

/* --- tests ------------------------------------------------------------------ */

#define SIZES 1024

static pl_key *test_key(void)
{
    char path_buf[] = "/tmp/pl_tlog_key_XXXXXX";
    int fd = mkstemp(path_buf);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "openssl genpkey -algorithm ed25519 -out %s 2>/dev/null", path_buf);
    ck_assert_int_eq(system(cmd), 0);
    pl_key *k = NULL;
    tu_ok(pl_key_load(&k, path_buf));
    unlink(path_buf);
    return k;
}

static void insert_one(pl_ledger *l, int i)
{
    char entity[32], value[32];
    snprintf(entity, sizeof entity, "e%d", i % 13);
    snprintf(value, sizeof value, "{\"v\": %d.25}", i);
    pl_change c = PL_CHANGE_INIT;
    c.entity_id = entity;
    c.field_name = "f";
    c.new_value = value;
    c.source_type = "t";
    pl_receipt r;
    tu_ok(pl_insert(&r, l, &c));
}

/* pl_seal until the tree holds `want` leaves (at most 30 s), the counts of
 * every call added up; *cp (when cp) gets the last checkpoint. A seal
 * stops at the oldest transaction running anywhere in the cluster, and the
 * suites running beside this one hold that back now and then. */
static void seal_until(pl_checkpoint **cp, pl_seal_info *sum, pl_ledger *l, pl_key *key, const char *origin,
                       int64_t want)
{
    pl_seal_info total = {0, 0, 0};
    double end = tu_now_ms() + 30000;
    for (;;) {
        pl_checkpoint *c = NULL;
        pl_seal_info info;
        tu_ok(pl_seal(cp ? &c : NULL, &info, sizeof info, l, key, origin));
        total.sealed += info.sealed;
        total.backdated += info.backdated;
        total.tree_size = info.tree_size;
        if (info.tree_size >= want || tu_now_ms() > end) {
            if (cp)
                *cp = c;
            break;
        }
        pl_checkpoint_free(c);
        tu_sleep_ms(50);
    }
    if (sum)
        *sum = total;
}

START_TEST(proofs_every_size)
{
    pl_ledger *l = tu_open_new(0, 0);
    pl_key *key = test_key();
    static pl_checkpoint *cps[SIZES + 1];
    static h32 leaves[SIZES];
    int64_t ids[SIZES];
    for (int n = 1; n <= SIZES; n++) {
        insert_one(l, n);
        pl_seal_info info;
        seal_until(&cps[n], &info, l, key, "test.example/log", n);
        ck_assert_int_eq(cps[n]->tree_size, n);
        ck_assert_int_eq(info.sealed, 1);
        tu_ok(pl_checkpoint_verify(cps[n], key));
    }
    /* Leaf hashes as the log stores them (from inclusion proofs). */
    for (int i = 0; i < SIZES; i++) {
        ids[i] = i + 1;
        pl_proof *p = NULL;
        tu_ok(pl_prove_inclusion(&p, l, ids[i], NULL));
        ck_assert_int_eq(p->leaf_index, i);
        memcpy(leaves[i], p->leaf_hash, 32);
        pl_proof_free(p);
    }
    int checked = 0;
    for (int n = 1; n <= SIZES; n++) {
        h32 root;
        mth(root, leaves, n);
        ck_assert_msg(memcmp(root, cps[n]->root_hash, 32) == 0, "root of size %d", n);
        /* Every leaf of the small trees, the first, a middle and a late one of the large. */
        for (int i = 0; i < n; i += n <= 32 ? 1 : (n / 3) + 1) {
            pl_proof *p = NULL;
            tu_ok(pl_prove_inclusion(&p, l, ids[i], cps[n]));
            h32 want[64];
            size_t wc = 0;
            path(want, &wc, i, leaves, n);
            ck_assert_uint_eq(p->count, wc);
            ck_assert_msg(wc == 0 || memcmp(p->hashes, want, wc * 32) == 0, "path %d in %d", i, n);
            tu_ok(pl_verify_inclusion(p->leaf_hash, i, n, p->hashes, p->count, cps[n]->root_hash));
            pl_proof_free(p);
            checked++;
        }
        for (int m = 1; m <= n; m += n <= 32 ? 1 : (n / 3) + 1) {
            pl_proof *p = NULL;
            tu_ok(pl_prove_consistency(&p, l, m, cps[n]));
            h32 want[128];
            size_t wc = 0;
            subproof(want, &wc, m, leaves, n, 1);
            ck_assert_uint_eq(p->count, wc);
            ck_assert_msg(wc == 0 || memcmp(p->hashes, want, wc * 32) == 0, "consistency %d..%d", m, n);
            ck_assert(memcmp(p->from_root, cps[m]->root_hash, 32) == 0);
            tu_ok(pl_verify_consistency(m, n, cps[m]->root_hash, cps[n]->root_hash, p->hashes, p->count));
            pl_proof_free(p);
            checked++;
        }
    }
    fprintf(stderr, "proofs_every_size: %d proofs checked against the independent tree\n", checked);
    for (int n = 1; n <= SIZES; n++)
        pl_checkpoint_free(cps[n]);
    pl_key_free(key);
    pl_close(l);
}
END_TEST

/* The verifiers, fed what an attacker or a corrupt file can send. */
START_TEST(verifier_fuzz)
{
    enum { N = 37 };
    h32 d[N];
    for (int i = 0; i < N; i++) {
        unsigned char b[2] = {0, (unsigned char)i};
        SHA256(b, 2, d[i]);
    }
    h32 root, proof[64], cproof[128];
    mth(root, d, N);
    size_t c = 0;
    path(proof, &c, 5, d, N);
    tu_ok(pl_verify_inclusion(d[5], 5, N, (const unsigned char *)proof, c, root));
    ck_assert_int_eq(pl_verify_inclusion(d[5], N, N, (const unsigned char *)proof, c, root), PL_EVERIFY);
    ck_assert_int_eq(pl_verify_inclusion(d[5], 5, 0, (const unsigned char *)proof, c, root), PL_EVERIFY);
    ck_assert_int_eq(pl_verify_inclusion(d[5], -1, N, (const unsigned char *)proof, c, root), PL_EVERIFY);
    ck_assert_int_eq(pl_verify_inclusion(d[5], 5, N, (const unsigned char *)proof, c - 1, root), PL_EVERIFY);
    ck_assert_int_eq(pl_verify_inclusion(d[5], 5, N, (const unsigned char *)proof, c + 1, root), PL_EVERIFY);
    ck_assert_int_eq(pl_verify_inclusion(d[5], 6, N, (const unsigned char *)proof, c, root), PL_EVERIFY);
    ck_assert_int_eq(pl_verify_inclusion(NULL, 5, N, (const unsigned char *)proof, c, root), PL_EINVAL);
    for (size_t i = 0; i < c; i++)
        for (int bit = 0; bit < 256; bit++) {
            h32 bad[64];
            memcpy(bad, proof, sizeof bad);
            bad[i][bit / 8] ^= (unsigned char)(1 << (bit % 8));
            ck_assert_int_eq(pl_verify_inclusion(d[5], 5, N, (const unsigned char *)bad, c, root), PL_EVERIFY);
        }
    h32 r12;
    mth(r12, d, 12);
    size_t cc = 0;
    subproof(cproof, &cc, 12, d, N, 1);
    tu_ok(pl_verify_consistency(12, N, r12, root, (const unsigned char *)cproof, cc));
    ck_assert_int_eq(pl_verify_consistency(12, N, r12, root, (const unsigned char *)cproof, cc - 1), PL_EVERIFY);
    ck_assert_int_eq(pl_verify_consistency(13, N, r12, root, (const unsigned char *)cproof, cc), PL_EVERIFY);
    ck_assert_int_eq(pl_verify_consistency(N, 12, root, r12, (const unsigned char *)cproof, cc), PL_EVERIFY);
    ck_assert_int_eq(pl_verify_consistency(0, N, r12, root, (const unsigned char *)cproof, cc), PL_EVERIFY);
    tu_ok(pl_verify_consistency(N, N, root, root, NULL, 0));
    ck_assert_int_eq(pl_verify_consistency(N, N, root, r12, NULL, 0), PL_EVERIFY);
    /* Garbage: random sizes, indexes and hashes never verify or crash. */
    srand(12345);
    for (int t = 0; t < 20000; t++) {
        h32 g[64];
        for (size_t i = 0; i < sizeof g; i++)
            ((unsigned char *)g)[i] = (unsigned char)rand();
        int64_t size = (int64_t)(rand() % 5000) - 10, idx = (int64_t)(rand() % 6000) - 10;
        size_t n = (size_t)(rand() % 70);
        ck_assert_int_ne(pl_verify_inclusion(g[0], idx, size, (const unsigned char *)g, n, g[1]), PL_OK);
        ck_assert_int_ne(pl_verify_consistency(idx, size, g[0], g[1], (const unsigned char *)g, n), PL_OK);
    }
}
END_TEST

typedef struct writer_arg {
    int id, import;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *w = p;
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.allow_import = 1;
    pl_ledger *l = tu_open_cfg(&cfg);
    for (int round = 0; round < 60; round++) {
        pl_change c[20];
        pl_time tts[20];
        char ent[20][32], val[20][32];
        for (int i = 0; i < 20; i++) {
            c[i] = (pl_change)PL_CHANGE_INIT;
            snprintf(ent[i], sizeof ent[i], "w%d_%d_%d", w->id, round, i % 5);
            snprintf(val[i], sizeof val[i], "%d", i);
            c[i].entity_id = ent[i];
            c[i].field_name = "f";
            c[i].new_value = val[i];
            c[i].source_type = "t";
            tts[i] = pl_time_now() - 3600 * INT64_C(1000000) + i;
        }
        pl_receipt r[20];
        int rc = w->import ? pl_import_batch(r, l, c, tts, 20) : pl_insert_batch(r, l, c, 20);
        ck_assert_msg(rc == PL_OK, "%s", pl_errmsg());
    }
    pl_close(l);
    return NULL;
}

START_TEST(seal_concurrent_exactly_once)
{
    pl_ledger *l = tu_open_new(0, 1);
    pl_key *key = test_key();
    pthread_t th[3];
    writer_arg args[3] = {{0, 0}, {1, 0}, {2, 1}};
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, writer, &args[i]);
    int seals = 0;
    for (int i = 0; i < 40; i++) {
        pl_seal_info info;
        tu_ok(pl_seal(NULL, &info, sizeof info, l, key, NULL));
        ck_assert_int_eq(info.backdated, 0);
        seals++;
    }
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    pl_seal_info info;
    seal_until(NULL, &info, l, key, NULL, 3600);
    char sql[512];
    const char *counts[] = {"count(*) FROM \"%s\".provenance_ledger",
                            "count(*) FROM \"%s\".log_leaf WHERE kind = 1",
                            "count(DISTINCT item_id) FROM \"%s\".log_leaf WHERE kind = 1",
                            "count(*) FROM \"%s\".provenance_ledger p WHERE NOT EXISTS (SELECT 1 FROM \"%s\".log_leaf "
                            "WHERE kind = 1 AND item_id = p.id)"};
    long long want[] = {3600, 3600, 3600, 0};
    for (int i = 0; i < 4; i++) {
        char q[400];
        snprintf(q, sizeof q, "SELECT %s", counts[i]);
        snprintf(sql, sizeof sql, q, tu_schema(), tu_schema());
        ck_assert_int_eq(tu_sql_ll(sql), want[i]);
    }
    fprintf(stderr, "seal_concurrent_exactly_once: %d seals while 3 writers ran; 3600 records, each sealed once\n",
            seals);
    ck_assert_int_eq(info.tree_size, 3600);
    pl_verify_summary s;
    tu_ok(pl_verify(&s, sizeof s, l, NULL, key, NULL, NULL, NULL));
    ck_assert_int_eq(s.findings, 0);
    ck_assert_int_eq(s.tree_size, 3600);
    pl_key_free(key);
    pl_close(l);
}
END_TEST

/* Session settings that change how PostgreSQL prints times and numbers
 * change no leaf. */
/* Records of one entity at one transaction time: no commit makes the
 * second (times rise strictly per entity), so the seal leaves it out as
 * back-dated, even when more than a cursor chunk of other records at that
 * same time stands between them (the sealer's same-time set; the entities'
 * sealed times in log_entity move only at the seal's end). */
START_TEST(seal_same_time_across_chunks)
{
    pl_ledger *l = tu_open_new(0, 1);
    pl_key *key = test_key();
    const char *s = tu_schema();
    char sql[1024];
    /* One statement: ids rise in the rows' order, 'tie' first and last. */
    snprintf(sql, sizeof sql,
             "SET session_replication_role = replica; "
             "INSERT INTO \"%s\".provenance_ledger (entity_id, field_name, new_value, transaction_time, "
             "valid_time_start, source_type) SELECT x.e, 'f', '1', t.tt, t.tt, 't' "
             "FROM (SELECT date_trunc('second', now()) - interval '1 hour' AS tt) t, "
             "(SELECT 0 AS o, 'tie' AS e UNION ALL SELECT g, 'other' || g FROM generate_series(1, 1500) g "
             "UNION ALL SELECT 1501, 'tie') x ORDER BY x.o",
             s);
    free(tu_sql(sql, 0, NULL));
    pl_seal_info info;
    seal_until(NULL, &info, l, key, NULL, 1501);
    ck_assert_int_eq(info.backdated, 1);
    ck_assert_int_eq(info.sealed, 1501);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM \"%s\".provenance_ledger p WHERE entity_id = 'tie' AND EXISTS "
             "(SELECT 1 FROM \"%s\".log_leaf WHERE kind = 1 AND item_id = p.id)",
             s, s);
    ck_assert_int_eq(tu_sql_ll(sql), 1);
    /* The next seal moves past nothing: the left-out record stays out. */
    tu_ok(pl_seal(NULL, &info, sizeof info, l, key, NULL));
    ck_assert_int_eq(info.sealed, 0);
    pl_key_free(key);
    pl_close(l);
}
END_TEST

START_TEST(session_settings_change_nothing)
{
    pl_ledger *l = tu_open_new(0, 0);
    pl_key *key = test_key();
    for (int i = 0; i < 30; i++)
        insert_one(l, i);
    pl_checkpoint *cp = NULL;
    seal_until(&cp, NULL, l, key, NULL, 30);
    pl_close(l);
    setenv("PGOPTIONS", "-c TimeZone=Pacific/Chatham -c DateStyle=SQL,DMY -c extra_float_digits=-15", 1);
    setenv("PGTZ", "Asia/Kathmandu", 1);
    pl_config cfg;
    tu_config(&cfg, 0);
    l = tu_open_cfg(&cfg);
    pl_verify_summary s;
    tu_ok(pl_verify(&s, sizeof s, l, NULL, key, cp, NULL, NULL));
    ck_assert_int_eq(s.findings, 0);
    ck_assert_int_eq(s.tree_size, 30);
    insert_one(l, 99);
    pl_checkpoint *cp2 = NULL;
    seal_until(&cp2, NULL, l, key, NULL, 31);
    unsetenv("PGOPTIONS");
    unsetenv("PGTZ");
    pl_close(l);
    l = tu_open_cfg(&cfg);
    tu_ok(pl_verify(&s, sizeof s, l, NULL, key, cp2, NULL, NULL));
    ck_assert_int_eq(s.findings, 0);
    pl_checkpoint_free(cp);
    pl_checkpoint_free(cp2);
    pl_key_free(key);
    pl_close(l);
}
END_TEST

/* pl_checkpoint_parse refuses every malformed note with its reason;
 * pl_key_parse and pl_key_load refuse what is not an Ed25519 PEM key. */
static void note_refused(const char *note, size_t len, const char *why)
{
    pl_checkpoint *cp = (pl_checkpoint *)1;
    ck_assert_int_eq(pl_checkpoint_parse(&cp, note, len), PL_EINVAL);
    ck_assert_ptr_null(cp);
    ck_assert_msg(strstr(pl_errmsg(), why) != NULL, "'%s': '%s', want '%s'", note, pl_errmsg(), why);
}

#define NOTE_REFUSED(lit, why) note_refused(lit, sizeof lit - 1, why)
#define ROOT0 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" /* base64 of 32 zero bytes */

START_TEST(checkpoint_and_key_refusals)
{
    pl_checkpoint *cp = NULL;
    ck_assert_int_eq(pl_checkpoint_parse(NULL, "x\n", 2), PL_EINVAL);
    NOTE_REFUSED("", "note: empty");
    ck_assert_int_eq(pl_checkpoint_parse(&cp, NULL, 3), PL_EINVAL);
    size_t big = (1u << 20) + 1;
    char *huge = malloc(big);
    ck_assert_ptr_nonnull(huge);
    memset(huge, '\n', big);
    note_refused(huge, big, "larger than 1 MiB");
    free(huge);
    note_refused("o\n1\n" ROOT0 "\n\n\0sig\n", sizeof "o\n1\n" ROOT0 "\n\n\0sig\n" - 1, "contains a NUL byte");
    NOTE_REFUSED("o\n1\n" ROOT0 "\n\nsig", "must end with a newline");
    NOTE_REFUSED("o\n1\n" ROOT0 "\n", "no blank line before signature lines");
    NOTE_REFUSED("o\n1\n" ROOT0 "\n\n", "no blank line before signature lines");
    NOTE_REFUSED("o\n1\n\nsig\n", "needs origin, size and root lines");
    NOTE_REFUSED("\n1\n" ROOT0 "\n\nsig\n", "empty origin line");
    NOTE_REFUSED("o\n\n" ROOT0 "\n\nsig\n", "bad tree size line");
    NOTE_REFUSED("o\n01\n" ROOT0 "\n\nsig\n", "bad tree size line");
    NOTE_REFUSED("o\n1x\n" ROOT0 "\n\nsig\n", "bad tree size line");
    NOTE_REFUSED("o\n12345678901234567890\n" ROOT0 "\n\nsig\n", "bad tree size line");
    NOTE_REFUSED("o\n9999999999999999999\n" ROOT0 "\n\nsig\n", "tree size too large");
    NOTE_REFUSED("o\n1\nnot base64!\n\nsig\n", "not base64 of 32 bytes");
    NOTE_REFUSED("o\n1\nAAAA\n\nsig\n", "not base64 of 32 bytes");

    /* well formed but signed by nobody: parses, never verifies */
    static const char unsigned_note[] = "example.org/log\n9223372036854775807\n" ROOT0 "\n\n\xe2\x80\x94 nobody AAAA\n";
    tu_ok(pl_checkpoint_parse(&cp, unsigned_note, sizeof unsigned_note - 1));
    ck_assert_str_eq(cp->origin, "example.org/log");
    ck_assert_int_eq(cp->tree_size, INT64_MAX);
    static const unsigned char zero[32];
    ck_assert_int_eq(memcmp(cp->root_hash, zero, 32), 0);
    pl_key *key = test_key();
    ck_assert_int_eq(pl_checkpoint_verify(cp, key), PL_EVERIFY);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "no signature by key example.org/log+"));
    ck_assert_int_eq(pl_checkpoint_verify(NULL, key), PL_EINVAL);
    ck_assert_int_eq(pl_checkpoint_verify(cp, NULL), PL_EINVAL);
    pl_checkpoint_free(cp);
    pl_key_free(key);

    pl_key *k = NULL;
    ck_assert_int_eq(pl_key_parse(NULL, "x", 1), PL_EINVAL);
    ck_assert_int_eq(pl_key_parse(&k, "", 0), PL_EINVAL);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "pem: empty or too large"));
    static const char junk_priv[] = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";
    ck_assert_int_eq(pl_key_parse(&k, junk_priv, sizeof junk_priv - 1), PL_EINVAL);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "pem: not a PEM private key"));
    /* len bytes, no NUL after them (ASan sees any read past them) */
    char *junk = malloc(7);
    ck_assert_ptr_nonnull(junk);
    memcpy(junk, "garbage", 7);
    ck_assert_int_eq(pl_key_parse(&k, junk, 7), PL_EINVAL);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "pem: not a PEM public key"));
    free(junk);
    ck_assert_ptr_null(k);
    ck_assert_int_eq(pl_key_load(&k, "/nonexistent/provledger.pem"), PL_EINVAL);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "cannot read it"));
    ck_assert_int_eq(pl_key_load(&k, NULL), PL_EINVAL);
    ck_assert_int_eq(pl_key_load(NULL, "x"), PL_EINVAL);
    /* a PEM key of another algorithm */
    char path[] = "/tmp/pl_tlog_ec_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s 2>/dev/null",
             path);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(pl_key_load(&k, path), PL_EINVAL);
    ck_assert_ptr_nonnull(strstr(pl_errmsg(), "not an Ed25519 key"));
    unlink(path);
}
END_TEST

/* pl_leaf_hash is RFC 9162's SHA-256(0x00 || leaf), for every length
 * around SHA-256's block and padding boundaries, on OpenSSL's SHA-256. */
START_TEST(leaf_hash_rfc9162)
{
    unsigned char leaf[300], b[301];
    for (size_t i = 0; i < sizeof leaf; i++)
        leaf[i] = (unsigned char)(i * 7 + 3);
    for (size_t len = 0; len <= sizeof leaf; len++) {
        h32 want, got;
        b[0] = 0;
        memcpy(b + 1, leaf, len);
        SHA256(b, len + 1, want);
        tu_ok(pl_leaf_hash(got, len ? leaf : NULL, len));
        ck_assert_msg(memcmp(got, want, 32) == 0, "leaf hash of %zu bytes", len);
    }
    h32 out;
    ck_assert_int_eq(pl_leaf_hash(NULL, leaf, 1), PL_EINVAL);
    ck_assert_int_eq(pl_leaf_hash(out, NULL, 1), PL_EINVAL);
}
END_TEST

/* An export holding an erased entity, its erasure's leaf and records not
 * sealed yet verifies offline with the very summary pl_verify gives from the
 * database; a line of any file that lacks what it needs is refused, naming
 * the file. */
static int count_finding(void *ctx, const pl_finding *f)
{
    ((int64_t *)ctx)[f->kind]++;
    return 0;
}

static void export_copy_with_line(const char *from, const char *to, const char *file, const char *line)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && printf '%%s\\n' '%s' >> '%s/%s'", to, from, to, line,
             to, file);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(export_erased_and_unsealed_offline)
{
    pl_ledger *l = tu_open_new(0, 0);
    pl_key *key = test_key();
    for (int i = 0; i < 39; i++)
        insert_one(l, i); /* e0..e12, three records each */
    seal_until(NULL, NULL, l, key, NULL, 39);
    int64_t erased = 0;
    tu_ok(pl_erase(&erased, l, "e3", "a request under GDPR article 17"));
    ck_assert_int_eq(erased, 3);
    tu_ok(pl_erase(&erased, l, "e4", NULL));
    seal_until(NULL, NULL, l, key, NULL, 41); /* the two erasures' leaves */
    for (int i = 100; i < 105; i++)
        insert_one(l, i); /* unsealed: not findings */

    pl_verify_summary db, ex;
    int64_t kinds_db[8] = {0}, kinds_ex[8] = {0};
    tu_ok(pl_verify(&db, sizeof db, l, NULL, key, NULL, count_finding, kinds_db));
    ck_assert_int_eq(db.records, 44);
    ck_assert_int_eq(db.tree_size, 41);
    ck_assert_int_eq(db.unsealed, 5);
    ck_assert_int_eq(db.by_kind[PL_FINDING_ERASED], 6);
    ck_assert_int_eq(db.findings, 6);

    char dir[] = "/tmp/pl_export_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    int64_t written = 0;
    tu_ok(pl_export(&written, l, dir));
    ck_assert_int_eq(written, 44);
    tu_ok(pl_verify(&ex, sizeof ex, NULL, dir, key, NULL, count_finding, kinds_ex));
    ck_assert_int_eq(ex.records, db.records);
    ck_assert_int_eq(ex.tree_size, db.tree_size);
    ck_assert_int_eq(ex.checkpoints, db.checkpoints);
    ck_assert_int_eq(ex.unsealed, db.unsealed);
    ck_assert_int_eq(ex.findings, db.findings);
    for (int k = 0; k < 8; k++) {
        ck_assert_int_eq(ex.by_kind[k], db.by_kind[k]);
        ck_assert_int_eq(kinds_ex[k], kinds_db[k]);
    }

    static const char *const bad[][3] = {
        {"checkpoints.jsonl", "{\"x\":1}", "needs tree_size, root_hash"},
        {"keys.jsonl", "{\"x\":1}", "needs entity_id and key"},
        {"erasures.jsonl", "{\"x\":1}", "needs id, entity_id and erased_at"},
        {"records.jsonl", "{\"x\":1}", "a record needs id, entity_id"},
        {"log.jsonl", "{\"x\":1}", "needs leaf_index, kind, item_id"},
        {"records.jsonl", "[1]", "is not a JSON object"},
    };
    char copy[sizeof dir + 8];
    snprintf(copy, sizeof copy, "%s.bad", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        export_copy_with_line(dir, copy, bad[i][0], bad[i][1]);
        int rc = pl_verify(NULL, 0, NULL, copy, key, NULL, NULL, NULL);
        ck_assert_msg(rc == PL_EINVAL, "%s + %s: %d %s", bad[i][0], bad[i][1], rc, pl_errmsg());
        ck_assert_msg(strstr(pl_errmsg(), bad[i][0]) && strstr(pl_errmsg(), bad[i][2]), "%s + %s: %s", bad[i][0],
                      bad[i][1], pl_errmsg());
    }
    /* not an export at all */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir '%s'", copy, copy);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(pl_verify(NULL, 0, NULL, copy, key, NULL, NULL, NULL), PL_EINVAL);
    ck_assert_int_eq(pl_export(NULL, NULL, dir), PL_EINVAL);
    ck_assert_int_eq(pl_export(NULL, l, ""), PL_EINVAL);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", dir, copy);
    ck_assert_int_eq(system(cmd), 0);
    pl_key_free(key);
    pl_close(l);
}
END_TEST

/* The verifier reads the leaves one chunk ahead (db/cursor.c). Stopped by
 * its callback in the first chunk, with the second on its way, it must
 * collect that chunk and give its connection back clean (not dropped), and
 * the next pl_verify() on that connection must see every leaf. */
static int stop_at_first(void *ctx, const pl_finding *f)
{
    int *seen = ctx;
    (*seen)++;
    return f->kind == PL_FINDING_ERASED;
}

START_TEST(verify_stopped_early_gives_connection_back)
{
    pl_config cfg;
    tu_config(&cfg, 0);
    cfg.pool_size = 1;
    cfg.pool_wait_timeout_ms = 3000;
    pl_ledger *l = tu_open_fresh(&cfg);
    pl_key *key = test_key();
    enum { N = 3000, BATCH = 500 };
    static char ent[BATCH][24];
    for (int b = 0; b < N / BATCH; b++) {
        pl_change ch[BATCH];
        pl_receipt rec[BATCH];
        for (int i = 0; i < BATCH; i++) {
            snprintf(ent[i], sizeof ent[i], "v%d", (b * BATCH + i) % 17);
            ch[i] = tu_change(ent[i], "f", "2");
        }
        tu_ok(pl_insert_batch(rec, l, ch, BATCH));
    }
    int64_t erased = 0;
    tu_ok(pl_erase(&erased, l, "v1", "test"));
    ck_assert_int_gt(erased, 100);
    pl_seal_info info;
    do
        tu_ok(pl_seal(NULL, &info, sizeof info, l, key, NULL));
    while (info.sealed > 0);
    ck_assert_int_eq(info.tree_size, N + 1);
    pl_verify_summary sum;
    tu_ok(pl_verify(&sum, sizeof sum, l, NULL, key, NULL, NULL, NULL));
    pl_stats_info before, after;
    tu_ok(pl_stats(&before, l, sizeof before));
    int seen = 0;
    tu_ok(pl_verify(&sum, sizeof sum, l, NULL, key, NULL, stop_at_first, &seen));
    ck_assert_int_eq(seen, 1);
    ck_assert_int_eq(sum.findings, 1);
    /* The same connection: every leaf, every erased record. */
    tu_ok(pl_verify(&sum, sizeof sum, l, NULL, key, NULL, NULL, NULL));
    ck_assert_int_eq(sum.tree_size, N + 1);
    ck_assert_int_eq(sum.by_kind[PL_FINDING_ERASED], erased);
    ck_assert_int_eq(sum.findings, erased);
    tu_ok(pl_stats(&after, l, sizeof after));
    ck_assert_uint_eq(after.reconnects, before.reconnects);
    pl_key_free(key);
    pl_close(l);
}
END_TEST

int main(void)
{
    tu_require_servers();
    Suite *s = suite_create("tlog_api");
    TCase *tc = tcase_create("tlog_api");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, verifier_fuzz);
    tcase_add_test(tc, session_settings_change_nothing);
    tcase_add_test(tc, export_erased_and_unsealed_offline);
    tcase_add_test(tc, leaf_hash_rfc9162);
    tcase_add_test(tc, checkpoint_and_key_refusals);
    tcase_add_test(tc, seal_concurrent_exactly_once);
    tcase_add_test(tc, seal_same_time_across_chunks);
    tcase_add_test(tc, proofs_every_size);
    tcase_add_test(tc, verify_stopped_early_gives_connection_back);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
