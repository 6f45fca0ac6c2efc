/* Unit tests of the SQLSTATE table (lib/db/sqlstate.h): what each server
 * error means to the library, read off one table. No servers. */
#include <check.h>
#include <stdlib.h>

#include "provledger.h"
#include "sqlstate.h"

static void means(const char *state, const char *constraint, int code, int effect)
{
    const pl_sqlstate_rule *r = pl_sqlstate_lookup(state, constraint);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->code == code && r->effect == effect, "%s (%s): code %d effect %d, want %d %d", state,
                  constraint ? constraint : "-", r->code, r->effect, code, effect);
}

START_TEST(codes)
{
    means("57014", NULL, PL_ETIMEOUT, PL_STATE_CANCELLED);
    means("08006", NULL, PL_ECONNECT, PL_STATE_BROKEN);
    means("08P01", NULL, PL_ECONNECT, PL_STATE_BROKEN);
    means("57P01", NULL, PL_ECONNECT, PL_STATE_BROKEN);
    means("57P03", NULL, PL_ECONNECT, PL_STATE_BROKEN);
    means("42P01", NULL, PL_ESCHEMA, PL_STATE_PLAIN);
    means("42883", NULL, PL_ESCHEMA, PL_STATE_PLAIN);
    means("3F000", NULL, PL_ESCHEMA, PL_STATE_PLAIN);
    means("42703", NULL, PL_ESCHEMA, PL_STATE_PLAIN);
    means("PLC01", NULL, PL_ECONFLICT, PL_STATE_PLAIN);
    means("PLC02", NULL, PL_ECONFLICT, PL_STATE_PLAIN);
    means("PLA01", NULL, PL_EPERM, PL_STATE_PLAIN);
    means("42501", NULL, PL_EPERM, PL_STATE_PLAIN);
    means("40P01", NULL, PL_EDB, PL_STATE_ROLLED_BACK);
    means("40001", NULL, PL_EDB, PL_STATE_ROLLED_BACK);
    means("22023", NULL, PL_EINVAL, PL_STATE_PLAIN);
    means("22003", NULL, PL_EINVAL, PL_STATE_PLAIN);
    /* A check violation is the caller's only for the valid interval. */
    means("23514", "provenance_valid_interval", PL_EINVAL, PL_STATE_PLAIN);
    ck_assert_ptr_nonnull(pl_sqlstate_lookup("23514", "provenance_valid_interval")->message);
    means("23514", "provenance_metadata_object", PL_EDB, PL_STATE_PLAIN);
    means("23514", NULL, PL_EDB, PL_STATE_PLAIN);
    /* Everything else, and nothing at all, is the server's error. */
    means("XX000", NULL, PL_EDB, PL_STATE_PLAIN);
    means("53200", NULL, PL_EDB, PL_STATE_PLAIN);
    means("", NULL, PL_EDB, PL_STATE_PLAIN);
    /* Prefixes are of classes, not of arbitrary text. */
    means("0", NULL, PL_EDB, PL_STATE_PLAIN);
    means("5", NULL, PL_EDB, PL_STATE_PLAIN);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unit_sqlstate");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, codes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
