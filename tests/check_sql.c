/* The embedded SQL, without servers: released migrations are byte for byte
 * what tests/migrations.sha256 records (a database that ran one must never
 * see it change), migrations are numbered 1..N, and every statement of the
 * registry uses exactly the placeholders $1..$n its file declares.
 *
 * SPDX-License-Identifier: MIT */
#include <check.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "result.h"
#include "schema.h"

/* The hex SHA-256 of migration m's text. */
static void migration_sha256(const pl_migration *m, char hex[65])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(ctx);
    ck_assert(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL));
    ck_assert(EVP_DigestUpdate(ctx, m->text, strlen(m->text)));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ck_assert(EVP_DigestFinal_ex(ctx, md, &n));
    EVP_MD_CTX_free(ctx);
    ck_assert_uint_eq(n, 32);
    for (unsigned int i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

START_TEST(migrations_numbered)
{
    for (size_t i = 0; i < pl_migration_count; i++)
        ck_assert_msg(pl_migrations[i].version == (int)i + 1,
                      "migration %zu is %s, numbered %d: migrations are numbered 1..N without gaps",
                      i + 1, pl_migrations[i].file, pl_migrations[i].version);
    ck_assert_msg(pl_migration_count == PL_SCHEMA_VERSION, "%zu migrations, PL_SCHEMA_VERSION is %d",
                  pl_migration_count, PL_SCHEMA_VERSION);
}
END_TEST

START_TEST(migrations_frozen)
{
    /* meson passes the source directory; by hand, run from tests/. */
    const char *dir = getenv("PL_TESTS_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/migrations.sha256", dir ? dir : ".");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot read %s (set PL_TESTS_DIR to the tests directory)", path);
    int recorded[256] = {0};
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (line[0] == '#' || line[0] == '\n')
            continue;
        int version;
        char want[65], file[256];
        ck_assert_msg(sscanf(line, "%d %64s %255s", &version, want, file) == 3 && strlen(want) == 64,
                      "%s:%d: expected \"version sha256 file\"", path, lineno);
        ck_assert_msg(version >= 1 && version < 256 && !recorded[version], "%s:%d: version %d again or out of range",
                      path, lineno, version);
        recorded[version] = 1;
        ck_assert_msg((size_t)version <= pl_migration_count,
                      "migration %d (%s) was released but is gone: released migrations stay", version, file);
        const pl_migration *m = &pl_migrations[version - 1];
        char have[65];
        migration_sha256(m, have);
        ck_assert_msg(strcmp(have, want) == 0,
                      "migration %d (lib/sql/migrations/%s) changed: its text has SHA-256 %s, %s records %s "
                      "(%s). Databases that ran it would not see the change: write a new migration instead",
                      version, m->file, have, path, want, file);
    }
    fclose(f);
    for (size_t i = 0; i < pl_migration_count; i++) {
        char have[65];
        migration_sha256(&pl_migrations[i], have);
        ck_assert_msg(recorded[i + 1], "migration %zu (lib/sql/migrations/%s) has no line in %s: add \"%zu %s %s\"",
                      i + 1, pl_migrations[i].file, path, i + 1, have, pl_migrations[i].file);
    }
}
END_TEST

/* Placeholders $n in sql (outside quoted strings) are exactly 1..nparams. */
static void check_placeholders(const pl_stmt_def *d)
{
    int used[100] = {0};
    int quoted = 0;
    for (const char *p = d->sql; *p; p++) {
        if (*p == '\'')
            quoted = !quoted;
        if (quoted || *p != '$' || p[1] < '0' || p[1] > '9')
            continue;
        int n = 0;
        while (p[1] >= '0' && p[1] <= '9' && n < 100)
            n = n * 10 + (*++p - '0');
        ck_assert_msg(n >= 1 && n <= d->nparams, "statement %s uses $%d but declares %d parameters", d->name, n,
                      d->nparams);
        used[n] = 1;
    }
    for (int n = 1; n <= d->nparams; n++)
        ck_assert_msg(used[n], "statement %s declares %d parameters but never uses $%d", d->name, d->nparams, n);
}

START_TEST(statements_placeholders)
{
    for (int i = 0; i < PL_SQL_COUNT; i++) {
        const pl_stmt_def *d = &pl_sql_registry[i];
        ck_assert_msg(d->name && d->sql && *d->sql, "registry entry %d is empty", i);
        ck_assert_msg(d->nparams >= 0 && d->nparams <= 12, "statement %s: %d parameters", d->name, d->nparams);
        check_placeholders(d);
    }
}
END_TEST

START_TEST(registry_consistent)
{
    for (int i = 0; i < PL_SQL_COUNT; i++)
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(pl_sql_registry[i].name, pl_sql_registry[j].name) != 0, "two statements are %s",
                          pl_sql_registry[i].name);
    /* Each entry as its file says (spot checks of the generator). */
    ck_assert_int_eq(pl_sql_registry[PL_SQL_AUDIT].result_binary, 1);
    ck_assert_int_eq(pl_sql_registry[PL_SQL_AUDIT].params_binary, 0);
    ck_assert_int_eq(pl_sql_registry[PL_SQL_AUDIT].class, PL_CLASS_HEAVY);
    ck_assert_int_eq(pl_sql_registry[PL_SQL_APPEND].class, PL_CLASS_WRITE);
    ck_assert_int_eq(pl_sql_registry[PL_SQL_APPEND].nparams, 11);
    ck_assert_int_eq(pl_sql_registry[PL_SQL_APPEND].params_binary, 1);
    ck_assert_str_eq(pl_sql_registry[PL_SQL_TX_COMMIT].sql, "COMMIT");
}
END_TEST

/* result.c decodes records by column position: statements whose rows are
 * records select PL_RECORD_COLUMNS first. The SQL no longer spells the
 * macro, so this holds it to it. */
START_TEST(record_columns)
{
    static const char head[] = "SELECT " PL_RECORD_COLUMNS " FROM ";
    static const int ids[] = {PL_SQL_ASOF_TV,      PL_SQL_ASOF_T,      PL_SQL_SNAPSHOT_TV,
                              PL_SQL_SNAPSHOT_T,   PL_SQL_RANGE_FIELD, PL_SQL_RANGE_ALL,
                              PL_SQL_HISTORY_FIELD, PL_SQL_HISTORY_ALL, PL_SQL_AUDIT};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        const pl_stmt_def *d = &pl_sql_registry[ids[i]];
        ck_assert_msg(strncmp(d->sql, head, sizeof head - 1) == 0,
                      "statement %s does not start with SELECT PL_RECORD_COLUMNS FROM", d->name);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sql");
    TCase *tc = tcase_create("embedded sql");
    tcase_add_test(tc, migrations_numbered);
    tcase_add_test(tc, migrations_frozen);
    tcase_add_test(tc, statements_placeholders);
    tcase_add_test(tc, registry_consistent);
    tcase_add_test(tc, record_columns);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
