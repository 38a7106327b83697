/* Freeing: O(1). A free keeps the page's live count exact (so release can
 * be exact); in reuse mode a block with a size class also goes on its
 * arena's free list for its size class. */
#include "arena/internal.h"

/* Fast path budget: the ownership lookup (a subtract, a compare, a load),
 * one flag test, a page-counter decrement and a counter; reuse mode adds the
 * block's size from the start bitmap (a load and a count-trailing-zeros for
 * blocks up to ~1 KiB) and two stores to push the block. */
void arena_free(void *ptr) {
    chunk_t *c = chunk_map_lookup(ptr);
    if (ARENA_UNLIKELY(c == NULL)) {
        arena_assert_internal(ptr == NULL && "arena_free of a foreign pointer");
        return;
    }
    if (ARENA_UNLIKELY(c->slow_free)) {
        /* An adopted chunk's own blocks (all but earlier phases' survivors)
         * are freed here, not two calls away: a phase may run in one. */
        if (c->adopted && page_owner_get(region_page_index(ptr)) == c->arena_id)
            chunk_free_open(c, ptr);
        else
            chunk_free_slow(c, ptr);
        return;
    }
    chunk_free_open(c, ptr);
}

size_t arena_block_readable_size(const void *ptr) {
    chunk_t *c = chunk_map_lookup(ptr);
    return c ? chunk_readable_size(c, ptr) : 0;
}
