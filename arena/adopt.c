/* Adoption: retained chunks back in use.
 *
 * A phase that keeps 0.1% of its objects leaves every chunk it touched
 * retained, with a few pages pinned by survivors and the rest handed back.
 * Without adoption each later phase maps fresh chunks, so the retained ones
 * pile up: their pages cost no RSS, but they use the region's address space
 * (a worker running one scope per request, each leaving one object in a
 * cache, runs out of region after reserve/chunk_size requests) and metadata.
 *
 * An adopting arena takes a retained chunk with a run of at least 64
 * handed-back pages (256 KiB; a quarter of smaller chunks) and
 * bump-allocates into such runs ("spans"). Rules that keep every survivor safe:
 * - A span is a run of PAGE_RELEASED pages only: no live block starts in it
 *   and none crosses into it (page_pinned), so nothing live is overwritten.
 * - Every page of an adopted chunk records its owner (page_owner, filled at
 *   the chunk's first adoption): the span's pages become the adopting
 *   arena's, the survivors' pages keep their arena's id. A free in an
 *   adopted chunk asks the page: the arena's own blocks are freed as in any
 *   of its chunks (free lists, exact sizes from start bits; inline in
 *   arena_free); a survivor's free only drops its page's live count (its
 *   page has no start bits and is never recycled while the chunk is adopted).
 * - Start bits: the chunk's whole bitmap range is cleared at adoption, and
 *   when the arena leaves a span a start bit is set at its bump pointer, so
 *   the last block of a span never measures into the next span.
 * - At release, only blocks in the arena's own pages count as its escapes;
 *   the chunk is then an ordinary retained chunk again (page-bounded sizes).
 */
#include <string.h>

#include "arena/internal.h"
#include "arena/track.h"

/* The shortest span worth adopting: 64 pages (256 KiB), a quarter of a
 * smaller chunk. Not for the refill's sake: every jump between spans breaks
 * the sequential address order that later traversals of the phase's objects
 * (the GC's, above all) rely on for hardware prefetch. bench/span_layout_bench
 * (this AMD EPYC VM; a list walked twice in allocation order): one page
 * skipped every 10 made the walk 2.4-2.6x slower, every 64 1.1x, every 256
 * 1.03x; a keep_0_1pct phase run in ~9-page spans took 1.65-1.85x as long
 * in gc.collect(0). */
static size_t adopt_min_span_pages(const chunk_t *c) {
    size_t quarter = chunk_page_count(c) / 4;
    return quarter < 64 ? quarter : 64;
}

/* First run of at least `pages` released pages of c at or after page `from`
 * (region page indexes). Returns its first page and stores its length, or
 * returns SIZE_MAX. */
static size_t span_find(const chunk_t *c, size_t from, size_t pages, size_t *length) {
    size_t end = chunk_first_page(c) + chunk_page_count(c);
    size_t k = from;
    while (k < end) {
        while (k < end && arena_region.page_state[k] != PAGE_RELEASED)
            k++;
        size_t first = k;
        while (k < end && arena_region.page_state[k] == PAGE_RELEASED)
            k++;
        if (k > first && k - first >= pages) {
            *length = k - first;
            return first;
        }
    }
    return SIZE_MAX;
}

/* A retained chunk is worth adopting when it has a span of the minimum. */
static bool chunk_adoptable(const chunk_t *c) {
    size_t length;
    return c->retained && c->kind == CHUNK_SMALL && !c->poison &&
           span_find(c, chunk_first_page(c), adopt_min_span_pages(c), &length) != SIZE_MAX;
}

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

void adoptable_update(chunk_t *c) {
    bool want = chunk_adoptable(c);
    if (want == c->adoptable_listed)
        return;
    if (!want) {
        adoptable_unlink(c);
        return;
    }
    c->adopt_prev = NULL;
    c->adopt_next = arena_region.adoptable;
    if (c->adopt_next)
        c->adopt_next->adopt_prev = c;
    arena_region.adoptable = c;
    c->adoptable_listed = true;
}

/* Pages a span of chunk c must have to take a block of `block` bytes. */
static size_t span_pages_for(const chunk_t *c, size_t block) {
    size_t pages = (block + ARENA_PAGE_SIZE - 1) >> ARENA_PAGE_SHIFT, min = adopt_min_span_pages(c);
    return pages > min ? pages : min;
}

/* Makes pages [first, first+length) of adopted chunk c the arena's current
 * span. */
