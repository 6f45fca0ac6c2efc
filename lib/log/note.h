/* Ed25519 keys and C2SP signed notes and checkpoints
 * (c2sp.org/signed-note, c2sp.org/tlog-checkpoint). */
#ifndef PL_NOTE_H
#define PL_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include "provledger.h"

/* The 32-byte Ed25519 public key of k. */
const unsigned char *pl_key_public_raw(const pl_key *k);

/* The checkpoint body: "<origin>\n<size>\n<base64 root>\n" (malloc'd). */
int pl_checkpoint_body(char **out, const char *origin, int64_t size, const unsigned char root[32]);

/* Signs body (text ending in '\n') as a note by key `name`: the body, a
 * blank line, and "\u2014 <name> <base64(key id || signature)>\n". */
int pl_note_sign(char **note, size_t *len, const char *body, const char *name, const pl_key *k);

#endif
