/* Chunks: placing them in the region (slot bitmap), mapping and unmapping,
 * publishing them for arena_owns, recycling their metadata, and what their
 * tables say. The contract is in chunk.h. */
#include "arena/chunk.h"

#include <stdlib.h>
#include <string.h>

#include "arena/os_mem.h"
#include "arena/track.h"

unsigned long long arena_testing_slot_reads(void) {
    pthread_mutex_lock(&arena_region.lock);
    unsigned long long reads = arena_region.slots.reads;
    pthread_mutex_unlock(&arena_region.lock);
    return reads;
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

chunk_t *chunk_map(size_t size, size_t align, chunk_kind_t kind, bool huge_pages) {
    if (region_ensure() != ARENA_OK)
        return NULL;
    size_t count = size >> REGION_SLOT_SHIFT;
    pthread_mutex_lock(&arena_region.lock);
    size_t first = slot_map_find(&arena_region.slots, count, align >> REGION_SLOT_SHIFT);
    chunk_t *c = first == SIZE_MAX ? NULL : metadata_get();
    if (c)
        slot_map_take(&arena_region.slots, first, count);
    pthread_mutex_unlock(&arena_region.lock);
    if (!c)
        return NULL;

    char *base = (char *)arena_ownership.base + (first << REGION_SLOT_SHIFT);
    if (!os_commit(base, size)) {
        pthread_mutex_lock(&arena_region.lock);
        slot_map_give(&arena_region.slots, first, count);
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
    if (kind == CHUNK_SMALL && huge_pages && size >= ARENA_HUGE_PAGE_SIZE)
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
    return c;
}

/* Zeroes the chunk's side tables below tables_end (page tables: PAGE_IN_USE
 * is 0; block bits: stale ones would cut blocks short or call them dead),
 * so clearing costs what the chunk used, not its size: a task that touched
 * 40 KiB of a 1 MiB chunk zeroes under 1 KiB of tables, not 20 KiB. With
 * line_owner too when the chunk is going away; a mapped chunk leaves it
 * untouched until an adoption needs it (32 KiB of table per 1 MiB chunk
 * that most chunks never use). */
static void zero_tables(chunk_t *c, bool with_owners) {
    tables_zero(c->base, (size_t)(c->tables_end - c->base));
    c->tables_end = c->base;
    if (with_owners && atomic_load_explicit(&c->owners_per_line, memory_order_relaxed))
        line_owners_zero(chunk_first_line(c), c->size >> ARENA_LINE_SHIFT);
}

void chunk_reset_tables(chunk_t *c) {
    atomic_store_explicit(&c->owners_per_line, false, memory_order_relaxed);
    zero_tables(c, false); /* (a warm chunk's; a fresh one's are zero already) */
    block_start_mark(c->base); /* the first block's start (see retained.h) */
    c->tables_end = c->base + ARENA_LINE_SIZE;
}

void chunk_unmap(chunk_t *c) {
    arena_assert_internal(c->live_blocks == 0);
    arena_assert_internal(!c->retained && !c->warm_list && !c->adoptable_listed);
    chunk_publish(c, NULL);
    track_mem_undefined(c->base, c->size);
    os_decommit(c->base, c->size);
    /* Its side tables go back with it (zeroed: what a fresh chunk expects).
     * Racing readers (arena_block_arena_id) see the slot unpublished, or
     * read zeros. */
    if (c->kind == CHUNK_SMALL)
        zero_tables(c, true);

    pthread_mutex_lock(&arena_region.lock);
    size_t first = chunk_first_slot(c);
    arena_global_stats_t *g = &arena_region.stats;
    if (c->poison) {
        g->quarantined_bytes += c->size; /* slots stay marked: never reused */
    } else {
        slot_map_give(&arena_region.slots, first, c->size >> REGION_SLOT_SHIFT);
    }
    g->bytes_mapped -= c->size;
    if (c->kind == CHUNK_LARGE)
        g->large_live--;
    else
        g->chunks_live--;
    g->chunks_unmapped_total++;
    metadata_put(c);
    pthread_mutex_unlock(&arena_region.lock);
}

uint64_t chunk_count_live(chunk_t *c) {
    /* Only the pages below tables_end: every entry past it is zero (an arena
     * leaving the chunk moved it past its bump pointer), so a task that used
     * 80 KiB of a 1 MiB chunk sums 20 counts, not 256. */
    size_t used = (size_t)(c->tables_end - c->base);
    size_t pages = (used + ARENA_PAGE_SIZE - 1) >> ARENA_PAGE_SHIFT;
    c->live_blocks = pages_sum_live(chunk_first_page(c), pages);
    arena_assert_expensive(pages_sum_live(chunk_first_page(c), chunk_page_count(c)) == c->live_blocks);
    return c->live_blocks;
}

size_t arena_default_chunk_size(size_t chunk_size, bool huge_pages) {
    if (chunk_size)
        return chunk_size;
    return huge_pages ? ARENA_HUGE_PAGE_SIZE : ARENA_DEFAULT_CHUNK_SIZE;
}

uint64_t arena_block_arena_id(const void *ptr) {
    chunk_t *c = chunk_lookup(ptr);
    if (!c)
        return 0;
    /* A chunk that was ever adopted answers per line: it holds blocks of
     * several arenas. (The flag is set after its table is filled.) */
    /* The id first (acquire), then the flag: an adoption stores the flag
     * before the adopting arena's id (release), so a reader that sees the
     * new id also sees the flag and answers per line, never the adopter's id
     * for an earlier phase's survivor. */
    uint64_t id = __atomic_load_n(&c->arena_id, __ATOMIC_ACQUIRE);
    if (atomic_load_explicit(&c->owners_per_line, memory_order_acquire))
        return arena_id_from_tag(line_owner_get(region_line_index(ptr)));
    return id;
}
