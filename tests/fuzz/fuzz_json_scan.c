/* The CLI's JSON-lines reader (lib/cli/json_scan.c): members of an object,
 * string tokens, the canonical form. */
#include "fuzz.h"

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_cstr(data, size);
    cli_jmember *m = NULL;
    size_t n = 0, off = 0;
    const char *why = NULL;
    int rc = cli_json_members(s, size, &m, &n, &off, &why);
    FZ_ASSERT(rc == 0 || rc == 1 || rc == -1);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            FZ_ASSERT(m[i].val >= s && m[i].val + m[i].val_len <= s + size);
            if (m[i].val_len && m[i].val[0] == '"') {
                char *str = NULL;
                if (cli_json_string(m[i].val, m[i].val_len, &str, &off, &why) == 0)
                    FZ_ASSERT(str != NULL);
                free(str);
            }
        }
        cli_jmembers_free(m, n);
    } else if (rc == 1) {
        FZ_ASSERT(off <= size && why);
    }
    char *str = NULL;
    if (cli_json_string(s, size, &str, &off, &why) == 0)
        FZ_ASSERT(str != NULL);
    free(str);
    char *canon = cli_json_canonical(s);
    if (canon) {
        /* Canonical is a fixed point. */
        char *again = cli_json_canonical(canon);
        FZ_ASSERT(again && strcmp(again, canon) == 0);
        free(again);
    }
    free(canon);
    free(s);
    return 0;
}
