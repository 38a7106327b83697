/* Layer 5 of the arena library (arena/README.md): pools of warm chunks.
 *
 * A pool (arena.h: arena_pool_*) keeps empty chunks of its arenas'
 * releases mapped and faulted in (parked), and the free pages of their
 * retained chunks resident (a retained_warm_t list), within one budget,
 * max_warm_bytes, that both count against (warm_bytes +
 * warm_retained.bytes); its next arenas take them before mapping fresh
 * memory.
 *
 * Ownership: a parked chunk belongs to its pool (on no arena's list,
 * unpublished) until an arena takes it or a trim unmaps it; the warm
 * retained chunks belong to the retained layer, the list to the pool.
 * Thread safety: the caller's one lock (arena.h); the global counters take
 * the region mutex. Failure: arena_pool_create returns ARENA_EINVAL or
 * ARENA_ENOMEM; pool_park returns false when the pool has no room (the
 * caller unmaps the chunk); nothing else fails.
 *
 * Includes only layers 4 (retained.h) and below. */
#ifndef OBJARENA_ARENA_POOL_H
#define OBJARENA_ARENA_POOL_H

#include "arena/retained.h"

struct arena_pool {
    size_t chunk_size;
    size_t max_warm_bytes;
    bool huge_pages;
    chunk_t *warm;           /* parked chunks of chunk_size, linked through next */
    chunk_t *warm_small;     /* parked smaller chunks (task scopes' first ones), linked through next */
    uint64_t warm_bytes;
    uint64_t warm_chunks;
    uint64_t hits, misses, parked, trimmed_bytes;
    uint64_t arenas_open;
    retained_warm_t warm_retained; /* retained chunks of its arenas whose free pages stay resident */
    uint64_t retained_hits;  /* warm retained chunks its arenas adopted */
    uint64_t parked_emptied; /* warm retained chunks parked when their last block was freed */
};

/* Parks chunk c (empty, of a released arena, already off the arena's list)
 * if the pool has room: unpublished, warm, on the pool's list (a chunk
 * smaller than the pool's, such as a task scope's first chunk, on its
 * list of small ones, and only while a whole chunk would still fit in the
 * budget). false: no room, c untouched (the caller unmaps it). */
bool pool_park(struct arena_pool *pool, chunk_t *c);

/* Parks chunk c, a retained chunk of warm list `warm` (a pool's
 * warm_retained) whose last block was just freed and that retained_free
 * took off every list, in that pool, as pool_park does. false: no room, c
 * untouched (the caller unmaps it). Counted in the pool's parked_emptied. */
bool pool_park_emptied(retained_warm_t *warm, chunk_t *c);

/* Takes a parked chunk (its tables still those of its last use; the caller
 * attaches it), or NULL. Counts a hit or a miss. */
chunk_t *pool_take(struct arena_pool *pool);

/* Takes a parked chunk of `size` (smaller than the pool's chunk size: an
 * arena's small first chunk), or NULL. Counts a hit or a miss. */
chunk_t *pool_take_small(struct arena_pool *pool, size_t size);

/* The pool's warm retained list if retained chunk c may keep its free pages
 * resident there (c of the pool's chunk size and the budget has room for
 * its whole size; a smaller chunk, a task scope's first, only with a whole
 * chunk to spare beside it), else NULL. (The default pool too, within its one chunk:
 * a worker's scopes often run in a chunk that an earlier survivor keeps,
 * and handing its free pages back at every exit made each task fault them
 * in again.) */
retained_warm_t *pool_warm_list_for(struct arena_pool *pool, const chunk_t *c);

#endif
