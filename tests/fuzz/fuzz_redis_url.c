/* Redis URL parsing (lib/redis/redis.c) on any text. */
#include "fuzz.h"

#include <provledger.h>

#include "redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_cstr(data, size);
    int rc = pl_redis_check_url(s);
    FZ_ASSERT(rc == PL_OK || rc == PL_EINVAL);
    free(s);
    return 0;
}
