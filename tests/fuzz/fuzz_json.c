/* JSON validation and number handling (lib/base/validate.c): UTF-8, JSON
 * text, objects only, and a whole change whose new_value and metadata are
 * the input. The first byte picks what is checked. */
#include "fuzz.h"

#include <provledger.h>

#include "validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned mode = data[0];
    char *s = fz_cstr(data + 1, size - 1);
    /* The checks take C strings: the text ends at the first NUL. */
    int utf8 = pl_utf8_valid(s, strlen(s));
    int any = pl_check_json("new_value", s, 0);
    int obj = pl_check_json("metadata", s, 1);
    /* An object is JSON; JSON is valid UTF-8 without NUL. */
    FZ_ASSERT(obj != PL_OK || any == PL_OK);
    FZ_ASSERT(any != PL_OK || utf8);
    if (mode & 1) {
        pl_change c = PL_CHANGE_INIT;
        c.entity_id = "e";
        c.field_name = "f";
        c.source_type = "fuzz";
        c.new_value = s;
        c.metadata = (mode & 2) ? s : NULL;
        int rc = pl_validate_changes(&c, 1);
        FZ_ASSERT(rc == PL_OK || rc == PL_EINVAL);
        FZ_ASSERT(rc != PL_OK || any == PL_OK);
    }
    free(s);
    return 0;
}
