/* Internal structures of the arena library. Not part of the public API. */
#ifndef OBJARENA_ARENA_INTERNAL_H
#define OBJARENA_ARENA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "arena/arena.h"
#include "arena/assert.h"
#include "arena/size_class.h"

#define ARENA_LIKELY(x) __builtin_expect(!!(x), 1)
#define ARENA_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* The region is cut into slots of 64 KiB; every chunk covers whole slots and
 * every slot of a mapped chunk points at the chunk's metadata. */
#define REGION_SLOT_SHIFT 16
#define REGION_SLOT_SIZE ((size_t)1 << REGION_SLOT_SHIFT)
_Static_assert(REGION_SLOT_SHIFT == 16, "arena_owner_of (arena.h) indexes slots by offset >> 16");
#define REGION_MIN_RESERVE ((size_t)1 << 30)

/* Pages of the region, for per-page live counts and size classes. */
#define ARENA_PAGE_SHIFT 12
#define ARENA_PAGE_SIZE ((size_t)1 << ARENA_PAGE_SHIFT)
#define PAGE_IN_USE 0          /* page_state: mapped, part of the chunk */
#define PAGE_RELEASED 1        /* page_state: handed back inside a retained chunk */
/* Reuse mode: block starts are recorded per 16-byte granule, one bit each. */
#define ARENA_GRANULE_SHIFT 4

typedef enum chunk_kind { CHUNK_SMALL = 0, CHUNK_LARGE = 1 } chunk_kind_t;

/* Metadata of one chunk. Lives outside the chunk (so poisoning or
 * page-granular release never touches it) in a pool that is never returned
 * to libc, so a racing arena_owns() never reads freed memory.
 *
 * Room to grow: per-page live counts and size classes (in-scope reuse,
 * page-granular release) hang off this struct; the bump discipline means at
 * most one block crosses each page boundary, so per-page counts need no
 * per-block header. */
typedef struct chunk {
    char *base;              /* first byte, chunk-aligned */
    size_t size;             /* mapped bytes (slot multiple) */
    char *used_end;          /* bump position when the chunk stopped being current */
    size_t block_size;       /* CHUNK_LARGE: requested size of its one block */
    uint64_t live_blocks;    /* allocated minus freed */
    struct arena *arena;     /* owning arena while it is open; NULL once retained */
    uint64_t arena_id;       /* id of the arena that mapped it (kept after release) */
    struct chunk *prev, *next; /* arena's chunk list, or the global retained list */
    uint8_t kind;            /* chunk_kind_t */
    bool retained;           /* released arena's chunk: unmapped by the free of its last block */
    bool slow_free;          /* retained || large: free takes the slow path */
    bool poison;             /* quarantine instead of unmapping */
    bool warm;               /* parked in a pool: mapped, no blocks, owned by no arena */
    bool reuse;              /* its blocks' starts are recorded (reuse mode) */
    bool adopted;            /* a retained chunk an open arena allocates into again (adopt.c) */
    bool adoptable_listed;   /* on the region's adoptable list */
    _Atomic bool owners_per_page; /* page_owner holds its pages' owners (since its first adoption) */
    struct chunk *adopt_prev, *adopt_next; /* the region's adoptable list */
} chunk_t;
/* Live counts: a small chunk of an open arena keeps them per page (in the
 * region's page table) and live_blocks is summed at release; large and
 * retained chunks keep live_blocks exact. */

struct arena_pool {
    size_t chunk_size;
    size_t max_warm_bytes;
    bool huge_pages;
    chunk_t *warm;           /* parked chunks, linked through next */
    uint64_t warm_bytes;
    uint64_t warm_chunks;
    uint64_t hits, misses, parked, trimmed_bytes;
    uint64_t arenas_open;
};

