/* The free space of retained chunks: retaining a chunk, handing its free
 * pages back, freeing its survivors, and adoption (later arenas allocating
 * into its free lines). The contract is in retained.h. */
#include <string.h>

#include "arena/internal.h"
#include "arena/os_mem.h"
#include "arena/track.h"

/* ---- block bits ---- */

/* The live starts of a block bits word: starts whose dead bit is clear. */
static inline uint64_t live_starts(uint64_t word) { return word & BLOCK_START_BITS & ~(word >> 1); }

/* The first live block start at or after granule g, or end. */
static size_t next_live_start(size_t g, size_t end) {
    while (g < end) {
        uint64_t live = live_starts(*block_bits_word(g)) & (~(uint64_t)0 << block_bits_shift(g));
        if (live) {
            size_t n = (g & ~(size_t)31) + ((size_t)__builtin_ctzll(live) >> 1);
            return n < end ? n : end;
        }
        g = (g | 31) + 1;
    }
    return end;
}

/* The first block start (live or dead) after granule g, or end: where the
 * block at g ends. */
static size_t next_start_after(size_t g, size_t end) {
    for (g++; g < end;) {
        uint64_t starts = *block_bits_word(g) & BLOCK_START_BITS & (~(uint64_t)0 << block_bits_shift(g));
        if (starts) {
            size_t n = (g & ~(size_t)31) + ((size_t)__builtin_ctzll(starts) >> 1);
            return n < end ? n : end;
        }
        g = (g | 31) + 1;
    }
    return end;
}

/* ---- pages handed back ---- */

/* A page must stay while a live block starts in it, or while the block
 * crossing into it may be live: its start page has live blocks and that
 * block was not seen freed. page_cross_live is set whenever a crossing block
 * is handed out and cleared only by a free that knows the freed block is
 * that one (reuse mode, exact sizes), so a clear flag always means dead;
 * otherwise it stays set: conservative. */
static bool page_pinned(size_t page) {
    if (arena_region.page_live[page])
        return true;
    uint32_t cross = arena_region.page_cross[page];
    return cross && arena_region.page_live[cross - 1] && arena_region.page_cross_live[cross - 1];
}

/* Hands back pages [first, first+count) of c that are free, in runs. */
static size_t release_pages(chunk_t *c, size_t first, size_t count) {
    size_t released = 0, run = 0, chunk_first = chunk_first_page(c);
    arena_sieve_reads += count;
    for (size_t k = first; k <= first + count; k++) {
        bool free_page = k < first + count && arena_region.page_state[k] != PAGE_RELEASED && !page_pinned(k);
        if (free_page) {
            run++;
            continue;
        }
        if (run) {
            char *p = c->base + ((k - run - chunk_first) << ARENA_PAGE_SHIFT);
            size_t bytes = run << ARENA_PAGE_SHIFT;
            track_mem_undefined(p, bytes);
            if (c->poison)
                os_decommit(p, bytes); /* PROT_NONE: a stale access faults */
            else
                os_discard(p, bytes);
            memset(arena_region.page_state + (k - run), PAGE_RELEASED, run);
            released += bytes;
            run = 0;
        }
    }
    return released;
}

/* ---- the retained and adoptable lists (region lock held) ---- */

void adoptable_unlink(chunk_t *c) {
    if (!c->adoptable_listed)
        return;
    if (c->adopt_prev)
        c->adopt_prev->adopt_next = c->adopt_next;
    else
        arena_region.adoptable = c->adopt_next;
    if (c->adopt_next)
        c->adopt_next->adopt_prev = c->adopt_prev;
    c->adopt_prev = c->adopt_next = NULL;
    c->adoptable_listed = false;
}

/* Lists a retained chunk as maybe having free lines (an adoption's search
 * says whether it does). */
static void adoptable_list(chunk_t *c) {
    if (c->adoptable_listed || !c->retained || c->kind != CHUNK_SMALL || c->poison)
        return;
    c->adopt_prev = NULL;
    c->adopt_next = arena_region.adoptable;
    if (c->adopt_next)
        c->adopt_next->adopt_prev = c;
    arena_region.adoptable = c;
    c->adoptable_listed = true;
}

/* ---- a pool's warm retained chunks (the caller's lock) ---- */

/* Region lock held (for the global count). */
static void warm_unlink(chunk_t *c) {
    struct arena_pool *pool = c->warm_pool;
    if (!pool)
        return;
    if (c->warm_prev)
        c->warm_prev->warm_next = c->warm_next;
    else
        pool->warm_retained = c->warm_next;
    if (c->warm_next)
        c->warm_next->warm_prev = c->warm_prev;
    c->warm_prev = c->warm_next = NULL;
    c->warm_pool = NULL;
    pool->warm_retained_bytes -= c->size;
    pool->warm_retained_chunks--;
    arena_region.stats.warm_retained_bytes -= c->size;
}

