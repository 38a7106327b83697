/* Retained chunks: keeping a chunk past its arena's release, handing its
 * free pages back, freeing its survivors, and finding its free lines for
 * an adoption. The contract is in retained.h. */
#include "arena/retained.h"

#include "arena/testing.h"

/* Hands back the free pages of [first, first + count) of c. */
static size_t release_pages(chunk_t *c, size_t first, size_t count) {
    size_t marked_end = chunk_first_page(c) + (((size_t)(c->tables_end - c->base) + ARENA_PAGE_SIZE - 1) >> ARENA_PAGE_SHIFT);
    return pages_release_free(first, count, marked_end, c->poison);
}

/* ---- the retained and adoptable lists (region lock held) ---- */

static void adoptable_unlink(chunk_t *c) {
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

/* ---- warm lists (a pool's; the caller's lock) ---- */

/* Region lock held (for the global count). */
static void warm_unlink(chunk_t *c) {
    retained_warm_t *w = c->warm_list;
    if (!w)
        return;
    if (c->warm_prev)
        c->warm_prev->warm_next = c->warm_next;
    else
        w->head = c->warm_next;
    if (c->warm_next)
        c->warm_next->warm_prev = c->warm_prev;
    c->warm_prev = c->warm_next = NULL;
    c->warm_list = NULL;
    w->bytes -= c->size;
    w->chunks--;
    arena_region.stats.warm_retained_bytes -= c->size;
}

static void warm_link(retained_warm_t *w, chunk_t *c) {
    c->warm_list = w;
    c->warm_prev = NULL;
    c->warm_next = w->head;
    if (c->warm_next)
        c->warm_next->warm_prev = c;
    w->head = c;
    w->bytes += c->size;
    w->chunks++;
}

void retained_warm_trim(retained_warm_t *w, size_t other_bytes, size_t keep_bytes) {
    while (w->head && other_bytes + w->bytes > keep_bytes) {
        chunk_t *c = w->head;
        pthread_mutex_lock(&arena_region.lock);
        warm_unlink(c);
        pthread_mutex_unlock(&arena_region.lock);
        size_t released = release_pages(c, chunk_first_page(c), chunk_page_count(c));
        pthread_mutex_lock(&arena_region.lock);
        arena_region.stats.bytes_pages_released += released;
        pthread_mutex_unlock(&arena_region.lock);
    }
}

/* Takes c off the retained, adoptable and warm lists and out of the
 * retained stats. Region lock held. */
static void retained_unlink(chunk_t *c) {
    warm_unlink(c);
    adoptable_unlink(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        arena_region.retained = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->retained = false;
    arena_region.stats.chunks_retained--;
    arena_region.stats.bytes_retained -= c->size;
}

size_t retained_take(chunk_t *c, retained_warm_t *warm) {
    /* tables_end stays the high-water mark of what its arenas touched
     * (span_leave, span_take): release_pages marks and the unmap zeroes
     * only below it. */
    c->arena = NULL;
    c->retained = true;
    c->slow_free = true;
    if (warm && (c->kind != CHUNK_SMALL || c->poison))
        warm = NULL;
    if (warm)
        warm_link(warm, c); /* its free pages stay resident for the pool's next arenas */
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

retained_warm_t *retained_free(chunk_t *c, void *ptr) {
    if (c->live_blocks == 0) {
        arena_assert_internal(!"double free of an arena block");
        return NULL; /* a double free: never let the count wrap */
    }
    c->live_blocks--;
    if (c->kind == CHUNK_SMALL)
        block_dead_mark(ptr);
    size_t released = 0;
    if (c->live_blocks && c->kind == CHUNK_SMALL) {
        size_t page = region_page_index(ptr);
        /* This page, and the pages its blocks crossed into, may be free now;
         * a warm chunk's stay resident for its pool's next arenas. */
        if (--arena_region.page_live[page] == 0 && !c->warm_list) {
            size_t end = chunk_first_page(c) + chunk_page_count(c);
            released = release_pages(c, page, pages_emptied_run(page, end));
        }
    }
    retained_warm_t *warm = c->live_blocks ? NULL : c->warm_list;
    pthread_mutex_lock(&arena_region.lock);
    arena_region.stats.blocks_retained--;
    arena_region.stats.bytes_pages_released += released;
    if (c->live_blocks) {
        adoptable_list(c); /* its lines may be free now */
    } else {
        retained_unlink(c);
        arena_region.stats.retained_unmapped_total++;
    }
    pthread_mutex_unlock(&arena_region.lock);
    if (c->live_blocks == 0 && !warm)
        chunk_unmap(c);
    return warm;
}

void retained_survivor_free(chunk_t *c, void *ptr) {
    size_t page = region_page_index(ptr);
    arena_assert_internal(line_owner_get(region_line_index(ptr)) != owner_tag(c->arena_id)); /* (its arena frees its own) */
    if (arena_region.page_live[page] == 0 || c->foreign_live == 0) {
        arena_assert_internal(!"double free of an arena block");
        return; /* a double free: never let the counts wrap */
    }
    arena_region.page_live[page]--; /* an earlier phase's survivor; its page waits for the release */
    c->foreign_live--;
    block_dead_mark(ptr); /* its lines are free for a later span */
}

/* ---- finding free lines for an adoption ---- */

bool retained_span_find(const chunk_t *c, const char *from, size_t lines, char **start, char **end) {
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

/* Takes chunk c off the retained lists for an adoption. Region lock held. */
static void unlist_for_adoption(chunk_t *c) {
    retained_unlink(c);
    arena_region.stats.blocks_retained -= c->live_blocks;
    arena_region.stats.chunks_adopted_total++;
}

chunk_t *retained_warm_find(retained_warm_t *warm, size_t lines, char **start, char **end) {
    int tries = 0; /* bounded: a refill must stay cheap */
    for (chunk_t *c = warm->head; c && tries++ < 8; c = c->warm_next) {
        if (retained_span_find(c, c->base, lines, start, end)) {
            pthread_mutex_lock(&arena_region.lock);
            unlist_for_adoption(c);
            pthread_mutex_unlock(&arena_region.lock);
            return c;
        }
    }
    return NULL;
}

chunk_t *retained_adoptable_find(size_t chunk_size, size_t lines, char **start, char **end) {
    chunk_t *c = NULL;
    int tries = 0; /* bounded: a refill must stay cheap */
    pthread_mutex_lock(&arena_region.lock);
    chunk_t *candidate = arena_region.adoptable;
    while (candidate && tries++ < 8) {
        chunk_t *next = candidate->adopt_next;
        if (candidate->size == chunk_size) { /* (byte_limit and small_max assume the arena's size) */
            if (retained_span_find(candidate, candidate->base, lines, start, end)) {
                c = candidate;
                break;
            }
            if (lines == ADOPT_MIN_SPAN_LINES)
                adoptable_unlink(candidate); /* no free line: listed again by a free in it */
        }
        candidate = next;
    }
    if (c)
        unlist_for_adoption(c);
    pthread_mutex_unlock(&arena_region.lock);
    return c;
}

/* ---- test hook ---- */

const char *arena_testing_check_lists(void) {
    const char *problem = NULL;
    pthread_mutex_lock(&arena_region.lock);
    uint64_t retained = 0, limit = arena_region.stats.chunks_retained + 1;
    const chunk_t *prev = NULL;
    for (const chunk_t *c = arena_region.retained; c && !problem; prev = c, c = c->next) {
        if (++retained > limit)
            problem = "retained list: longer than chunks_retained (a cycle?)";
        else if (c->prev != prev)
            problem = "retained list: prev does not match";
        else if (!c->retained || c->arena || c->adopted)
            problem = "retained list: a member that is not a retained chunk";
    }
    if (!problem && retained != arena_region.stats.chunks_retained)
        problem = "retained list: length differs from chunks_retained";
    uint64_t adoptable = 0;
    prev = NULL;
    for (const chunk_t *c = arena_region.adoptable; c && !problem; prev = c, c = c->adopt_next) {
        if (++adoptable > retained)
            problem = "adoptable list: longer than the retained list (a cycle?)";
        else if (c->adopt_prev != prev)
            problem = "adoptable list: adopt_prev does not match";
        else if (!c->adoptable_listed || !c->retained)
            problem = "adoptable list: a member that is not a listed retained chunk";
    }
    pthread_mutex_unlock(&arena_region.lock);
    return problem;
}
