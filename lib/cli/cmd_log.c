/*
 * provledger: the commands of the transparency log: seal, checkpoint,
 * verify, prove, erase and export (README "Tamper evidence").
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Loads the key file of option OPT. */
static int load_key(const cli *c, const char *opt, pl_key **out)
{
    const char *path = cli_get(c, opt);
    if (!path)
        return cli_bad(c, "--%s FILE is required", opt);
    int rc = pl_key_load(out, path);
    return rc == PL_OK ? CLI_OK : cli_fail(c, rc, NULL);
}

/* Reads a checkpoint note from FILE (--checkpoint). */
static int load_checkpoint(const cli *c, pl_checkpoint **out)
{
    *out = NULL;
    const char *path = cli_get(c, "checkpoint");
    if (!path)
        return CLI_OK;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_bad(c, "--checkpoint: cannot read %s: %s", path, strerror(errno));
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    int big = n == sizeof buf;
    fclose(f);
    if (big)
        return cli_bad(c, "--checkpoint: %s is larger than a checkpoint note can be", path);
    int rc = pl_checkpoint_parse(out, buf, n);
    if (rc != PL_OK)
        return cli_bad(c, "--checkpoint: %s: %s", path, pl_errmsg());
    return CLI_OK;
}

static void hex32(char out[65], const unsigned char *h)
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[h[i] >> 4];
        out[2 * i + 1] = d[h[i] & 15];
    }
    out[64] = '\0';
}

static void jw_hash(cli_json *j, const unsigned char *h)
{
    char x[65];
    hex32(x, h);
    jw_str(j, x);
}

static int print_line(const cli *c, cli_json *j)
{
    int bad = jw_line(j, stdout);
    jw_free(j);
    if (bad) {
        cli_note(c, "out of memory");
        return CLI_ERROR;
    }
    return CLI_OK;
}

/* --- seal ----------------------------------------------------------------- */

static int print_note(const pl_checkpoint *cp)
{
    return fwrite(cp->note, 1, cp->note_len, stdout) == cp->note_len && fflush(stdout) == 0 ? 0 : -1;
}

int cmd_seal(cli *c)
{
    long long interval;
    int follow;
    int st = cli_follow_options(c, 250, &follow, &interval);
    if (st != CLI_OK)
        return st;
    pl_key *key = NULL;
    st = load_key(c, "key", &key);
    if (st != CLI_OK)
        return st;
    if (!pl_key_has_private(key)) {
        pl_key_free(key);
        return cli_bad(c, "--key: %s holds a public key; sealing needs the private key", cli_get(c, "key"));
    }
    if ((st = cli_open(c)) != CLI_OK) {
        pl_key_free(key);
        return st;
    }
    int64_t printed_size = -1, backdated = 0;
    do {
        pl_checkpoint *cp = NULL;
        pl_seal_info info;
        int rc = pl_seal(&cp, &info, sizeof info, c->l, key, cli_get(c, "origin"));
        if (rc != PL_OK) {
            st = cli_fail(c, rc, NULL);
            /* Following, a passing failure (a restart) is reported and
             * retried; a tampered log or a bad argument stops. */
            if (!follow || rc == PL_EVERIFY || rc == PL_EINVAL)
                break;
        } else {
            if (info.backdated > 0) {
                cli_note(c, "%lld record%s refused as BACKDATED: not sealed (run provledger verify)",
                         (long long)info.backdated, info.backdated == 1 ? "" : "s");
                backdated += info.backdated;
            }
            if (cp->tree_size != printed_size && print_note(cp) != 0) {
                pl_checkpoint_free(cp);
                st = cli_finish(c, CLI_ERROR);
                break;
            }
            printed_size = cp->tree_size;
            st = CLI_OK;
        }
        pl_checkpoint_free(cp);
    } while (follow && cli_follow_wait(interval));
    pl_key_free(key);
    if (st == CLI_OK && backdated > 0)
        st = CLI_FINDINGS;
    return cli_finish(c, st);
}

/* --- checkpoint ---------------------------------------------------------- */