struct arena {
    /* Fast-path fields first: one cache line. */
    char *bump;              /* next free byte of the current chunk */
    char *end;               /* end of the current chunk (bump == end == NULL when none) */
    chunk_t *current;
    char *last_block;        /* most recent block, for in-place realloc */
    size_t small_max;        /* requests above this get a large chunk */
    uint64_t blocks_allocated;
    uint64_t bytes_requested;
    uint64_t blocks_freed;
    uint64_t blocks_reused;  /* reuse mode: allocations served from a free list */
    bool reuse;
    bool adopt;              /* refills may take retained chunks' free pages (adopt.c) */
    /* Reuse mode: per size class, a free list threaded through freed blocks. */
    void *free_list[ARENA_CLASSES];
    /* Slow-path state. */
    struct arena_pool *pool;
    bool huge_pages;
    chunk_t *chunks;         /* every mapped chunk of this arena (small and large) */
    size_t chunk_size;
    size_t byte_limit;
    uint64_t bytes_mapped;
    uint64_t peak_mapped;
    uint64_t chunks_mapped;
    uint64_t large_mappings;
    uint64_t chunks_adopted;
    size_t span_cursor;      /* current adopted chunk: first page not yet considered for a span */
    uint64_t id;
    arena_error_t last_error;
    bool poison;
    bool closed;
    arena_stats_t at_release;
};

/* --- region.c: the reservation, slot table and process-wide counters --- */

typedef struct region {
    /* Base and size live in arena_ownership (arena.h), the one copy that
     * arena_owns() and everything below read. */
    _Atomic(chunk_t *) *slot_owner;
    uint64_t *page_owner;    /* per region page of an adopted chunk: id of the arena whose blocks it holds */
    uint16_t *page_live;     /* per region page: live blocks starting in it */
    uint8_t *page_state;     /* per region page: PAGE_IN_USE or PAGE_RELEASED */
    uint64_t *block_starts;  /* bit per 16-byte granule: a reuse-mode block starts there */
    uint32_t *page_cross;    /* per region page: 1 + page index where the block crossing into it starts */
    uint8_t *page_cross_live; /* per region page: the block crossing out of it may be live (see page_pinned) */
    uint64_t *slot_used;     /* bitmap: slot mapped or quarantined */
    size_t slot_count;
    size_t first_free_hint;  /* no free slot below this index */
    pthread_mutex_t lock;    /* guards slot_used, stats, the retained list, the metadata pool */
    chunk_t *retained;       /* chunks of released arenas that still hold blocks */
    chunk_t *adoptable;      /* the retained chunks worth adopting (adopt.c) */
    chunk_t *free_metadata;  /* recycled chunk_t structs */
    arena_global_stats_t stats;
    size_t configured_reserve;
} region_t;

extern region_t arena_region;

/* Reserves the region once (thread-safe). ARENA_OK or ARENA_ENOMEM. */
arena_error_t region_ensure(void);

/* The chunk holding p, or NULL. Any pointer, any thread. */
static inline chunk_t *chunk_map_lookup(const void *p) { return (chunk_t *)arena_owner_of(p); }

static inline size_t region_page_index(const void *p) { return arena_region_offset(p) >> ARENA_PAGE_SHIFT; }

/* Does the block [p, p + size) cross a page boundary? (size > 0) */
static inline bool block_crosses_page(const void *p, size_t size) {
    return (((uintptr_t)p ^ ((uintptr_t)p + size - 1)) >> ARENA_PAGE_SHIFT) != 0;
}

static inline size_t chunk_first_page(const chunk_t *c) { return region_page_index(c->base); }

static inline size_t chunk_page_count(const chunk_t *c) { return c->size >> ARENA_PAGE_SHIFT; }

/* Id of the arena whose blocks page `page` holds (racy reads are fine: ids
 * are written whole, and only while the page holds no live block). */
static inline uint64_t page_owner_get(size_t page) {
    return __atomic_load_n(&arena_region.page_owner[page], __ATOMIC_RELAXED);
}
static inline void page_owner_set(size_t page, uint64_t id) {
    __atomic_store_n(&arena_region.page_owner[page], id, __ATOMIC_RELAXED);
}

/* Does block p of small chunk c belong to c's open arena? Always, except in
 * an adopted chunk, whose pages pinned by earlier phases' survivors keep
 * their own owners (and have no start bits). */
static inline bool chunk_block_is_own(const chunk_t *c, const void *p) {
    return !c->adopted || page_owner_get(region_page_index(p)) == c->arena_id;
}

