/* Mapping, unmapping and retaining chunks: the slow paths that talk to the
 * region's bitmap and the OS. */
#include <stdlib.h>
#include <string.h>

#include "arena/internal.h"
#include "arena/os_mem.h"
#include "arena/testing.h"
#include "arena/track.h"

/* --- slot bitmap (region lock held) --- */

static bool slot_is_used(size_t i) {
    return (arena_region.slot_used[i / 64] >> (i % 64)) & 1;
}

static void slots_mark(size_t first, size_t count, bool used) {
    for (size_t i = first; i < first + count; i++) {
        uint64_t bit = (uint64_t)1 << (i % 64);
        if (used)
            arena_region.slot_used[i / 64] |= bit;
        else
            arena_region.slot_used[i / 64] &= ~bit;
    }
}

/* First-fit search for `count` free slots starting at a multiple of
 * `align_slots`. Returns the first slot index or SIZE_MAX. */
static size_t slots_find(size_t count, size_t align_slots) {
    size_t total = arena_region.slot_count;
    size_t i = (arena_region.first_free_hint + align_slots - 1) / align_slots * align_slots;
    while (i + count <= total) {
        size_t j = i;
        while (j < i + count && !slot_is_used(j))
            j++;
        if (j == i + count)
            return i;
        i = (j + 1 + align_slots - 1) / align_slots * align_slots;
    }
    return SIZE_MAX;
}

/* --- metadata pool (region lock held) --- */

static chunk_t *metadata_get(void) {
    chunk_t *c = arena_region.free_metadata;
    if (c) {
        arena_region.free_metadata = c->next;
        return c;
    }
    c = malloc(sizeof(chunk_t));
    if (c)
        track_immortal(c);
    return c;
}

static void metadata_put(chunk_t *c) {
    c->next = arena_region.free_metadata;
    arena_region.free_metadata = c;
}

void chunk_publish(chunk_t *c, chunk_t *owner) {
    size_t first = chunk_first_slot(c);
    size_t count = c->size >> REGION_SLOT_SHIFT;
    for (size_t i = 0; i < count; i++)
        atomic_store_explicit(&arena_region.slot_owner[first + i], owner, memory_order_release);
}

chunk_t *chunk_map(struct arena *a, size_t size, size_t align, chunk_kind_t kind) {
    if (region_ensure() != ARENA_OK)
        return NULL;
    size_t count = size >> REGION_SLOT_SHIFT;
    pthread_mutex_lock(&arena_region.lock);
    size_t first = slots_find(count, align >> REGION_SLOT_SHIFT);
    chunk_t *c = first == SIZE_MAX ? NULL : metadata_get();
    if (c) {
        slots_mark(first, count, true);
        if (first == arena_region.first_free_hint)
            arena_region.first_free_hint = first + count;
    }
    pthread_mutex_unlock(&arena_region.lock);
    if (!c)
        return NULL;

    char *base = (char *)arena_ownership.base + (first << REGION_SLOT_SHIFT);
    if (!os_commit(base, size)) {
        pthread_mutex_lock(&arena_region.lock);
        slots_mark(first, count, false);
        if (first < arena_region.first_free_hint)
            arena_region.first_free_hint = first;
        metadata_put(c);
        pthread_mutex_unlock(&arena_region.lock);
        return NULL;
    }
    track_mem_noaccess(base, size);

    memset(c, 0, sizeof *c);
    c->base = base;
    c->tables_end = base; /* a slot's tables are zeroed when its chunk goes (or never used) */
    c->size = size;
    c->kind = (uint8_t)kind;
    if (kind == CHUNK_SMALL && a->huge_pages && size >= ARENA_HUGE_PAGE_SIZE)
        os_advise_huge(base, size);
    pthread_mutex_lock(&arena_region.lock);
    arena_global_stats_t *g = &arena_region.stats;
    g->bytes_mapped += size;
    if (g->bytes_mapped > g->peak_mapped)
        g->peak_mapped = g->bytes_mapped;
    if (kind == CHUNK_LARGE)
        g->large_live++;
    else
        g->chunks_live++;
    g->chunks_mapped_total++;
    pthread_mutex_unlock(&arena_region.lock);
    chunk_attach(a, c);
    return c;
}


