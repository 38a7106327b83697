/* Adoption: an open arena allocating into the free lines of retained
 * chunks (spans), around earlier phases' survivors. The contract is in
 * adopt.h; the rules that keep survivors intact in retained.h. */
#include "arena/adopt.h"

#include "arena/track.h"

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
    /* Its tables are written from here on (the end mark at `end` included). */
    char *touched = end + ARENA_LINE_SIZE < chunk_end ? end + ARENA_LINE_SIZE : chunk_end;
    if (touched > c->tables_end)
        c->tables_end = touched;
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
        if (!retained_span_find(c, a->span_cursor, retained_span_lines(block), &start, &end))
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
        pages_mark_crossing(p, block);
    a->blocks_carved++;
    a->bytes_requested += size;
    track_mem_undefined(p, block);
    return p;
}

bool adopt_next_span(struct arena *a, size_t block) {
    chunk_t *c = a->current;
    char *start, *end;
    if (!retained_span_find(c, a->span_cursor, retained_span_lines(block), &start, &end))
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
    arena_chunk_link(a, c);
    a->chunks_adopted++;
    arena_leave_current(a);
    span_activate(a, c, start, end);
}

bool adopt_pool_retained(struct arena *a, size_t block) {
    char *start, *end;
    chunk_t *c = retained_warm_find(&a->pool->warm_retained, retained_span_lines(block), &start, &end);
    if (!c)
        return false;
    a->pool->retained_hits++;
    adopt_take(a, c, start, end);
    return true;
}

bool adopt_retained_chunk(struct arena *a, size_t block) {
    char *start, *end;
    chunk_t *c = NULL;
    /* An arena about to map its small first chunk (a task scope's) takes a
     * retained chunk of that size first: else every task that kept a little
     * would hold a first chunk of its own that no arena ever refills. */
    if (a->first_chunk_size && a->chunks_mapped == 0 && block <= a->first_chunk_size / 4)
        c = retained_adoptable_find(a->first_chunk_size, retained_span_lines(block), &start, &end);
    if (!c)
        c = retained_adoptable_find(a->chunk_size, retained_span_lines(block), &start, &end);
    if (!c)
        return false;
    adopt_take(a, c, start, end);
    return true;
}
