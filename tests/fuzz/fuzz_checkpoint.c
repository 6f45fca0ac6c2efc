/* Checkpoint notes (lib/log/note.c): pl_checkpoint_parse on any bytes, and
 * the signature check of whatever it accepts against a fixed key (whose
 * genuine notes are in the seed corpus). */
#include "fuzz.h"

#include <provledger.h>

static const char pem[] = "-----BEGIN PRIVATE KEY-----\n"
                          "MC4CAQAwBQYDK2VwBCIEIASDzwwCXbyC1OwCSpzzjjKUtpkSuFNqGOZ+cpGryDba\n"
                          "-----END PRIVATE KEY-----\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pl_key *key;
    if (!key && pl_key_parse(&key, pem, strlen(pem)) != PL_OK)
        abort();
    pl_checkpoint *cp = NULL;
    int rc = pl_checkpoint_parse(&cp, (const char *)data, size);
    FZ_ASSERT((rc == PL_OK) == (cp != NULL));
    if (rc == PL_OK) {
        FZ_ASSERT(cp->tree_size >= 0 && cp->origin && cp->note_len == size);
        int v = pl_checkpoint_verify(cp, key);
        FZ_ASSERT(v == PL_OK || v < 0);
        pl_checkpoint_free(cp);
    }
    return 0;
}
