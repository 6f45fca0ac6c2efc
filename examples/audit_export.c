/*
 * audit_export: every record of a period, of every entity, as CSV on
 * standard output, for an auditor's spreadsheet or an archive.
 *
 * A period can hold millions of records, so this never asks for them all
 * at once: pl_audit_open() streams the window [FROM, TO) of transaction
 * time from a server-side cursor in chunks, oldest first by
 * (transaction_time, id), and each record is written out before the next
 * is read. Memory stays the same whatever the period's size, and every
 * record comes from one snapshot of the ledger (records committed while
 * the export runs are not half in it).
 *
 * The CSV follows RFC 4180 (CRLF is not forced: lines end in "\n", as
 * PostgreSQL's COPY ... CSV writes them): a field holding a comma, a quote,
 * a line break, or nothing at all is quoted, quotes doubled. An empty
 * field without quotes is SQL NULL (no old value, no change reason), so
 * that NULL and the empty string stay apart. Columns:
 *   id,entity_id,field_name,transaction_time,valid_from,valid_to,
 *   source_type,change_reason,old_value,new_value,metadata
 * Times are RFC 3339 UTC with microseconds (valid_to may be "infinity");
 * values are JSON texts in PostgreSQL's jsonb normal form.
 *
 * Usage: audit_export FROM TO [PG_CONNINFO [REDIS_URL]] > period.csv
 *   FROM, TO: RFC 3339 instants, "now", or "any" for an open end.
 *   PG_CONNINFO, REDIS_URL: as merchant_story ($PROVLEDGER_PG,
 *   $PROVLEDGER_REDIS); $PROVLEDGER_SCHEMA picks the schema.
 * Exit status 0 when the whole period was written, 1 on an error (what
 * was written stays written; the last line may then be cut), 2 on a
 * usage error.
 *
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <provledger.h>

/* Writes one field, quoted only where RFC 4180 needs it; NULL is empty. */
static void csv_field(FILE *out, const char *s, int last)
{
    if (s) {
        int quote = *s == '\0' || strpbrk(s, ",\"\r\n") != NULL;
        if (quote) {
            putc('"', out);
            for (const char *p = s; *p; p++) {
                if (*p == '"')
                    putc('"', out);
                putc(*p, out);
            }
            putc('"', out);
        } else {
            fputs(s, out);
        }
    }
    putc(last ? '\n' : ',', out);
}

static int parse_bound(pl_time *t, const char *s)
{
    if (strcmp(s, "any") == 0) {
        *t = PL_TIME_ANY;
        return PL_OK;
    }
    if (strcmp(s, "now") == 0) {
        *t = PL_TIME_NOW;
        return PL_OK;
    }
    return pl_time_parse(t, s);
}

int main(int argc, char **argv)
{
    const char *pg = argc > 3 ? argv[3] : getenv("PROVLEDGER_PG");
    const char *redis = argc > 4 ? argv[4] : getenv("PROVLEDGER_REDIS");
    const char *schema = getenv("PROVLEDGER_SCHEMA");
    pl_time from, to;
    if (argc < 3 || argc > 5 || !pg || !*pg) {
        fprintf(stderr, "usage: audit_export FROM TO [PG_CONNINFO [REDIS_URL]] > out.csv\n");
        return 2;
    }
    if (parse_bound(&from, argv[1]) || parse_bound(&to, argv[2])) {
        fprintf(stderr, "audit_export: FROM and TO: RFC 3339, now or any: %s\n", pl_errmsg());
        return 2;
    }

    pl_config cfg;
    pl_config_init(&cfg);
    cfg.pg_conninfo = pg;
    /* The cache never answers a stream; a Redis URL is accepted so that
     * the program takes the same arguments as its siblings. */
    cfg.redis_url = (redis && *redis) ? redis : NULL;
    if (schema && *schema)
        cfg.schema = schema;
    pl_ledger *l = NULL;
    pl_iter *it = NULL;
    int rc = pl_open(&l, &cfg);
    if (rc == PL_OK)
        rc = pl_audit_open(&it, l, NULL, from, to);
    if (rc) {
        fprintf(stderr, "audit_export: %s: %s\n", pl_strerror(rc), pl_errmsg());
        pl_close(l);
        return 1;
    }

    fputs("id,entity_id,field_name,transaction_time,valid_from,valid_to,source_type,"
          "change_reason,old_value,new_value,metadata\n",
          stdout);
    const pl_record *r;
    long n = 0;
    while ((rc = pl_iter_next(&r, it)) == PL_OK) {
        /* The record is borrowed until the next pl_iter_next(): write it
         * out now, keep nothing. */
        char id[24], tt[PL_TIME_BUFSIZE], vf[PL_TIME_BUFSIZE], vt[PL_TIME_BUFSIZE];
        snprintf(id, sizeof id, "%" PRId64, r->id);
        pl_time_format(tt, sizeof tt, r->transaction_time);
        pl_time_format(vf, sizeof vf, r->valid_from);
        pl_time_format(vt, sizeof vt, r->valid_to);
        csv_field(stdout, id, 0);
        csv_field(stdout, r->entity_id, 0);
        csv_field(stdout, r->field_name, 0);
        csv_field(stdout, tt, 0);
        csv_field(stdout, vf, 0);
        csv_field(stdout, vt, 0);
        csv_field(stdout, r->source_type, 0);
        csv_field(stdout, r->change_reason, 0);
        csv_field(stdout, r->old_value, 0);
        csv_field(stdout, r->new_value, 0);
        csv_field(stdout, r->metadata, 1);
        n++;
    }
    int status = 0;
    if (rc != PL_ITEROVER) {
        fprintf(stderr, "audit_export: after %ld records: %s: %s\n", n, pl_strerror(rc),
                pl_errmsg());
        status = 1;
    }
    /* A full disk shows up here, not in the putc() calls above. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "audit_export: writing the CSV failed\n");
        status = 1;
    }
    pl_iter_free(it);
    pl_close(l);
    if (status == 0)
        fprintf(stderr, "audit_export: %ld records\n", n);
    return status;
}
