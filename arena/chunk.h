/* Layer 3 of the arena library (arena/README.md): chunks.
 *
 * A chunk is a power-of-two, slot-aligned range of the region mapped for
 * one purpose: a small chunk bump-allocated by arenas, or a large chunk
 * holding one block. This layer places chunks in the region (the slot
 * bitmap), maps and unmaps them, publishes them in the slot table (what
 * arena_owns reads), recycles their metadata, and answers what a chunk's
 * tables say (its live count, its blocks' owners).
 *
 * Ownership: chunk metadata (chunk_t) lives outside the chunk, in a pool
 * that is never returned to libc, so a racing arena_owns()/
 * arena_block_arena_id() never reads freed memory. Who holds a chunk is
 * recorded in it (an open arena's list, the retained list, a pool's warm
 * list: the layers above); chunk_unmap requires that it is on none.
 * Thread safety: chunk_lookup and arena_block_arena_id from any thread;
 * everything else under the caller's one lock (the slot bitmap and the
 * global stats also take the region mutex). Failure: chunk_map returns NULL
 * when the region is exhausted or the OS refuses; nothing else fails.
 *
 * Includes only layers 2 (pages.h), 1 and 0. `struct arena` and
 * `struct retained_warm` are opaque here: the fields that name them are
 * written by the layers that define them. */
#ifndef OBJARENA_ARENA_CHUNK_H
#define OBJARENA_ARENA_CHUNK_H

#include "arena/pages.h"

typedef enum chunk_kind { CHUNK_SMALL = 0, CHUNK_LARGE = 1 } chunk_kind_t;

struct arena;          /* arena_state.h (layer 6) */
struct retained_warm;  /* retained.h (layer 4) */

/* Metadata of one chunk. Live counts: a small chunk of an open arena keeps
 * them per page (in the region's page table) and live_blocks is summed at
 * release; large and retained chunks keep live_blocks exact. */
typedef struct chunk {
    char *base;              /* first byte, chunk-aligned */
    size_t size;             /* mapped bytes (slot multiple) */
    char *tables_end;        /* side-table entries (page tables, block bits) of addresses from here on are zero */
    size_t block_size;       /* CHUNK_LARGE: requested size of its one block */
    uint64_t live_blocks;    /* allocated minus freed */
    struct arena *arena;     /* owning arena while it is open; NULL once retained */
    uint64_t arena_id;       /* id of the arena that mapped it (kept after release) */
    struct chunk *prev, *next; /* arena's chunk list, the retained list, or a pool's warm list */
    uint8_t kind;            /* chunk_kind_t */
    bool retained;           /* released arena's chunk: unmapped by the free of its last block */
    bool slow_free;          /* retained || large || adopted: free takes the slow path */
    bool poison;             /* quarantine instead of unmapping */
    bool warm;               /* parked in a pool: mapped, no blocks, owned by no arena */
    bool reuse;              /* its open arena recycles freed blocks (reuse mode) */
    bool adopted;            /* a retained chunk an open arena allocates into again (adopt.c) */
    bool adoptable_listed;   /* on the region's adoptable list (retained.c) */
    _Atomic bool owners_per_line; /* line_owner holds its lines' owners (since its first adoption) */
    struct chunk *adopt_prev, *adopt_next; /* the region's adoptable list */
    struct retained_warm *warm_list; /* a retained chunk whose free pages a pool keeps resident (retained.c) */
    /* Adopted: live blocks of earlier phases (the survivors it held when
     * adopted, less those freed since). Its arena's own live blocks at
     * release are its pages' live counts less these: a sum over pages, not
     * a walk of the spans' block bits (issue 21). */
    uint64_t foreign_live;
    struct chunk *warm_prev, *warm_next; /* that warm list */
} chunk_t;

/* Power of two in [ARENA_MIN_CHUNK_SIZE, ARENA_MAX_CHUNK_SIZE]? */
static inline bool chunk_size_valid(size_t size) {
    return size >= ARENA_MIN_CHUNK_SIZE && size <= ARENA_MAX_CHUNK_SIZE && (size & (size - 1)) == 0;
}

/* The chunk holding p, or NULL. Any pointer, any thread. */
static inline chunk_t *chunk_lookup(const void *p) { return (chunk_t *)arena_owner_of(p); }

static inline size_t chunk_first_page(const chunk_t *c) { return region_page_index(c->base); }
static inline size_t chunk_page_count(const chunk_t *c) { return c->size >> ARENA_PAGE_SHIFT; }
static inline size_t chunk_first_line(const chunk_t *c) { return region_line_index(c->base); }
static inline size_t chunk_first_slot(const chunk_t *c) { return arena_region_offset(c->base) >> REGION_SLOT_SHIFT; }

/* Does block p of small chunk c belong to the arena c->arena_id names?
 * Always, except in an adopted chunk, whose lines holding earlier phases'
 * survivors keep their own owners. */
static inline bool chunk_block_is_own(const chunk_t *c, const void *p) {
    return !c->adopted || line_owner_get(region_line_index(p)) == owner_tag(c->arena_id);
}

/* Maps a chunk of `size` bytes aligned to `align` (both slot multiples),
 * zeroed metadata but for base, size, kind and tables_end; with huge_pages,
 * a small chunk of ARENA_HUGE_PAGE_SIZE or more asks for huge pages. Not
 * published and on no list: the caller attaches it. NULL when the region is
 * exhausted or the OS refuses. */
chunk_t *chunk_map(size_t size, size_t align, chunk_kind_t kind, bool huge_pages);

/* Unpublishes c and returns its memory to the OS (or quarantines it when
 * poisoned), zeroes its side tables and recycles its metadata. c must be
 * on no list (its holder unlinked it) and hold no live block. */
void chunk_unmap(chunk_t *c);

/* Points every slot of c at owner (c itself, or NULL to unpublish). */
void chunk_publish(chunk_t *c, chunk_t *owner);

/* Makes small chunk c's tables those of a chunk with no block, and records
 * its first block's start (a warm chunk's tables were used; a fresh one's
 * are zero already). */
void chunk_reset_tables(chunk_t *c);

/* Sums the per-page live counts of small chunk c into live_blocks: those of
 * the pages below tables_end (the rest are zero). Its arena must have left
 * it (arena_leave_current), so that tables_end covers its blocks. */
uint64_t chunk_count_live(chunk_t *c);

#endif
