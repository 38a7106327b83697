/* Freeing: O(1). In this mode a free never makes memory reusable inside the
 * arena; it keeps each chunk's live count exact so release can be exact. */
#include "arena/internal.h"

/* Fast path budget: the ownership lookup (a subtract, a compare, a load),
 * one flag test, a decrement and a counter increment. */
void arena_free(void *ptr) {
    chunk_t *c = chunk_map_lookup(ptr);
    if (ARENA_UNLIKELY(c == NULL)) {
        arena_assert_internal(ptr == NULL && "arena_free of a foreign pointer");
        return;
    }
    if (ARENA_UNLIKELY(c->slow_free)) {
        chunk_free_slow(c);
        return;
    }
    arena_assert_internal(c->live_blocks > 0);
    c->live_blocks--;
    c->arena->blocks_freed++;
}

size_t arena_block_readable_size(const void *ptr) {
    chunk_t *c = chunk_map_lookup(ptr);
    return c ? chunk_readable_size(c, ptr) : 0;
}