static bool warm_link(struct arena_pool *pool, chunk_t *c) {
    /* (The default pool too, within its one chunk: a worker's scopes
     * often run in a chunk that an earlier survivor keeps, and handing its
     * free pages back at every exit made each task fault them in again.) */
    if (!pool || c->kind != CHUNK_SMALL || c->poison || c->size != pool->chunk_size ||
        pool->warm_bytes + pool->warm_retained_bytes + c->size > pool->max_warm_bytes)
        return false;
    c->warm_pool = pool;
    c->warm_prev = NULL;
    c->warm_next = pool->warm_retained;
    if (c->warm_next)
        c->warm_next->warm_prev = c;
    pool->warm_retained = c;
    pool->warm_retained_bytes += c->size;
    pool->warm_retained_chunks++;
    return true;
}

void retained_pool_trim(struct arena_pool *pool, size_t keep_bytes) {
    while (pool->warm_retained && pool->warm_bytes + pool->warm_retained_bytes > keep_bytes) {
        chunk_t *c = pool->warm_retained;
        pthread_mutex_lock(&arena_region.lock);
        warm_unlink(c);
        pthread_mutex_unlock(&arena_region.lock);
        size_t released = release_pages(c, chunk_first_page(c), chunk_page_count(c));
        pthread_mutex_lock(&arena_region.lock);
        arena_region.stats.bytes_pages_released += released;
        pthread_mutex_unlock(&arena_region.lock);
    }
}

