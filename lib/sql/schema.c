/* Filling in the schema of the embedded SQL templates (see schema.h). The
 * SQL itself is in lib/sql/, embedded at build time as sql_registry.c. */
#include "schema.h"

#include <stdlib.h>
#include <string.h>

int pl_schema_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 63 || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

char *pl_sql_expand(const char *sql, const char *schema)
{
    size_t slen = strlen(schema), n = 0;
    for (const char *p = sql; *p; p++)
        n += (p[0] == '@' && (p[1] == 'S' || p[1] == 's') && p[2] == '@') ? slen + 2 : 1;
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const char *p = sql; *p;) {
        if (p[0] == '@' && (p[1] == 'S' || p[1] == 's') && p[2] == '@') {
            int quoted = p[1] == 'S';
            if (quoted)
                *o++ = '"';
            memcpy(o, schema, slen);
            o += slen;
            if (quoted)
                *o++ = '"';
            p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}