static inline size_t chunk_first_slot(const chunk_t *c) { return arena_region_offset(c->base) >> REGION_SLOT_SHIFT; }

static inline size_t region_granule_index(const void *p) { return arena_region_offset(p) >> ARENA_GRANULE_SHIFT; }

/* Reuse mode: records that a block starts at p. */
static inline void block_start_mark(const void *p) {
    size_t g = region_granule_index(p);
    arena_region.block_starts[g >> 6] |= (uint64_t)1 << (g & 63);
}

/* Reuse mode: the size of the block at p. Bump allocation packs blocks back
 * to back and every block of up to ARENA_CLASS_MAX is exactly its class's
 * size, so a block ends where the next one starts, or at `limit` (its
 * chunk's bump pointer or used_end) if it is the last. One bit per 16 bytes
 * instead of a class byte: 0.8% of the arena's bytes, not 6.25%. */
static inline size_t block_span(const void *p, const char *limit) {
    size_t first = region_granule_index(p), g = first + 1, end = region_granule_index(limit);
    while (g < end) {
        uint64_t word = arena_region.block_starts[g >> 6] >> (g & 63);
        if (word) {
            size_t next = g + (size_t)__builtin_ctzll(word);
            if (next < end)
                return (next - first) << ARENA_GRANULE_SHIFT;
            break;
        }
        g = (g | 63) + 1;
    }
    return (size_t)(limit - (const char *)p);
}

/* Reuse mode: the size of the block starting at granule g when the next
 * start lies in g's own bitmap word (blocks of up to 1 KiB), else 0. Every
 * set bit after g is a block start below the bump pointer (bits are cleared
 * when a chunk or span is taken and set only by bump allocation), and a
 * word never spans two chunks, so no bound is needed. */
static inline size_t block_size_in_word(size_t g) {
    uint64_t later = (arena_region.block_starts[g >> 6] >> (g & 63)) >> 1;
    return later ? ((size_t)__builtin_ctzll(later) + 1) << ARENA_GRANULE_SHIFT : 0;
}

/* Reuse mode: the size of the block at p in small chunk c of an open arena:
 * from its bitmap word, else up to the next start or the chunk's bump
 * pointer. */
static inline size_t chunk_reuse_block_size(const chunk_t *c, const void *p) {
    size_t block = block_size_in_word(region_granule_index(p));
    if (ARENA_LIKELY(block != 0))
        return block;
    const struct arena *a = c->arena;
    return block_span(p, a->current == c ? a->bump : c->used_end);
}

/* --- chunk.c: mapping and unmapping chunks --- */

/* Maps a chunk of `size` bytes aligned to `align` (both slot multiples) for
 * arena `a`, links it into the arena's list and publishes it in the slot
 * table. NULL when the region is exhausted or the OS refuses. */
chunk_t *chunk_map(struct arena *a, size_t size, size_t align, chunk_kind_t kind);

/* Unpublishes and returns the chunk's memory to the OS (or quarantines it
 * when poisoned), unlinks it from its arena or the retained list, and
 * recycles its metadata. */
void chunk_unmap(chunk_t *c);

/* Detaches a chunk that still holds live blocks from its arena and moves it
 * to the global retained list. */
void chunk_retain(chunk_t *c);

/* Takes a retained chunk off the retained (and adoptable) list and out of
 * the retained stats. Region lock held. */
void retained_unlink(chunk_t *c);

/* Bytes readable from p inside chunk c (see arena_block_readable_size). */
size_t chunk_readable_size(const chunk_t *c, const char *p);

/* free of a block in a large or retained chunk. */
void chunk_free_slow(chunk_t *c, void *ptr);

/* Hands back the block-start bits of a chunk of a closing reuse arena
 * (realloc then bounds blocks by pages, as in bump mode). */
void chunk_drop_block_starts(chunk_t *c);

/* Sums the per-page live counts of a small chunk into live_blocks. */
uint64_t chunk_count_live(chunk_t *c);

/* Sums the live counts of the pages of small chunk c that arena `id` owns. */
uint64_t chunk_count_live_owned(const chunk_t *c, uint64_t id);

/* Hands back to the OS every page of a retained chunk that holds no live
 * block and that no live block crosses into. Returns the bytes released. */