void retained_unlink(chunk_t *c) {
    warm_unlink(c);
    adoptable_unlink(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        arena_region.retained = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    arena_region.stats.chunks_retained--;
    arena_region.stats.bytes_retained -= c->size;
}

size_t retained_take(chunk_t *c, struct arena_pool *pool) {
    c->tables_end = c->base + c->size; /* (page states of its whole range, from here on) */
    c->arena = NULL;
    c->retained = true;
    c->slow_free = true;
    bool warm = warm_link(pool, c); /* its free pages stay resident for the pool's next arenas */
    size_t released = c->kind == CHUNK_SMALL && !warm ? release_pages(c, chunk_first_page(c), chunk_page_count(c)) : 0;
    pthread_mutex_lock(&arena_region.lock);
    c->prev = NULL;
    c->next = arena_region.retained;
    if (c->next)
        c->next->prev = c;
    arena_region.retained = c;
    arena_region.stats.chunks_retained++;
    arena_region.stats.bytes_retained += c->size;
    arena_region.stats.blocks_retained += c->live_blocks;
    arena_region.stats.bytes_pages_released += released;
    if (warm)
        arena_region.stats.warm_retained_bytes += c->size;
    adoptable_list(c);
    pthread_mutex_unlock(&arena_region.lock);
    return released;
}

void retained_free(chunk_t *c, void *ptr) {
    if (c->live_blocks == 0) {
        arena_assert_internal(!"double free of an arena block");
        return; /* a double free: never let the count wrap */
    }
    c->live_blocks--;
    if (c->kind == CHUNK_SMALL)
        block_dead_mark(ptr);
    size_t released = 0;
    if (c->live_blocks && c->kind == CHUNK_SMALL) {
        size_t page = region_page_index(ptr);
        if (--arena_region.page_live[page] == 0) {
            /* This page, and the pages its blocks crossed into, may be free now. */
            size_t end = chunk_first_page(c) + chunk_page_count(c), next = page + 1;
            while (next < end && arena_region.page_cross[next] == page + 1)
                next++;
            released = release_pages(c, page, next - page);
        }
    }
    pthread_mutex_lock(&arena_region.lock);
    arena_region.stats.blocks_retained--;
    arena_region.stats.bytes_pages_released += released;
    if (c->live_blocks)
        adoptable_list(c); /* its lines may be free now */
    pthread_mutex_unlock(&arena_region.lock);
    if (c->live_blocks == 0)
        chunk_unmap(c);
}

/* ---- adoption ---- */

/* The shortest span worth taking, in lines. One: any whole line that no
 * live block touches is reused, as pymalloc reuses any free block of a
 * pool; an arena moving between spans costs a refill, and the objects of
 * a phase that runs in short spans are less contiguous (see
 * docs/benchmarks.md for the measured cost). */
#ifndef ADOPT_MIN_SPAN_LINES
#define ADOPT_MIN_SPAN_LINES 1
#endif

/* Lines a span must have to take a block of `block` bytes. */
static size_t span_lines_for(size_t block) {
    size_t lines = (block + ARENA_LINE_SIZE - 1) >> ARENA_LINE_SHIFT;
    return lines > ADOPT_MIN_SPAN_LINES ? lines : ADOPT_MIN_SPAN_LINES;
}

/* The first run of at least `lines` free lines of chunk c at or after
 * `from` (which no live block covers: the chunk's base, or the end of a
 * span taken before). true and its bounds, or false. */
static bool span_find(const chunk_t *c, const char *from, size_t lines, char **start, char **end) {
    size_t g = region_granule_index(from), end_g = region_granule_index(c->base) + (c->size >> ARENA_GRANULE_SHIFT);
    char *region_base = (char *)__atomic_load_n(&arena_ownership.base, __ATOMIC_RELAXED);
    while (g < end_g) {
        size_t live = next_live_start(g, end_g);
        /* Granules [g, live) are free: the whole lines inside them. */
        size_t first_line = (g + ARENA_GRANULES_PER_LINE - 1) / ARENA_GRANULES_PER_LINE;
        size_t last_line = live / ARENA_GRANULES_PER_LINE;
        if (last_line > first_line && last_line - first_line >= lines) {
            *start = region_base + (first_line << ARENA_LINE_SHIFT);
            *end = region_base + (last_line << ARENA_LINE_SHIFT);
            return true;
        }
        if (live == end_g)
            break;
        g = next_start_after(live, end_g); /* past the live block */
    }
    return false;
}

/* Takes [start, end) of adopted chunk c (whole free lines) for arena a:
 * its block bits, line owners and page tables made ready for bump
 * allocation. */
static void span_take(struct arena *a, chunk_t *c, char *start, char *end) {
    char *chunk_end = c->base + c->size;
    size_t g0 = region_granule_index(start), g1 = region_granule_index(end);
    block_bits_clear(g0, g1);
    block_start_mark(start); /* the first block's start (dead-marked by the leave if none comes) */
    if (end < chunk_end && !block_start_at(g1)) {
        /* The free rest of the run past the span's last line: a dead block,
         * so the span's last block ends at the span's end. */
        block_start_mark(end);
        block_dead_mark(end);
    }
    for (size_t line = region_line_index(start), last = region_line_index(end); line < last; line++)
        line_owner_set(line, a->id);
    /* Pages: a handed-back page is entirely inside the span (no live block
     * touches it) and in use again; any block crossing into a page whose
     * first byte is in [start, end] covers span bytes, so it is dead. */
    size_t first_page = region_page_index(start), last_page = region_page_index(end - 1);
    for (size_t k = first_page; k <= last_page; k++) {
        if (arena_region.page_state[k] == PAGE_RELEASED) {
            arena_assert_internal(arena_region.page_live[k] == 0);
            arena_region.page_state[k] = PAGE_IN_USE;
            arena_region.page_cross_live[k] = 0;
        }
    }
    size_t k = region_page_index(start + ARENA_PAGE_SIZE - 1); /* the first page starting at or after start */
    for (; k <= region_page_index(end) && k < chunk_first_page(c) + chunk_page_count(c); k++)
        arena_region.page_cross[k] = 0;
    track_mem_noaccess(start, (size_t)(end - start));
    a->span_cursor = end;
    a->bytes_adopted += (size_t)(end - start);
}

/* Makes [start, end) of adopted chunk c the arena's current span. */
static void span_activate(struct arena *a, chunk_t *c, char *start, char *end) {
    span_take(a, c, start, end);
    a->current = c;
    a->bump = start;
    a->end = end;
    a->last_block = NULL;
}

/* The arena's current span (or chunk) ends: the rest past its bump pointer
 * is a dead block (its start is set: the last block's end). */
static void span_leave(struct arena *a) {
    if (a->bump < a->end)
        block_dead_mark(a->bump);
    chunk_t *c = a->current;
    if (!c->adopted) {
        char *touched = a->bump + ARENA_LINE_SIZE; /* (with the dead mark at the bump pointer) */
        if (touched > c->base + c->size)
            touched = c->base + c->size;
        if (touched > c->tables_end)
            c->tables_end = touched;
    }
}

static void overflow_leave(struct arena *a) {
    if (a->overflow_bump < a->overflow_end)
        block_dead_mark(a->overflow_bump);
    a->overflow_bump = a->overflow_end = NULL;
}

void arena_leave_current(struct arena *a) {
    if (!a->current)
        return;
    span_leave(a);
    overflow_leave(a);
}

void *adopt_overflow_alloc(struct arena *a, size_t size, size_t block) {
    chunk_t *c = a->current;
    if ((size_t)(a->overflow_end - a->overflow_bump) < block) {
        char *start, *end;
        if (!span_find(c, a->span_cursor, span_lines_for(block), &start, &end))
            return NULL;
        overflow_leave(a);
        span_take(a, c, start, end);
        a->overflow_bump = start;
        a->overflow_end = end;
    }
    char *p = a->overflow_bump;
    a->overflow_bump = p + block;
    arena_region.page_live[region_page_index(p)]++;
    if (a->overflow_bump != a->overflow_end)
        block_start_mark(a->overflow_bump);
    if (block_crosses_page(p, block))
        chunk_mark_crossing(p, block);
    a->blocks_allocated++;
    a->bytes_requested += size;
    track_mem_undefined(p, block);
    return p;
}

bool adopt_next_span(struct arena *a, size_t block) {
    chunk_t *c = a->current;
    char *start, *end;
    if (!span_find(c, a->span_cursor, span_lines_for(block), &start, &end))
        return false;
    span_leave(a); /* (an overflow span stays: it is in this chunk) */
    span_activate(a, c, start, end);
    return true;
}

/* Arena a takes retained chunk c (already off the lists) and makes span
 * [start, end) current. */
static void adopt_take(struct arena *a, chunk_t *c, char *start, char *end) {
    if (!atomic_load_explicit(&c->owners_per_line, memory_order_relaxed)) {
        for (size_t line = chunk_first_line(c), last = line + (c->size >> ARENA_LINE_SHIFT); line < last; line++)
            line_owner_set(line, c->arena_id); /* the survivors' arena, before c changes hands */
        atomic_store_explicit(&c->owners_per_line, true, memory_order_release);
    }
    c->foreign_live = c->live_blocks; /* exact for a retained chunk (retained_free) */
    c->retained = false;
    c->adopted = true;
    c->slow_free = true; /* frees ask the line whose block it is */
    c->arena = a;
    /* After owners_per_line (release): a lock-free reader that sees the
     * new id sees the flag too, and answers per line (arena_block_arena_id). */
    __atomic_store_n(&c->arena_id, a->id, __ATOMIC_RELEASE);
    c->reuse = a->reuse;
    chunk_link(a, c);
    a->chunks_adopted++;
    arena_leave_current(a);
    span_activate(a, c, start, end);
}

/* Takes chunk c off the retained lists for an adoption. */
static void adopt_unlist(chunk_t *c) {
    retained_unlink(c);
    arena_region.stats.blocks_retained -= c->live_blocks;
    arena_region.stats.chunks_adopted_total++;
}

bool adopt_pool_retained(struct arena *a, size_t block) {
    size_t lines = span_lines_for(block);
    char *start, *end;
    int tries = 0; /* bounded: a refill must stay cheap */
    for (chunk_t *c = a->pool->warm_retained; c && tries++ < 8; c = c->warm_next) {
        if (span_find(c, c->base, lines, &start, &end)) {
            pthread_mutex_lock(&arena_region.lock);
            adopt_unlist(c);
            pthread_mutex_unlock(&arena_region.lock);
            a->pool->retained_hits++;
            adopt_take(a, c, start, end);
            return true;
        }
    }
    return false;
}

bool adopt_retained_chunk(struct arena *a, size_t block) {
    size_t lines = span_lines_for(block);
    char *start = NULL, *end = NULL;
    chunk_t *c = NULL;
    int tries = 0; /* bounded: a refill must stay cheap */
    pthread_mutex_lock(&arena_region.lock);
    chunk_t *candidate = arena_region.adoptable;
    while (candidate && tries++ < 8) {
        chunk_t *next = candidate->adopt_next;
        if (candidate->size == a->chunk_size) { /* (byte_limit and small_max assume the arena's size) */
            if (span_find(candidate, candidate->base, lines, &start, &end)) {
                c = candidate;
                break;
            }
            if (lines == ADOPT_MIN_SPAN_LINES)
                adoptable_unlink(candidate); /* no free line: listed again by a free in it */
        }
        candidate = next;
    }
    if (c)
        adopt_unlist(c);
    pthread_mutex_unlock(&arena_region.lock);
    if (!c)
        return false;
    adopt_take(a, c, start, end);
    return true;
}

void adopted_survivor_free(chunk_t *c, void *ptr) {
    size_t page = region_page_index(ptr);
    arena_assert_internal(line_owner_get(region_line_index(ptr)) != owner_tag(c->arena_id)); /* (arena_free frees the arena's own) */
    if (arena_region.page_live[page] == 0 || c->foreign_live == 0) {
        arena_assert_internal(!"double free of an arena block");
        return; /* a double free: never let the counts wrap */
    }
    arena_region.page_live[page]--; /* an earlier phase's survivor; its page waits for the release */
    c->foreign_live--;
    block_dead_mark(ptr);           /* its lines are free for a later span */
}
