/* RFC 9162 Merkle trees: hashes, a streaming builder, and proofs.
 *
 * Stored-hash model: a log stores every leaf hash (level 0) and the hash
 * of every complete subtree at levels 4, 8, 12, ... (level L, index i
 * covers leaves [i * 2^L, (i + 1) * 2^L)); proofs ask for those only and
 * compute every other subtree from them. */
#ifndef PL_MERKLE_H
#define PL_MERKLE_H

#include <stddef.h>
#include <stdint.h>

typedef unsigned char pl_hash[32];

/* SHA-256(0x00 || leaf) and SHA-256(0x01 || left || right). */
void pl_merkle_leaf(pl_hash out, const void *leaf, size_t len);
void pl_merkle_node(pl_hash out, const pl_hash left, const pl_hash right);
/* The root of the empty tree: SHA-256 of nothing. */
void pl_merkle_empty(pl_hash out);

/* Whether the stored-hash model keeps subtrees of this level. */
#define PL_MERKLE_STORED_LEVEL(level) ((level) == 0 || (level) % 4 == 0)

/* A tree built leaf by leaf with O(log n) memory: the perfect subtrees of
 * its right edge, largest first. */
typedef struct pl_merkle_builder {
    pl_hash stack[64];
    int level[64];
    int depth;
    int64_t size;
} pl_merkle_builder;

/* Called for every complete subtree a push forms at a stored level >= 4. */
typedef void (*pl_merkle_node_fn)(void *ctx, int level, int64_t index, const pl_hash h);

/* Starts a tree of `size` leaves from its frontier (`count` hashes, the
 * perfect subtrees of size's binary decomposition, largest first; none
 * for 0). Returns -1 when count does not fit size. */
int pl_merkle_builder_init(pl_merkle_builder *b, int64_t size, const pl_hash *frontier, size_t count);
void pl_merkle_builder_push(pl_merkle_builder *b, const pl_hash leaf, pl_merkle_node_fn on_node, void *ctx);
void pl_merkle_builder_root(const pl_merkle_builder *b, pl_hash out);
int64_t pl_merkle_builder_size(const pl_merkle_builder *b);
/* Copies the frontier (at most 64 hashes). */
void pl_merkle_builder_frontier(const pl_merkle_builder *b, pl_hash *out, size_t *count);

/* Supplies a stored hash (PL_MERKLE_STORED_LEVEL(level)); 0 or -1. */
typedef int (*pl_subtree_fn)(void *ctx, int level, int64_t index, pl_hash out);

/* The root of leaves [start, end) (end > start), from stored hashes. */
int pl_merkle_subtree_root(pl_hash out, int64_t start, int64_t end, pl_subtree_fn get, void *ctx);
/* RFC 9162 PATH(index, D[size]) into proof (room for 64); -1 when a hash
 * is missing or the arguments are out of range. */
int pl_merkle_prove_inclusion(pl_hash *proof, size_t *count, int64_t index, int64_t size,
                              pl_subtree_fn get, void *ctx);
/* RFC 9162 PROOF(m, D[n]), 0 < m <= n (room for 128). */
int pl_merkle_prove_consistency(pl_hash *proof, size_t *count, int64_t m, int64_t n, pl_subtree_fn get,
                                void *ctx);

/* RFC 9162 2.1.3.2 and 2.1.4.2; 0 when the proof verifies, else -1. */
int pl_merkle_verify_inclusion(const pl_hash leaf, int64_t index, int64_t size, const pl_hash *proof,
                               size_t count, const pl_hash root);
int pl_merkle_verify_consistency(int64_t m, int64_t n, const pl_hash root_m, const pl_hash root_n,
                                 const pl_hash *proof, size_t count);

#endif