int cmd_checkpoint(cli *c)
{
    if (cli_get(c, "verifier-key")) {
        pl_key *pub = NULL;
        int st = load_key(c, "pub", &pub);
        if (st != CLI_OK)
            return st;
        const char *origin = cli_get(c, "origin");
        pl_checkpoint *cp = NULL;
        if (!origin) {
            /* The key name is the log's origin: ask the ledger. */
            if ((st = cli_open(c)) != CLI_OK) {
                pl_key_free(pub);
                return st;
            }
            int rc = pl_checkpoint_latest(&cp, c->l);
            if (rc != PL_OK) {
                pl_key_free(pub);
                return cli_fail(c, rc, rc == PL_NOT_FOUND ? "no checkpoint yet: give --origin" : NULL);
            }
            origin = cp->origin;
        }
        char *vkey = NULL;
        int rc = pl_key_verifier_string(&vkey, pub, origin);
        pl_checkpoint_free(cp);
        pl_key_free(pub);
        if (rc != PL_OK)
            return cli_fail(c, rc, NULL);
        printf("%s\n", vkey);
        pl_free(vkey);
        return cli_finish(c, CLI_OK);
    }
    if (cli_get(c, "pub") || cli_get(c, "origin"))
        return cli_bad(c, "--pub and --origin go with --verifier-key");
    int st = cli_open(c);
    if (st != CLI_OK)
        return st;
    pl_checkpoint *cp = NULL;
    int rc = pl_checkpoint_latest(&cp, c->l);
    if (rc != PL_OK)
        return cli_fail(c, rc, rc == PL_NOT_FOUND ? "nothing was sealed yet" : NULL);
    int bad = print_note(cp);
    pl_checkpoint_free(cp);
    return cli_finish(c, bad ? CLI_ERROR : CLI_OK);
}

/* --- verify ---------------------------------------------------------------- */

static int print_finding(void *ctx, const pl_finding *f)
{
    (void)ctx;
    cli_json j;
    jw_init(&j);
    jw_obj(&j);
    jw_key(&j, "finding");
    jw_str(&j, pl_finding_name(f->kind));
    jw_key(&j, "id");
    if (f->id)
        jw_int(&j, (long long)f->id);
    else
        jw_null(&j);
    jw_key(&j, "leaf_index");
    if (f->leaf_index >= 0)
        jw_int(&j, (long long)f->leaf_index);
    else
        jw_null(&j);
    jw_key(&j, "entity_id");
    jw_str(&j, f->entity_id);
    jw_key(&j, "detail");
    jw_str(&j, f->detail);
    jw_obj_end(&j);
    int bad = jw_line(&j, stdout);
    jw_free(&j);
    return bad;
}

int cmd_verify(cli *c)
{
    const char *export_dir = cli_get(c, "export");
    pl_key *pub = NULL;
    pl_checkpoint *trusted = NULL;
    int st = load_key(c, "pub", &pub);
    if (st == CLI_OK)
        st = load_checkpoint(c, &trusted);
    if (st == CLI_OK && !export_dir)
        st = cli_open(c);
    if (st != CLI_OK) {
        pl_key_free(pub);
        pl_checkpoint_free(trusted);
        return st;
    }
    pl_verify_summary s;
    memset(&s, 0, sizeof s);
    int rc = pl_verify(&s, sizeof s, export_dir ? NULL : c->l, export_dir, pub, trusted, print_finding, NULL);
    pl_key_free(pub);
    pl_checkpoint_free(trusted);
    if (rc != PL_OK && rc != PL_EVERIFY)
        return cli_fail(c, rc, NULL);
    cli_json j;
    jw_init(&j);
    jw_obj(&j);
    jw_key(&j, "summary");
    jw_obj(&j);
    jw_key(&j, "verified");
    jw_bool(&j, rc == PL_OK);
    jw_key(&j, "records");
    jw_int(&j, (long long)s.records);
    jw_key(&j, "tree_size");
    jw_int(&j, (long long)s.tree_size);
    jw_key(&j, "checkpoints");
    jw_int(&j, (long long)s.checkpoints);
    jw_key(&j, "unsealed");
    jw_int(&j, (long long)s.unsealed);
    jw_key(&j, "findings");
    jw_int(&j, (long long)s.findings);
    for (int k = PL_FINDING_ALTERED; k <= PL_FINDING_ERASED; k++) {
        jw_key(&j, pl_finding_name(k));
        jw_int(&j, (long long)s.by_kind[k]);
    }
    jw_obj_end(&j);
    jw_obj_end(&j);
    st = print_line(c, &j);
    return cli_finish(c, st != CLI_OK ? st : rc == PL_OK ? CLI_OK : CLI_FINDINGS);
}

