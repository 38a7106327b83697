/* Layer 6 of the arena library (arena/README.md): an open arena's state.
 *
 * struct arena (the handle of arena.h), the list of the chunks it holds,
 * and what follows from its bump pointer: where its blocks end and the
 * inline half of its free. The layers above (adopt.c, then alloc.c,
 * free.c, arena.c) are the arena's own code; below this header nothing
 * knows an arena's fields.
 *
 * Ownership: the caller owns the handle (arena.h); the arena holds the
 * chunks on its list (small, large and adopted) until its release hands
 * each to a pool, the retained layer or the OS. Thread safety: the
 * caller's one lock (arena.h). Failure: nothing here fails.
 *
 * Includes only layers 5 (pool.h) and below. */
#ifndef OBJARENA_ARENA_ARENA_STATE_H
#define OBJARENA_ARENA_ARENA_STATE_H

#include "arena/pool.h"
#include "arena/size_class.h"

struct arena {
    /* Fast-path fields first: one cache line. */
    char *bump;              /* next free byte of the current chunk */
    char *end;               /* end of the current chunk (bump == end == NULL when none) */
    chunk_t *current;
    char *last_block;        /* most recent block, for in-place realloc */
    size_t small_max;        /* requests above this get a large chunk */
    /* Blocks allocated = carved + reused: a free-list pop counts once
     * (arena_alloc's fast path budget, alloc.c). */
    uint64_t blocks_carved;  /* bump, span and large blocks */
    uint64_t bytes_requested;
    uint64_t blocks_freed;
    uint64_t blocks_reused;  /* reuse mode: allocations served from a free list */
    bool reuse;
    bool adopt;              /* refills may take retained chunks' free lines (adopt.c) */
    /* Reuse mode: per size class, a free list threaded through freed blocks. */
    void *free_list[ARENA_CLASSES];
    /* Slow-path state. */
    struct arena_pool *pool;
    bool huge_pages;
    chunk_t *chunks;         /* every mapped chunk of this arena (small and large) */
    size_t chunk_size;
    size_t first_chunk_size; /* 0, or the smaller size of its first fresh chunk (arena_config_t) */
    size_t byte_limit;
    uint64_t bytes_mapped;
    uint64_t peak_mapped;
    uint64_t chunks_mapped;
    uint64_t large_mappings;
    uint64_t chunks_adopted;
    char *span_cursor;       /* current adopted chunk: where the search for its next span starts */
    char *overflow_bump;     /* current adopted chunk: the overflow span for medium blocks (adopt.c) */
    char *overflow_end;
    uint64_t bytes_adopted;  /* bytes of the spans taken in adopted chunks */
    uint64_t id;
    arena_error_t last_error;
    bool poison;
    bool closed;
    arena_stats_t at_release;
};

/* Links chunk c into arena a's list and byte counts (an adopted chunk:
 * the retained layer handed it over). */
void arena_chunk_link(struct arena *a, chunk_t *c);

/* Makes c (fresh from chunk_map, or warm from a pool) a's: its flags, its
 * tables reset (small), linked, and published for arena_owns. */
void arena_chunk_attach(struct arena *a, chunk_t *c);

/* Unlinks c from its open arena's list and byte count. */
void arena_chunk_detach(chunk_t *c);

static inline size_t arena_round_size(size_t size) {
    /* 0 -> 16; otherwise up to a multiple of 16. Callers ensure no overflow. */
    return ((size | (size == 0)) + (ARENA_ALIGNMENT - 1)) & ~(size_t)(ARENA_ALIGNMENT - 1);
}

/* The end of small chunk c's blocks at p: the open arena's bump pointer
 * for its current chunk's blocks below it, else the chunk's end. */
static inline const char *chunk_block_limit(const chunk_t *c, const void *p) {
    const struct arena *a = c->arena;
    if (a && a->current == c && (const char *)p < a->bump)
        return a->bump;
    return c->base + c->size;
}

/* The size of block p of small chunk c (any arena, open or released): from
 * its bitmap word, else up to the next start. */
static inline size_t chunk_block_size(const chunk_t *c, const void *p) {
    size_t block = block_size_in_two_words(region_granule_index(p));
    if (ARENA_LIKELY(block != 0))
        return block;
    return block_span(p, chunk_block_limit(c, p));
}

/* Bytes readable from p inside chunk c (see arena_block_readable_size). */
static inline size_t chunk_readable_size(const chunk_t *c, const char *p) {
    if (c->kind == CHUNK_LARGE)
        return c->block_size;
    return chunk_block_size(c, p); /* exact: the next start (retained.h) */
}

/* chunk_free_open's rare half (free.c): a block whose size the start
 * bitmap's word does not give (it ends in the next word, is over 512
 * bytes, or is last before the bump pointer), or that crosses a page. */
void chunk_free_open_rare(struct arena *a, chunk_t *c, void *ptr, size_t page);

/* Frees block ptr of small chunk c of an open arena (its own block): the
 * body of arena_free's fast path, shared with adopted chunks. The common
 * case (reuse mode, a block of up to 512 bytes whose end the next start bit
 * in its block bits word marks, inside one page) stays here and needs no saved
 * register; its class is its size / 16 (the linear classes). Every free
 * marks the block dead (one bit), so a released arena's chunks say exactly
 * which of their blocks are live. */
_Static_assert(32 << ARENA_GRANULE_SHIFT <= ARENA_LINEAR_MAX, "a block bits word's blocks have linear classes");
static inline void chunk_free_open(chunk_t *c, void *ptr) {
    uintptr_t offset = arena_region_offset(ptr); /* (one load of the base: atomic loads are not merged) */
    size_t page = offset >> ARENA_PAGE_SHIFT;
    arena_assert_internal(arena_region.page_live[page] > 0);
    arena_region.page_live[page]--;
    struct arena *a = c->arena;
    a->blocks_freed++;
    block_dead_set(offset >> ARENA_GRANULE_SHIFT); /* (cleared if listed and taken again) */
    if (!a->reuse)
        return;
    size_t block = block_size_in_word(offset >> ARENA_GRANULE_SHIFT);
    if (ARENA_LIKELY(block != 0 && !block_crosses_page(ptr, block))) {
        size_t cls = block >> 4;
        *(void **)ptr = a->free_list[cls];
        a->free_list[cls] = ptr;
        return;
    }
    chunk_free_open_rare(a, c, ptr, page);
}

#endif
