/* Layer 1 of the arena library (arena/README.md): the region.
 *
 * One process-wide reservation of address space from which every chunk is
 * carved, and the side tables that describe it by address: the slot table
 * (per 64 KiB slot: its chunk), per-page tables (live counts, states,
 * crossings), block bits (per 16-byte granule: a block starts here, it is
 * dead) and line owners (per 128-byte line of an adopted chunk: its
 * blocks' arena). This header gives the layout and the index arithmetic,
 * and the inline reads and writes of block bits and line owners; what the
 * tables MEAN for chunks is for the layers above (pages.h, chunk.h,
 * retained.h).
 *
 * Ownership: the region owns its reservation and tables for the life of
 * the process (never unmapped). Thread safety: index arithmetic and the
 * ownership map (arena.h) are safe from any thread; the tables are written
 * under the caller's one lock (arena.h); `lock` guards the slot bitmap, the
 * retained and adoptable list heads, the metadata free list and `stats`.
 * Failure: region_ensure() returns ARENA_ENOMEM when no reservation of at
 * least 1 GiB could be made; nothing else here fails.
 *
 * Includes only the public arena.h and the leaf utilities (layer 0). */
#ifndef OBJARENA_ARENA_REGION_H
#define OBJARENA_ARENA_REGION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena/arena.h"
#include "arena/assert.h"
#include "arena/slots.h"

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

struct chunk; /* chunk.h (layer 3): the region only stores pointers to them */

typedef struct region {
    /* Base and size live in arena_ownership (arena.h), the one copy that
     * arena_owns() and everything below read. */
    _Atomic(struct chunk *) *slot_owner;
    uint32_t *line_owner;    /* per region line of an adopted chunk: owner tag (line_owner_get) of its blocks' arena */
    uint16_t *page_live;     /* per region page: live blocks starting in it */
    uint8_t *page_state;     /* per region page: PAGE_IN_USE or PAGE_RELEASED */
    uint64_t *block_bits;    /* two bits per 16-byte granule: a block starts there, it is dead (see below) */
    uint32_t *page_cross;    /* per region page: 1 + page index where the block crossing into it starts */
    uint8_t *page_cross_live; /* per region page: the block crossing out of it may be live (see pages.h) */
    slot_map_t slots;        /* taken: slot mapped or quarantined (chunk.c places chunks with it) */
    pthread_mutex_t lock;    /* guards slots, stats, the retained lists, the metadata pool */
    struct chunk *retained;  /* chunks of released arenas that still hold blocks (retained.c) */
    struct chunk *adoptable; /* the retained chunks that may have free lines (retained.c) */
    struct chunk *free_metadata; /* recycled chunk_t structs (chunk.c) */
    arena_global_stats_t stats;
    size_t configured_reserve;
} region_t;

extern region_t arena_region;

/* Reserves the region once (thread-safe). ARENA_OK or ARENA_ENOMEM. */
arena_error_t region_ensure(void);

/* A new arena id: process-unique, never 0, never reused (thread-safe). */
uint64_t region_new_arena_id(void);

/* The id of the latest arena whose owner tag is `tag`. */
uint64_t arena_id_from_tag(uint32_t tag);

static inline size_t region_page_index(const void *p) { return arena_region_offset(p) >> ARENA_PAGE_SHIFT; }

static inline size_t region_line_index(const void *p) { return arena_region_offset(p) >> ARENA_LINE_SHIFT; }

static inline size_t region_granule_index(const void *p) { return arena_region_offset(p) >> ARENA_GRANULE_SHIFT; }

/* The address of page `page` of the region. */
static inline char *region_page_address(size_t page) {
    return (char *)__atomic_load_n(&arena_ownership.base, __ATOMIC_RELAXED) + (page << ARENA_PAGE_SHIFT);
}

/* Does the block [p, p + size) cross a page boundary? (size > 0) */
static inline bool block_crosses_page(const void *p, size_t size) {
    return (((uintptr_t)p ^ ((uintptr_t)p + size - 1)) >> ARENA_PAGE_SHIFT) != 0;
}

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

/* Block bits, two per granule in one word per 32 granules: bit
 * 2i says a block starts at the word's granule i (set for every small-chunk
 * block in every mode), bit 2i+1 that that block is dead. One table, so a
 * free reads its block's size and marks it dead in the same word. A word
 * covers 512 bytes: four lines. */
#define BLOCK_START_BITS 0x5555555555555555ull

static inline uint64_t *block_bits_word(size_t g) { return &arena_region.block_bits[g >> 5]; }
static inline unsigned block_bits_shift(size_t g) { return (unsigned)(g & 31) << 1; }

static inline bool block_start_at(size_t g) { return (*block_bits_word(g) >> block_bits_shift(g)) & 1; }

/* Records that a block starts at granule g (every bump allocation of a
 * small chunk), or at p. */
static inline void block_start_set(size_t g) { *block_bits_word(g) |= (uint64_t)1 << block_bits_shift(g); }
static inline void block_start_mark(const void *p) { block_start_set(region_granule_index(p)); }

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
 * is needed. Budget: a load, two shifts, an and, a count of trailing zeros
 * (the free's inline path, which saves no register). */
static inline size_t block_size_in_word(size_t g) {
    uint64_t later = ((*block_bits_word(g) >> block_bits_shift(g)) >> 2) & BLOCK_START_BITS;
    return later ? (((size_t)__builtin_ctzll(later) >> 1) + 1) << ARENA_GRANULE_SHIFT : 0;
}

/* The same when the next start lies in g's word or in the next word of the
 * same 64 KiB slot (a slot never holds two chunks), else 0. For the free's
 * out-of-line half: a block of 16-128 bytes ends in the next word in ~14%
 * of frees, which went to the walk (block_span) before: that half took
 * 67.4M of hook_bench's instructions under callgrind, 37.0M now
 * (docs/benchmarks.md, "The allocation path in instructions"). */
#define BLOCK_WORDS_PER_SLOT (REGION_SLOT_SIZE >> (ARENA_GRANULE_SHIFT + 5))
static inline size_t block_size_in_two_words(size_t g) {
    size_t block = block_size_in_word(g);
    if (block)
        return block;
    size_t next_word = (g >> 5) + 1;
    if ((next_word & (BLOCK_WORDS_PER_SLOT - 1)) == 0)
        return 0; /* the next word is another slot's */
    uint64_t next = arena_region.block_bits[next_word] & BLOCK_START_BITS;
    return next ? ((32 - (g & 31)) + ((size_t)__builtin_ctzll(next) >> 1)) << ARENA_GRANULE_SHIFT : 0;
}

#endif
