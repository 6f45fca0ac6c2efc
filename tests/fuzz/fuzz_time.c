/* pl_time_parse on any text; every instant it accepts formats (pl_time_format)
 * to text that parses back to the same instant. */
#include "fuzz.h"

#include <provledger.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_cstr(data, size);
    pl_time t;
    if (pl_time_parse(&t, s) == PL_OK && t != PL_TIME_INFINITY) {
        FZ_ASSERT(t >= PL_TIME_MIN && t <= PL_TIME_MAX);
        char buf[64];
        size_t n = pl_time_format(buf, sizeof buf, t);
        FZ_ASSERT(n > 0 && n < sizeof buf);
        pl_time back;
        FZ_ASSERT(pl_time_parse(&back, buf) == PL_OK);
        FZ_ASSERT(back == t);
    }
    free(s);
    return 0;
}
