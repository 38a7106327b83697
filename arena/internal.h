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

/* Pages of the region, for per-page live counts and page hand-back. */
#define ARENA_PAGE_SHIFT 12
#define ARENA_PAGE_SIZE ((size_t)1 << ARENA_PAGE_SHIFT)
#define PAGE_IN_USE 0          /* page_state: mapped, part of the chunk */
#define PAGE_RELEASED 1        /* page_state: handed back inside a retained chunk */
/* Block starts and dead blocks are recorded per 16-byte granule (block_bits). */
#define ARENA_GRANULE_SHIFT 4
/* Lines: the unit in which later arenas reuse the free space of retained
 * chunks, and of ownership in a chunk that several arenas allocated into
 * (retained.h). 128 bytes: a survivor pins the lines it touches, not its
 * page. Measured (docs/benchmarks.md, 40k-record tasks keeping 0.1%, RSS
 * growth after 1,000 tasks against plain's): 512-byte lines 1.69x, 256
 * 1.29x, 128 1.14x, at the same speed; the owner table costs 4 bytes a
 * line (3.1%) of adopted chunks only. */
#define ARENA_LINE_SHIFT 7
#define ARENA_LINE_SIZE ((size_t)1 << ARENA_LINE_SHIFT)
#define ARENA_GRANULES_PER_LINE (ARENA_LINE_SIZE >> ARENA_GRANULE_SHIFT)
_Static_assert(ARENA_GRANULES_PER_LINE <= 32 && 32 % ARENA_GRANULES_PER_LINE == 0,
               "a line's block bits lie in one word of block_bits");

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
    char *tables_end;        /* side-table entries (page tables, block bits) of addresses from here on are zero */
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
    bool reuse;              /* its open arena recycles freed blocks (reuse mode) */
    bool adopted;            /* a retained chunk an open arena allocates into again (retained.c) */
    bool adoptable_listed;   /* on the region's adoptable list */
    _Atomic bool owners_per_line; /* line_owner holds its lines' owners (since its first adoption) */
    struct chunk *adopt_prev, *adopt_next; /* the region's adoptable list */
    struct arena_pool *warm_pool; /* a retained chunk whose free pages a pool keeps resident (retained.c) */
    /* Adopted: live blocks of earlier phases (the survivors it held when
     * adopted, less those freed since). Its arena's own live blocks at
     * release are its pages' live counts less these: a sum over pages, not
     * a walk of the spans' block bits (issue 21). */
    uint64_t foreign_live;
    struct chunk *warm_prev, *warm_next; /* that pool's warm retained list */
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
    chunk_t *warm_retained;  /* retained chunks of its arenas whose free pages stay resident */
    uint64_t warm_retained_bytes, warm_retained_chunks; /* (their whole size counts against max_warm_bytes) */
    uint64_t retained_hits;  /* warm retained chunks its arenas adopted */
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
    bool adopt;              /* refills may take retained chunks' free lines (retained.c) */
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
    char *span_cursor;       /* current adopted chunk: where the search for its next span starts */
    char *overflow_bump;     /* current adopted chunk: the overflow span for medium blocks (retained.c) */
    char *overflow_end;
    uint64_t bytes_adopted;  /* bytes of the spans taken in adopted chunks */
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
    uint32_t *line_owner;    /* per region line of an adopted chunk: owner tag (line_owner_get) of its blocks' arena */
    uint16_t *page_live;     /* per region page: live blocks starting in it */
    uint8_t *page_state;     /* per region page: PAGE_IN_USE or PAGE_RELEASED */
    uint64_t *block_bits;    /* two bits per 16-byte granule: a block starts there, it is dead (see below) */
    uint32_t *page_cross;    /* per region page: 1 + page index where the block crossing into it starts */
    uint8_t *page_cross_live; /* per region page: the block crossing out of it may be live (see page_pinned) */
    uint64_t *slot_used;     /* bitmap: slot mapped or quarantined */
    size_t slot_count;
    size_t first_free_hint;  /* no free slot below this index */
    pthread_mutex_t lock;    /* guards slot_used, stats, the retained list, the metadata pool */
    chunk_t *retained;       /* chunks of released arenas that still hold blocks */
    chunk_t *adoptable;      /* the retained chunks that may have free lines (retained.c) */
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

static inline size_t region_line_index(const void *p) { return arena_region_offset(p) >> ARENA_LINE_SHIFT; }

static inline size_t chunk_first_line(const chunk_t *c) { return region_line_index(c->base); }

/* The owner tag of line `line` of an adopted chunk: the low 32 bits of the
 * id of the arena whose blocks start in it (4 bytes a line: 3.1% of adopted
 * chunks, not 6.25%). Every use compares it with a known arena's tag
 * (owner_tag), and arena_block_arena_id rebuilds the id from the ids issued
 * so far, exact for any arena of the last 2^32 (racy reads are fine: tags
 * are written whole, and only while the line holds no live block). */