static void span_activate(struct arena *a, chunk_t *c, size_t first, size_t length) {
    size_t end = first + length;
    for (size_t k = first; k < end; k++) {
        arena_assert_internal(arena_region.page_live[k] == 0);
        arena_region.page_state[k] = PAGE_IN_USE;
        arena_region.page_cross[k] = 0;
        arena_region.page_cross_live[k] = 0;
        page_owner_set(k, a->id);
    }
    /* A dead block that crossed out of the span into the page after it must
     * not make that page look like part of the span's blocks. */
    if (end < chunk_first_page(c) + chunk_page_count(c)) {
        uint32_t cross = arena_region.page_cross[end];
        if (cross > first && cross <= end)
            arena_region.page_cross[end] = 0;
    }
    char *p = c->base + ((first - chunk_first_page(c)) << ARENA_PAGE_SHIFT);
    track_mem_noaccess(p, length << ARENA_PAGE_SHIFT);
    a->current = c;
    a->bump = p;
    a->end = p + (length << ARENA_PAGE_SHIFT);
    a->last_block = NULL;
    a->span_cursor = end;
}

/* The arena leaves its current span or chunk. An adopted chunk's used_end
 * is its end, so the end of a span's last block is said another way: while
 * the arena is open (reuse mode) by a start bit at the bump pointer. Sizes
 * are page-bounded otherwise (bump mode, and after the release), so realloc
 * may copy the span's unused tail after that block (mapped, never handed
 * out): the tail stops being poisoned for ASan. */
void arena_leave_current(struct arena *a) {
    chunk_t *c = a->current;
    if (!c)
        return;
    if (!c->adopted) {
        c->used_end = a->bump;
        return;
    }
    if (c->reuse && a->bump < c->base + c->size)
        block_start_mark(a->bump);
    track_mem_undefined(a->bump, (size_t)(a->end - a->bump));
}

bool adopt_next_span(struct arena *a, size_t block) {
    chunk_t *c = a->current;
    size_t length;
    size_t first = span_find(c, a->span_cursor, span_pages_for(c, block), &length);
    if (first == SIZE_MAX)
        return false;
    arena_leave_current(a);
    span_activate(a, c, first, length);
    return true;
}

bool adopt_retained_chunk(struct arena *a, size_t block) {
    size_t first = SIZE_MAX, length = 0;
    chunk_t *c = NULL;
    int tries = 0; /* bounded: a refill must stay cheap */
    pthread_mutex_lock(&arena_region.lock);
    for (chunk_t *candidate = arena_region.adoptable; candidate && tries < 8;
         candidate = candidate->adopt_next, tries++) {
        if (candidate->size != a->chunk_size) /* (byte_limit and small_max assume the arena's size) */
            continue;
        first = span_find(candidate, chunk_first_page(candidate), span_pages_for(candidate, block), &length);
        if (first != SIZE_MAX) {
            c = candidate;
            break;
        }
    }
    if (c) {
        retained_unlink(c);
        arena_region.stats.blocks_retained -= c->live_blocks;
        arena_region.stats.chunks_adopted_total++;
    }
    pthread_mutex_unlock(&arena_region.lock);
    if (!c)
        return false;

    if (!atomic_load_explicit(&c->owners_per_page, memory_order_relaxed)) {
        for (size_t k = chunk_first_page(c), end = k + chunk_page_count(c); k < end; k++)
            page_owner_set(k, c->arena_id); /* the survivors' arena, before c changes hands */
        atomic_store_explicit(&c->owners_per_page, true, memory_order_release);
    }
    c->retained = false;
    c->adopted = true;
    c->slow_free = true; /* frees ask the page whose block it is */
    c->arena = a;
    /* After owners_per_page (release): a lock-free reader that sees the
     * new id sees the flag too, and answers per page (arena_block_arena_id). */
    __atomic_store_n(&c->arena_id, a->id, __ATOMIC_RELEASE);
    c->used_end = c->base + c->size;
    c->reuse = a->reuse;
    if (c->reuse)
        chunk_clear_block_starts(c);
    /* Survivors' pages are bounded by pages now (used_end is the chunk's
     * end), so realloc may copy past a survivor into the unused rest of its
     * page: mapped memory, never handed out again; not poisoned for ASan. */
    for (size_t k = chunk_first_page(c), end = k + chunk_page_count(c); k < end; k++)
        if (arena_region.page_state[k] != PAGE_RELEASED)
            track_mem_undefined(c->base + ((k - chunk_first_page(c)) << ARENA_PAGE_SHIFT), ARENA_PAGE_SIZE);
    chunk_link(a, c);
    a->chunks_adopted++;
    arena_leave_current(a);
    span_activate(a, c, first, length);
    return true;
}

void adopted_survivor_free(chunk_t *c, void *ptr) {
    size_t page = region_page_index(ptr);
    arena_assert_internal(page_owner_get(page) != c->arena_id); /* (arena_free frees the arena's own) */
    (void)c;
    if (arena_region.page_live[page] == 0) {
        arena_assert_internal(!"double free of an arena block");
        return; /* a double free: never let the count wrap */
    }
    arena_region.page_live[page]--; /* an earlier phase's survivor; its page waits for the release */
}