/* --- prove ----------------------------------------------------------------- */

static void jw_proof(cli_json *j, const pl_proof *p)
{
    jw_key(j, "proof");
    jw_arr(j);
    for (size_t i = 0; i < p->count; i++)
        jw_hash(j, p->hashes + i * PL_HASH_SIZE);
    jw_arr_end(j);
}

int cmd_prove(cli *c)
{
    const char *cons = cli_get(c, "consistency");
    long long id = 0, size = 0;
    if (cons && c->npos > 0)
        return cli_bad(c, "give a record ID or --consistency SIZE, not both");
    if (!cons && c->npos == 0)
        return cli_bad(c, "give a record ID, or --consistency SIZE");
    if (cons && cli_parse_int(c, "--consistency", cons, 1, INT64_MAX, &size) != CLI_OK)
        return CLI_USAGE;
    if (!cons && cli_parse_int(c, "ID", c->pos[0], 1, INT64_MAX, &id) != CLI_OK)
        return CLI_USAGE;
    pl_checkpoint *cp = NULL;
    int st = load_checkpoint(c, &cp);
    if (st == CLI_OK)
        st = cli_open(c);
    if (st != CLI_OK) {
        pl_checkpoint_free(cp);
        return st;
    }
    pl_proof *p = NULL;
    int rc = cons ? pl_prove_consistency(&p, c->l, size, cp) : pl_prove_inclusion(&p, c->l, id, cp);
    pl_checkpoint_free(cp);
    if (rc != PL_OK)
        return cli_fail(c, rc, NULL);
    cli_json j;
    jw_init(&j);
    jw_obj(&j);
    if (cons) {
        jw_key(&j, "from_size");
        jw_int(&j, (long long)p->from_size);
        jw_key(&j, "to_size");
        jw_int(&j, (long long)p->tree_size);
        jw_key(&j, "from_root");
        jw_hash(&j, p->from_root);
        jw_key(&j, "to_root");
        jw_hash(&j, p->root_hash);
    } else {
        jw_key(&j, "id");
        jw_int(&j, (long long)p->record_id);
        jw_key(&j, "leaf_index");
        jw_int(&j, (long long)p->leaf_index);
        jw_key(&j, "tree_size");
        jw_int(&j, (long long)p->tree_size);
        jw_key(&j, "leaf_hash");
        jw_hash(&j, p->leaf_hash);
        jw_key(&j, "root_hash");
        jw_hash(&j, p->root_hash);
    }
    jw_proof(&j, p);
    jw_obj_end(&j);
    pl_proof_free(p);
    return cli_finish(c, print_line(c, &j));
}

/* --- erase and export -------------------------------------------------- */

int cmd_erase(cli *c)
{
    const char *entity = cli_get(c, "entity");
    if (!entity)
        return cli_bad(c, "--entity ID is required");
    int st = cli_open(c);
    if (st != CLI_OK)
        return st;
    int64_t n = 0;
    int rc = pl_erase(&n, c->l, entity, cli_get(c, "reason"));
    if (rc != PL_OK)
        return cli_fail(c, rc, NULL);
    cli_json j;
    jw_init(&j);
    jw_obj(&j);
    jw_key(&j, "entity_id");
    jw_str(&j, entity);
    jw_key(&j, "erased");
    jw_int(&j, (long long)n);
    jw_obj_end(&j);
    return cli_finish(c, print_line(c, &j));
}

int cmd_export(cli *c)
{
    const char *out = cli_get(c, "out");
    if (!out)
        return cli_bad(c, "--out DIR is required");
    int st = cli_open(c);
    if (st != CLI_OK)
        return st;
    int64_t n = 0;
    int rc = pl_export(&n, c->l, out);
    if (rc != PL_OK)
        return cli_fail(c, rc, NULL);
    cli_json j;
    jw_init(&j);
    jw_obj(&j);
    jw_key(&j, "out");
    jw_str(&j, out);
    jw_key(&j, "records");
    jw_int(&j, (long long)n);
    jw_obj_end(&j);
    return cli_finish(c, print_line(c, &j));
}