/* Zeroes [p, p + bytes) of a side table (the tables are MAP_NORESERVE
 * anonymous memory). A range with TABLE_DISCARD_MIN bytes of whole OS pages
 * (the bitmap of a chunk of 8 MiB or more, the page tables of one of 64 MiB
 * or more) hands them back: they read back as zeros and cost nothing until
 * touched, so big chunks' tables do not stay resident after the chunk is
 * gone. Smaller ranges are written: a 1 MiB chunk's map and unmap cost no
 * syscall and no fault on its 12 KiB of tables. */
#define TABLE_DISCARD_MIN ((size_t)64 << 10)

/* The whole OS pages [*first, *last) of [start, end) that table_zero hands
 * back; false (and an empty range at end) when they are too few. */
static bool table_discard_range(char *start, char *end, char **first, char **last) {
    *first = (char *)(((uintptr_t)start + ARENA_PAGE_SIZE - 1) & ~(uintptr_t)(ARENA_PAGE_SIZE - 1));
    *last = (char *)((uintptr_t)end & ~(uintptr_t)(ARENA_PAGE_SIZE - 1));
    if (*first < *last && (size_t)(*last - *first) >= TABLE_DISCARD_MIN)
        return true;
    *first = *last = end;
    return false;
}

static void table_zero(void *p, size_t bytes) {
    char *start = p, *end = start + bytes, *first, *last;
    if (!table_discard_range(start, end, &first, &last)) {
        memset(start, 0, bytes);
        return;
    }
    memset(start, 0, (size_t)(first - start));
    os_discard(first, (size_t)(last - first));
    memset(last, 0, (size_t)(end - last));
}

void block_bits_clear(size_t first, size_t end) {
    while (first < end && (first & 31)) {
        *block_bits_word(first) &= ~((uint64_t)3 << block_bits_shift(first));
        first++;
    }
    if (end - first >= 32) {
        memset(block_bits_word(first), 0, ((end - first) >> 5) * sizeof(uint64_t));
        first += (end - first) & ~(size_t)31;
    }
    for (; first < end; first++)
        *block_bits_word(first) &= ~((uint64_t)3 << block_bits_shift(first));
}

/* line_owner is read lock-free (arena_block_arena_id, through a chunk
 * pointer that may be going stale): zeroed with relaxed atomic stores, its
 * whole pages handed back when there are enough of them (table_zero's rule;
 * the kernel's zero pages race with nothing a reader could misread: a
 * reader of a block of this chunk is racing with the block's free). */
static void line_owners_zero(size_t first, size_t count) {
    char *start = (char *)(arena_region.line_owner + first), *end = start + count * sizeof(uint32_t), *lo, *hi;
    if (table_discard_range(start, end, &lo, &hi))
        os_discard(lo, (size_t)(hi - lo));
    for (size_t k = first; k < first + count; k++) {
        char *entry = (char *)(arena_region.line_owner + k);
        if (entry < lo || entry >= hi)
            line_owner_set(k, 0);
    }
}

/* Zeroes the chunk's side tables below tables_end (page tables: PAGE_IN_USE
 * is 0; block bits: stale ones would cut blocks short or call them dead),
 * so clearing costs what the chunk used, not its size: a task that touched
 * 40 KiB of a 1 MiB chunk zeroes under 1 KiB of tables, not 20 KiB. With
 * line_owner too when the chunk is going away; a mapped chunk leaves it
 * untouched until an adoption needs it (32 KiB of table per 1 MiB chunk
 * that most chunks never use). */
_Static_assert(PAGE_IN_USE == 0, "zeroed page_state means in use");
static void zero_tables(chunk_t *c, bool with_owners) {
    size_t used = (size_t)(c->tables_end - c->base);
    size_t first = chunk_first_page(c), count = (used + ARENA_PAGE_SIZE - 1) >> ARENA_PAGE_SHIFT;
    table_zero(arena_region.page_live + first, count * sizeof(uint16_t));
    table_zero(arena_region.page_state + first, count);
    table_zero(arena_region.page_cross + first, count * sizeof(uint32_t));
    table_zero(arena_region.page_cross_live + first, count);
    size_t words = (used + (32 << ARENA_GRANULE_SHIFT) - 1) >> (ARENA_GRANULE_SHIFT + 5); /* 32 granules a word */
    table_zero(block_bits_word(region_granule_index(c->base)), words * sizeof(uint64_t));
    c->tables_end = c->base;
    if (with_owners && atomic_load_explicit(&c->owners_per_line, memory_order_relaxed))
        line_owners_zero(chunk_first_line(c), c->size >> ARENA_LINE_SHIFT);
}

