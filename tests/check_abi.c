/* A program built against a frozen, released copy of <provledger.h>
 * (tests/abi/VERSION/), run against the library being built: the ABI
 * promise. It uses only what that header declares, the way a program of
 * the time would, and places every struct it hands the library at the end
 * of a readable page followed by an inaccessible one, so that a library
 * reading or writing past the caller's (older, smaller) struct crashes it.
 * Plain C without Check: Check's header is not part of what is frozen.
 * Exits 77 without the test servers (PL_TEST_PG). */
#include <provledger.h>

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "check_abi %s: line %d: %s failed (%s)\n", ABI_NAME, \
                    __LINE__, #cond, pl_errmsg());                                        \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

/* `size` bytes that end where a PROT_NONE page begins. */
static void *guarded(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (size + page - 1) / page + 1;
    char *m = mmap(NULL, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m + (pages - 1) * page, page, PROT_NONE) != 0) {
        perror("check_abi: mmap");
        exit(1);
    }
    return m + (pages - 1) * page - size;
}

int main(void)
{
    const char *pg = getenv("PL_TEST_PG");
    if (!pg || !*pg) {
        fprintf(stderr, "check_abi: PL_TEST_PG is not set (run under tests/servers.sh)\n");
        return 77;
    }
    char schema[64];
    snprintf(schema, sizeof schema, "abi_%ld", (long)getpid());

    pl_config *cfg = guarded(sizeof(pl_config));
    memset(cfg, 0x5a, sizeof *cfg);
    pl_config_init(cfg);
    CHECK(cfg->version == PL_CONFIG_VERSION);
    CHECK(cfg->pool_size == 8 && cfg->allow_import == 0 && cfg->redis_url == NULL);
    cfg->pg_conninfo = pg;
    cfg->schema = schema;
    cfg->pool_size = 2;

    pl_ledger *l = NULL;
    int rc = pl_open(&l, cfg);
    CHECK(rc == PL_OK);
    if (rc != PL_OK)
        return 1;
    CHECK(pl_migrate(l) == PL_OK);

    pl_change *c = guarded(2 * sizeof(pl_change));
    pl_change init = PL_CHANGE_INIT;
    c[0] = init;
    c[0].entity_id = "abi-entity";
    c[0].field_name = "f";
    c[0].new_value = "{\"v\": 1}";
    c[0].source_type = "abi";
    c[1] = c[0];
    c[1].field_name = "g";
    c[1].idempotency_key = "abi-key";
    pl_receipt *rec = guarded(2 * sizeof(pl_receipt));
    CHECK(pl_insert_batch(rec, l, c, 2) == PL_OK);
    CHECK(rec[0].id > 0 && rec[1].id > rec[0].id && rec[1].transaction_time >= rec[0].transaction_time);
    pl_receipt *again = guarded(sizeof(pl_receipt));
    CHECK(pl_insert(again, l, &c[1]) == PL_OK);
    CHECK(again->id == rec[1].id);

    pl_result *r = NULL;
    CHECK(pl_current(&r, l, "abi-entity", "f", 0) == PL_OK);
    const pl_record *one = pl_result_get(r, 0);
    CHECK(one && strcmp(one->new_value, "{\"v\": 1}") == 0 && one->id == rec[0].id &&
          strcmp(one->metadata, "{}") == 0 && one->valid_to == PL_TIME_INFINITY);
    pl_result_free(r);
    CHECK(pl_history(&r, l, "abi-entity", NULL, 0) == PL_OK && pl_result_count(r) == 2);
    pl_result_free(r);

    pl_iter *it = NULL;
    CHECK(pl_audit_open(&it, l, "abi", PL_TIME_ANY, PL_TIME_ANY) == PL_OK);
    const pl_record *ar;
    int n = 0;
    while (pl_iter_next(&ar, it) == PL_OK)
        n++;
    CHECK(n == 2);
    pl_iter_free(it);

    /* pl_stats fills only the caller's (older) struct. */
    pl_stats_info *s = guarded(sizeof(pl_stats_info));
    CHECK(pl_stats(s, l, sizeof *s) == PL_OK);
    CHECK(s->inserts == 2 && s->pool_size == 2 && s->queries > 0);

    char *health = NULL;
    CHECK(pl_health(&health, l) == PL_OK && health && strstr(health, "\"alerts\""));
    pl_free(health);

    pl_close(l);
    if (failures)
        return 1;
    printf("check_abi: a program built against the ABI %s header works against this build\n", ABI_NAME);
    return 0;
}
