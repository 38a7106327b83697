/* Freeing: O(1). A free keeps the page's live count exact (so release can
 * be exact); in reuse mode a block with a size class also goes on its
 * arena's free list for its size class. */
#include "arena/adopt.h"

/* Fast path budget: the ownership lookup (a subtract, a compare, a load),
 * one flag test, a page-counter decrement, a counter and the block's dead
 * bit (an or); reuse mode adds the
 * block's size from the start bitmap (a load and a count-trailing-zeros for
 * blocks up to 1 KiB), a page-crossing test and two stores to push the
 * block. No register is saved: the rest is a tail call. */
/* free of a block of a large, retained or adopted chunk that is not the
 * open arena's own: each to the layer that keeps its counts. */
static void free_slow(chunk_t *c, void *ptr) {
    if (c->adopted) {
        retained_survivor_free(c, ptr); /* an earlier phase's survivor */
        return;
    }
    if (c->retained) {
        /* Its last block: a chunk whose pages a pool kept resident goes back
         * to that pool, warm, for its next arena (as at a release). */
        retained_warm_t *warm = retained_free(c, ptr);
        if (warm && !pool_park_emptied(warm, c))
            chunk_unmap(c);
        return;
    }
    /* A large block of an open arena. */
    if (c->live_blocks == 0) {
        arena_assert_internal(!"double free of an arena block");
        return; /* a double free: never let the count wrap */
    }
    c->live_blocks = 0;
    c->arena->blocks_freed++;
    arena_chunk_detach(c);
    chunk_unmap(c);
}

void arena_free_owned(void *owner, void *ptr) {
    chunk_t *c = owner;
    if (ARENA_UNLIKELY(c->slow_free)) {
        /* An adopted chunk's own blocks (all but earlier phases' survivors)
         * are freed here, not two calls away: a phase may run in one. */
        if (c->adopted && line_owner_get(region_line_index(ptr)) == owner_tag(c->arena_id))
            chunk_free_open(c, ptr);
        else
            free_slow(c, ptr);
        return;
    }
    chunk_free_open(c, ptr);
}

void arena_free(void *ptr) {
    chunk_t *c = chunk_lookup(ptr);
    if (ARENA_UNLIKELY(c == NULL)) {
        arena_assert_internal(ptr == NULL && "arena_free of a foreign pointer");
        return;
    }
    arena_free_owned(c, ptr);
}

void chunk_free_open_rare(struct arena *a, chunk_t *c, void *ptr, size_t page) {
    size_t block = chunk_block_size(c, ptr);
    if (block_crosses_page(ptr, block))
        arena_region.page_cross_live[page] = 0; /* the block crossing out of its page is dead */
    if (ARENA_LIKELY(block <= ARENA_CLASS_MAX)) {
        unsigned cls = arena_size_class(block);
        *(void **)ptr = a->free_list[cls];
        a->free_list[cls] = ptr;
    }
}

size_t arena_block_readable_size(const void *ptr) {
    chunk_t *c = chunk_lookup(ptr);
    return c ? chunk_readable_size(c, ptr) : 0;
}