void chunk_attach(struct arena *a, chunk_t *c) {
    c->live_blocks = 0;
    c->slow_free = c->kind == CHUNK_LARGE;
    c->retained = false;
    c->warm = false;
    c->arena = a;
    __atomic_store_n(&c->arena_id, a->id, __ATOMIC_RELEASE); /* read lock-free by arena_block_arena_id */
    c->poison = a->poison;
    c->reuse = a->reuse && c->kind == CHUNK_SMALL;
    c->adopted = false;
    if (c->kind == CHUNK_SMALL) {
        atomic_store_explicit(&c->owners_per_line, false, memory_order_relaxed);
        zero_tables(c, false); /* (a warm chunk's; a fresh one's are zero already) */
        block_start_mark(c->base); /* the first block's start (see retained.h) */
        c->tables_end = c->base + ARENA_LINE_SIZE;
    }
    chunk_link(a, c);
    chunk_publish(c, c);
}

void chunk_link(struct arena *a, chunk_t *c) {
    c->prev = NULL;
    c->next = a->chunks;
    if (a->chunks)
        a->chunks->prev = c;
    a->chunks = c;
    a->bytes_mapped += c->size;
    if (a->bytes_mapped > a->peak_mapped)
        a->peak_mapped = a->bytes_mapped;
}

void chunk_detach(chunk_t *c) {
    struct arena *a = c->arena;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->chunks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->bytes_mapped -= c->size;
    c->arena = NULL;
    c->prev = c->next = NULL;
}

void chunk_unmap(chunk_t *c) {
    arena_assert_internal(c->live_blocks == 0);
    chunk_publish(c, NULL);
    track_mem_undefined(c->base, c->size);
    os_decommit(c->base, c->size);
    /* Its side tables go back with it (zeroed: what a fresh chunk expects).
     * Racing readers (arena_block_arena_id) see the slot unpublished, or
     * read zeros. */
    if (c->kind == CHUNK_SMALL)
        zero_tables(c, true);

    if (!c->warm && c->arena)
        chunk_detach(c);

    pthread_mutex_lock(&arena_region.lock);
    if (c->retained) {
        retained_unlink(c);
        arena_region.stats.retained_unmapped_total++;
    }
    size_t first = chunk_first_slot(c);
    arena_global_stats_t *g = &arena_region.stats;
    if (c->poison) {
        g->quarantined_bytes += c->size; /* slots stay marked: never reused */
    } else {
        slots_mark(first, c->size >> REGION_SLOT_SHIFT, false);
        if (first < arena_region.first_free_hint)
            arena_region.first_free_hint = first;
    }
    g->bytes_mapped -= c->size;
    if (c->kind == CHUNK_LARGE)
        g->large_live--;
    else
        g->chunks_live--;
    g->chunks_unmapped_total++;
    if (c->warm)
        g->warm_bytes -= c->size;
    metadata_put(c);
    pthread_mutex_unlock(&arena_region.lock);
}


unsigned long long arena_sieve_reads;

unsigned long long arena_testing_sieve_reads(void) { return arena_sieve_reads; }

uint64_t chunk_count_live(chunk_t *c) {
    size_t first = chunk_first_page(c), count = c->size >> ARENA_PAGE_SHIFT;
    uint64_t live = 0;
    arena_sieve_reads += count;
    for (size_t k = first; k < first + count; k++)
        live += arena_region.page_live[k];
    c->live_blocks = live;
    return live;
}

void chunk_mark_crossing(char *p, size_t size) {
    size_t start = region_page_index(p), last = region_page_index(p + size - 1);
    for (size_t k = start + 1; k <= last; k++)
        arena_region.page_cross[k] = (uint32_t)(start + 1);
    arena_region.page_cross_live[start] = 1;
}

void chunk_free_slow(chunk_t *c, void *ptr) {
    if (c->adopted) {
        adopted_survivor_free(c, ptr);
        return;
    }
    if (c->retained) {
        retained_free(c, ptr);
        return;
    }
    /* A large block of an open arena. */
    if (c->live_blocks == 0) {
        arena_assert_internal(!"double free of an arena block");
        return; /* a double free: never let the count wrap */
    }
    c->live_blocks = 0;
    c->arena->blocks_freed++;
    chunk_unmap(c);
}

size_t chunk_readable_size(const chunk_t *c, const char *p) {
    if (c->kind == CHUNK_LARGE)
        return c->block_size;
    return chunk_block_size(c, p); /* exact: the next start (retained.h) */
}
