/* Allocation: the bump-pointer fast path (with reuse mode's free lists in
 * front of it), then chunk refills, large blocks, calloc and realloc. */
#include <string.h>

#include "arena/adopt.h"
#include "arena/track.h"

/* arena_alloc when the bump pointer cannot take the request: `block` is the
 * bytes it would take there (size rounded up, or its class's size in reuse
 * mode). Never inlined: alloc_bump reaches it by a tail call and saves no
 * register (inlined, it made alloc_bump push four). */
static __attribute__((noinline)) void *arena_alloc_slow(arena_t *a, size_t size, size_t block);

/* Pops a block of class cls (block: the class's size) off the free list,
 * or NULL. */
static inline char *free_list_pop(arena_t *a, size_t cls, size_t block, size_t size) {
    char *p = a->free_list[cls];
    if (!p)
        return NULL;
    track_mem_undefined(p, block);
    a->free_list[cls] = *(void **)p;
    uintptr_t offset = arena_region_offset(p); /* (one load of the base: atomic loads are not merged) */
    block_dead_clear(offset >> ARENA_GRANULE_SHIFT); /* live again */
    page_live_inc_index(offset >> ARENA_PAGE_SHIFT);
    if (ARENA_UNLIKELY(block_crosses_page(p, block)))
        arena_region.page_cross_live[offset >> ARENA_PAGE_SHIFT] = 1; /* live again */
    a->blocks_reused++;
    a->bytes_requested += size;
    return p;
}

/* The rare halves of arena_alloc, out of line and reached by tail calls,
 * so that the fast paths save no register. */

static void *alloc_bump(arena_t *a, size_t size, size_t block);

/* A reuse-mode request whose class is geometric (over 3 KiB). */
static __attribute__((noinline)) void *alloc_geometric_class(arena_t *a, size_t size) {
    unsigned cls = arena_size_class_geometric(arena_round_size(size));
    size_t block = arena_class_size[cls];
    char *p = free_list_pop(a, cls, block, size);
    return p ? p : alloc_bump(a, size, block);
}

/* A bump block that crosses a page boundary: the pages it covers learn
 * where it starts. */
static __attribute__((noinline)) void *alloc_bump_crossing(arena_t *a, char *p, size_t block, size_t size) {
    pages_mark_crossing(p, block);
    a->blocks_carved++;
    a->bytes_requested += size;
    track_mem_undefined(p, block);
    return p;
}

/* Bump allocation of `block` bytes (size rounded up, or its class's size in
 * reuse mode). */
static void *alloc_bump(arena_t *a, size_t size, size_t block) {
    char *p = a->bump;
    if (ARENA_LIKELY(size <= a->small_max && block <= (size_t)(a->end - p))) {
        a->bump = p + block;
        a->last_block = p;
        uintptr_t offset = arena_region_offset(p); /* (one load of the base, as in free_list_pop) */
        page_live_inc_index(offset >> ARENA_PAGE_SHIFT);
        if (ARENA_LIKELY(a->bump != a->end)) /* this block's end, the next one's start (p's is set) */
            block_start_set((offset + block) >> ARENA_GRANULE_SHIFT);
        if (ARENA_UNLIKELY(block_crosses_page(p, block)))
            return alloc_bump_crossing(a, p, block, size);
        a->blocks_carved++;
        a->bytes_requested += size;
        track_mem_undefined(p, block);
        return p;
    }
    return arena_alloc_slow(a, size, block);
}

/* Fast path budget (bump mode): a size compare, a round-up, a bounds
 * compare, a page-counter increment, the next block's start bit (an end
 * compare and an or), a page-crossing test (taken by ~1% of small blocks)
 * and four stores. Reuse mode first tries its size class's free list (a
 * load, a compare, two stores, the dead bit's and, the page-crossing test). Everything else is
 * a tail call to an out-of-line half, so neither path saves a register. */
void *arena_alloc(arena_t *a, size_t size) {
    size_t block = arena_round_size(size);
    if (a->reuse && size <= ARENA_CLASS_MAX) {
        if (ARENA_UNLIKELY(block > ARENA_LINEAR_MAX))
            return alloc_geometric_class(a, size);
        char *p = free_list_pop(a, block >> 4, block, size);
        if (p)
            return p;
    }
    return alloc_bump(a, size, block);
}

static bool within_limit(arena_t *a, size_t more) {
    if (a->byte_limit && (more > a->byte_limit || a->bytes_mapped > a->byte_limit - more)) {
        a->last_error = ARENA_ELIMIT;
        return false;
    }
    return true;
}

static void *alloc_large(arena_t *a, size_t size) {
    if (size > SIZE_MAX - REGION_SLOT_SIZE) {
        a->last_error = ARENA_ENOMEM;
        return NULL;
    }
    size_t mapped = (size + REGION_SLOT_SIZE - 1) & ~(REGION_SLOT_SIZE - 1);
    if (!within_limit(a, mapped))
        return NULL;
    chunk_t *c = chunk_map(mapped, REGION_SLOT_SIZE, CHUNK_LARGE, false);
    if (!c) {
        a->last_error = ARENA_ENOMEM;
        return NULL;
    }
    arena_chunk_attach(a, c);
    c->block_size = size;
    c->live_blocks = 1;
    a->large_mappings++;
    a->blocks_carved++;
    a->bytes_requested += size;
    track_mem_undefined(c->base, size);
    return c->base;
}