size_t chunk_release_free_pages(chunk_t *c);

/* Records that a bump block [p, p+size) crosses page boundaries. */
void chunk_mark_crossing(char *p, size_t size);

/* Parks an empty chunk of an open arena in its pool, if the pool has room.
 * false: the caller unmaps it. */
bool pool_park(struct arena_pool *pool, chunk_t *c);
/* Takes a warm chunk for arena a, or NULL. */
chunk_t *pool_take(struct arena_pool *pool, struct arena *a);

/* Links a chunk into its arena's list and publishes it (shared by fresh and
 * warm chunks). */
void chunk_attach(struct arena *a, chunk_t *c);

/* Zeroes a chunk's range of the block-start bitmap. */
void chunk_clear_block_starts(chunk_t *c);

/* Unlinks a chunk from its open arena's list and its byte count. */
void chunk_detach(chunk_t *c);

/* Points every slot of c at owner (c itself, or NULL to unpublish). */
void chunk_publish(chunk_t *c, chunk_t *owner);

/* Power of two in [ARENA_MIN_CHUNK_SIZE, ARENA_MAX_CHUNK_SIZE]? */
bool arena_valid_chunk_size(size_t size);

/* chunk_free_open's rare half (free.c): a block whose size the start
 * bitmap's word does not give (over 1 KiB, or last before the bump
 * pointer), or that crosses a page. */
void chunk_free_open_rare(struct arena *a, chunk_t *c, void *ptr, size_t page);

/* Frees block ptr of small chunk c of an open arena (its own block): the
 * body of arena_free's fast path, shared with adopted chunks. The common
 * case (reuse mode, a block of up to 1 KiB whose end the next start bit in
 * its bitmap word marks, inside one page) stays here and needs no saved
 * register; its class is its size / 16 (the linear classes). */
_Static_assert(64 << ARENA_GRANULE_SHIFT <= ARENA_LINEAR_MAX, "a bitmap word's blocks have linear classes");
static inline void chunk_free_open(chunk_t *c, void *ptr) {
    uintptr_t offset = arena_region_offset(ptr); /* (one load of the base: atomic loads are not merged) */
    size_t page = offset >> ARENA_PAGE_SHIFT;
    arena_assert_internal(arena_region.page_live[page] > 0);
    arena_region.page_live[page]--;
    struct arena *a = c->arena;
    a->blocks_freed++;
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

/* --- adopt.c: retained chunks back in use --- */

/* Takes a retained chunk with a run of free pages of at least `block` bytes
 * into arena a and makes that run current. false: none (a is unchanged). */
bool adopt_retained_chunk(struct arena *a, size_t block);

/* Makes the next run of free pages (>= block bytes) of a's current, adopted
 * chunk current. false: none left (a is unchanged). */
bool adopt_next_span(struct arena *a, size_t block);

/* Before the arena's current chunk or span changes: records where its last
 * block ends (used_end, or a start bit in an adopted chunk). */
void arena_leave_current(struct arena *a);

/* free of an earlier phase's survivor in an adopted chunk (arena_free frees
 * the adopting arena's own blocks itself). */
void adopted_survivor_free(chunk_t *c, void *ptr);

/* Puts a retained chunk on, or takes it off, the adoptable list as its
 * free pages warrant. Region lock held. */
void adoptable_update(chunk_t *c);

/* Takes c off the adoptable list, if on it. Region lock held. */
void adoptable_unlink(chunk_t *c);

/* Links a chunk into its arena's list and byte counts. */
void chunk_link(struct arena *a, chunk_t *c);

/* --- alloc.c --- */

/* arena_alloc when the bump pointer cannot take the request: `block` is the
 * bytes it would take there (size rounded up, or its class's size in reuse
 * mode). */
void *arena_alloc_slow(struct arena *a, size_t size, size_t block);

static inline size_t arena_round_size(size_t size) {
    /* 0 -> 16; otherwise up to a multiple of 16. Callers ensure no overflow. */
    return ((size | (size == 0)) + (ARENA_ALIGNMENT - 1)) & ~(size_t)(ARENA_ALIGNMENT - 1);
}

#endif