static inline uint32_t owner_tag(uint64_t id) { return (uint32_t)id; }
static inline uint32_t line_owner_get(size_t line) {
    return __atomic_load_n(&arena_region.line_owner[line], __ATOMIC_RELAXED);
}
static inline void line_owner_set(size_t line, uint64_t id) {
    __atomic_store_n(&arena_region.line_owner[line], owner_tag(id), __ATOMIC_RELAXED);
}

/* The id of the latest arena whose owner tag is `tag` (arena.c). */
uint64_t arena_id_from_tag(uint32_t tag);

/* Does block p of small chunk c belong to c's open arena? Always, except in
 * an adopted chunk, whose lines holding earlier phases' survivors keep
 * their own owners. */
static inline bool chunk_block_is_own(const chunk_t *c, const void *p) {
    return !c->adopted || line_owner_get(region_line_index(p)) == owner_tag(c->arena_id);
}

static inline size_t chunk_first_slot(const chunk_t *c) { return arena_region_offset(c->base) >> REGION_SLOT_SHIFT; }

static inline size_t region_granule_index(const void *p) { return arena_region_offset(p) >> ARENA_GRANULE_SHIFT; }

/* Block bits, two per granule in one word per 32 granules: bit
 * 2i says a block starts at the word's granule i (set for every small-chunk
 * block in every mode), bit 2i+1 that that block is dead. One table, so a
 * free reads its block's size and marks it dead in the same word. A word
 * covers 512 bytes: four lines. */
#define BLOCK_START_BITS 0x5555555555555555ull

static inline uint64_t *block_bits_word(size_t g) { return &arena_region.block_bits[g >> 5]; }
static inline unsigned block_bits_shift(size_t g) { return (unsigned)(g & 31) << 1; }

static inline bool block_start_at(size_t g) { return (*block_bits_word(g) >> block_bits_shift(g)) & 1; }

/* Records that a block starts at p (every bump allocation of a small chunk). */
static inline void block_start_mark(const void *p) {
    size_t g = region_granule_index(p);
    *block_bits_word(g) |= (uint64_t)1 << block_bits_shift(g);
}

/* Records that the block starting at granule g is dead (retained.h): a
 * start without a dead bit is a live block. Set by every free, cleared when
 * a free list hands the block out again. */
static inline void block_dead_set(size_t g) { *block_bits_word(g) |= (uint64_t)2 << block_bits_shift(g); }
static inline void block_dead_clear(size_t g) { *block_bits_word(g) &= ~((uint64_t)2 << block_bits_shift(g)); }
static inline void block_dead_mark(const void *p) { block_dead_set(region_granule_index(p)); }

/* The size of the block at p. Bump allocation packs blocks back to back
 * (every block of up to ARENA_CLASS_MAX is exactly its class's size in
 * reuse mode), and an arena leaving a chunk or span marks a dead block at
 * its bump pointer, so a block ends where the next one starts, or at `limit`
 * (its arena's bump pointer, or the chunk's end). One bit per 16 bytes
 * instead of a size: with the dead bit, 1.6% of the arena's bytes. */
static inline size_t block_span(const void *p, const char *limit) {
    size_t first = region_granule_index(p), g = first + 1, end = region_granule_index(limit);
    while (g < end) {
        uint64_t starts = (*block_bits_word(g) >> block_bits_shift(g)) & BLOCK_START_BITS;
        if (starts) {
            size_t next = g + ((size_t)__builtin_ctzll(starts) >> 1);
            if (next < end)
                return (next - first) << ARENA_GRANULE_SHIFT;
            break;
        }
        g = (g | 31) + 1;
    }
    return (size_t)(limit - (const char *)p);
}

/* The size of the block starting at granule g when the next start lies in
 * g's own word (blocks of up to 512 bytes), else 0. Every start after g is
 * a block start below the bump pointer or a dead block's (bits are
 * cleared when a chunk or span is taken and set by bump allocation and by
 * leaving a chunk or span), and a word never spans two chunks, so no bound
 * is needed. */
static inline size_t block_size_in_word(size_t g) {
    uint64_t later = ((*block_bits_word(g) >> block_bits_shift(g)) >> 2) & BLOCK_START_BITS;
    return later ? (((size_t)__builtin_ctzll(later) >> 1) + 1) << ARENA_GRANULE_SHIFT : 0;
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
    size_t block = block_size_in_word(region_granule_index(p));
    if (ARENA_LIKELY(block != 0))
        return block;
    return block_span(p, chunk_block_limit(c, p));
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

/* Bytes readable from p inside chunk c (see arena_block_readable_size). */
size_t chunk_readable_size(const chunk_t *c, const char *p);

/* free of a block in a large, retained or adopted chunk that is not the
 * open arena's own (retained.c takes the last two). */
void chunk_free_slow(chunk_t *c, void *ptr);

/* Side-table entries read by releases (arena_testing_sieve_reads). Under
 * the caller's one lock. */
extern unsigned long long arena_sieve_reads;

/* Sums the per-page live counts of a small chunk into live_blocks. */
uint64_t chunk_count_live(chunk_t *c);

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

/* Zeroes the block bits of granules [first, end). */
void block_bits_clear(size_t first, size_t end);

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

#include "arena/retained.h"

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