/* Makes room for a block of `block` bytes: the next span of the current
 * adopted chunk, a warm retained chunk of the pool, a warm chunk of the
 * pool, an adopted retained chunk, or a fresh chunk, in that order
 * (cheapest and least address space first). An arena with a small first
 * chunk (a task scope's) takes, for its first one, an adopted retained
 * chunk, a warm small chunk of the pool, or a fresh small chunk, and skips
 * the pool's whole chunks:
 * a task that parks after making little would hold a resident chunk of the
 * pool's the whole time it waits, and a thousand tasks waiting on a
 * semaphore would drain the pool before the running ones need it. */
static bool refill_chunk(arena_t *a, size_t block) {
    if (a->current && a->current->adopted && adopt_next_span(a, block))
        return true;
    if (!within_limit(a, a->chunk_size))
        return false;
    bool first_small = a->first_chunk_size && a->chunks_mapped == 0 && block <= a->first_chunk_size / 4;
    chunk_t *c = NULL;
    if (a->pool && !first_small) {
        if (a->adopt && a->pool->warm_retained.head && adopt_pool_retained(a, block))
            return true; /* a retained chunk of the pool's, its free pages still resident */
        c = pool_take(a->pool);
        if (c)
            arena_chunk_attach(a, c);
    }
    if (!c && a->adopt && adopt_retained_chunk(a, block))
        return true;
    if (!c && first_small && a->pool) {
        c = pool_take_small(a->pool, a->first_chunk_size);
        if (c)
            arena_chunk_attach(a, c);
    }
    if (!c) {
        /* The small first chunk (arena_config_t.first_chunk_size) only if
         * it leaves room for the block. */
        size_t size = first_small ? a->first_chunk_size : a->chunk_size;
        c = chunk_map(size, size, CHUNK_SMALL, a->huge_pages);
        if (c)
            arena_chunk_attach(a, c);
    }
    if (!c) {
        a->last_error = ARENA_ENOMEM;
        return false;
    }
    arena_leave_current(a);
    a->current = c;
    a->bump = c->base;
    a->end = c->base + c->size;
    a->last_block = NULL;
    a->chunks_mapped++;
    return true;
}

static __attribute__((noinline)) void *arena_alloc_slow(arena_t *a, size_t size, size_t block) {
    if (a->closed) {
        a->last_error = ARENA_ECLOSED;
        return NULL;
    }
    if (size > a->small_max)
        return alloc_large(a, size);
    if (block > ARENA_LINE_SIZE && a->current && a->current->adopted &&
        (size_t)(a->end - a->bump) >= ARENA_LINE_SIZE) {
        /* A medium block does not fit the current hole, which still has a
         * line or more: an overflow span takes it, the hole stays current. */
        void *p = adopt_overflow_alloc(a, size, block);
        if (p)
            return p;
    }
    if (!refill_chunk(a, block))
        return NULL;
    return arena_alloc(a, size); /* fits now: every refill leaves room for the block */
}

void *arena_calloc(arena_t *a, size_t count, size_t size) {
    size_t total;
    if (__builtin_mul_overflow(count, size, &total)) {
        a->last_error = ARENA_EINVAL;
        return NULL;
    }
    void *p = arena_alloc(a, total);
    if (p)
        memset(p, 0, total);
    return p;
}

void *arena_realloc(arena_t *a, void *ptr, size_t size) {
    if (!ptr)
        return arena_alloc(a, size);
    chunk_t *c = chunk_lookup(ptr);
    if (!c) {
        a->last_error = ARENA_EINVAL;
        return NULL;
    }
    char *p = ptr;
    if (c->kind == CHUNK_SMALL) {
        size_t block = c->reuse && c->arena && chunk_block_is_own(c, p) ? chunk_block_size(c, p) : 0;
        if (size <= block && size > block / 2)
            return p; /* in place inside its block, unless a smaller class saves half */
        if (c == a->current && p == a->last_block && size <= a->small_max) {
            /* The most recent block grows or shrinks in place; in reuse mode
             * it takes the class size of its new size (its start bit stays;
             * the next start moves to its new end). */
            size_t new_block = arena_round_size(size);
            if (a->reuse && size <= ARENA_CLASS_MAX)
                new_block = arena_class_size[arena_size_class(new_block)];
            char *new_end = p + new_block;
            if (new_end <= a->end) {
                if (new_end > a->bump) {
                    track_mem_undefined(a->bump, (size_t)(new_end - a->bump));
                    a->bytes_requested += (size_t)(new_end - a->bump);
                } else {
                    track_mem_noaccess(new_end, (size_t)(a->bump - new_end));
                }
                if (a->bump != a->end)
                    block_bits_clear(region_granule_index(a->bump), region_granule_index(a->bump) + 1);
                a->bump = new_end;
                if (new_end != a->end)
                    block_start_mark(new_end);
                if (block_crosses_page(p, (size_t)(new_end - p)))
                    pages_mark_crossing(p, (size_t)(new_end - p));
                return p;
            }
        }
    } else if (size <= c->size && size > a->small_max / 2) {
        /* A large block, in place inside its own mapping; one shrunk far
         * below the large threshold moves so its mapping can go back. */
        if (size > c->block_size) {
            track_mem_undefined(p + c->block_size, size - c->block_size);
            if (c->arena)
                c->arena->bytes_requested += size - c->block_size;
        }
        c->block_size = size;
        return p;
    }
    /* Measured before allocating: the new block may land in the same chunk,
     * and the copy must not reach into it. */
    size_t readable = chunk_readable_size(c, p);
    void *q = arena_alloc(a, size);
    if (!q)
        return NULL;
    memcpy(q, p, readable < size ? readable : size);
    arena_free(ptr);
    return q;
}
