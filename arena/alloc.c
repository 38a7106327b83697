/* Allocation: the bump-pointer fast path, the size-class fast path of reuse
 * mode, then chunk refills, class pages, large blocks, calloc and realloc. */
#include <string.h>

#include "arena/internal.h"
#include "arena/track.h"

static inline void page_live_inc(const void *p) {
    arena_region.page_live[region_page_index(p)]++;
}

static void *alloc_class_slow(arena_t *a, size_t cls, size_t size);

/* Fast path budget (bump mode): a size compare, a round-up, a bounds
 * compare, a page-counter increment, a page-crossing test (taken by ~1% of
 * small blocks) and four stores. Reuse mode: a free-list pop or a bump inside
 * the class's page, plus the page counter. Everything else is out of line. */
void *arena_alloc(arena_t *a, size_t size) {
    if (a->reuse && size <= ARENA_CLASS_MAX) {
        size_t cls = (size + ARENA_ALIGNMENT - 1) / ARENA_ALIGNMENT;
        cls += cls == 0;
        size_t block = cls * ARENA_ALIGNMENT;
        char *p = a->free_list[cls];
        if (p) {
            track_mem_undefined(p, block);
            a->free_list[cls] = *(void **)p;
            a->blocks_reused++;
        } else {
            p = a->class_bump[cls];
            if (ARENA_UNLIKELY((size_t)(a->class_end[cls] - p) < block))
                return alloc_class_slow(a, cls, size);
            a->class_bump[cls] = p + block;
            track_mem_undefined(p, block);
        }
        page_live_inc(p);
        a->blocks_allocated++;
        a->bytes_requested += size;
        return p;
    }
    char *p = a->bump;
    size_t rounded = arena_round_size(size);
    if (ARENA_LIKELY(size <= a->small_max && rounded <= (size_t)(a->end - p))) {
        a->bump = p + rounded;
        a->last_block = p;
        page_live_inc(p);
        if (ARENA_UNLIKELY((((uintptr_t)p ^ ((uintptr_t)p + rounded - 1)) >> ARENA_PAGE_SHIFT) != 0))
            chunk_mark_crossing(p, rounded);
        a->blocks_allocated++;
        a->bytes_requested += size;
        track_mem_undefined(p, rounded);
        return p;
    }
    return arena_alloc_slow(a, size);
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
    chunk_t *c = chunk_map(a, mapped, REGION_SLOT_SIZE, CHUNK_LARGE);
    if (!c) {
        a->last_error = ARENA_ENOMEM;
        return NULL;
    }
    c->block_size = size;
    c->live_blocks = 1;
    a->large_mappings++;
    a->blocks_allocated++;
    a->bytes_requested += size;
    track_mem_undefined(c->base, size);
    return c->base;
}

/* Makes a fresh chunk the current one (from the pool when it has one). */
static bool refill_chunk(arena_t *a) {
    if (!within_limit(a, a->chunk_size))
        return false;
    chunk_t *c = a->pool ? pool_take(a->pool, a) : NULL;
    if (!c)
        c = chunk_map(a, a->chunk_size, a->chunk_size, CHUNK_SMALL);
    if (!c) {
        a->last_error = ARENA_ENOMEM;
        return false;
    }
    if (a->current)
        a->current->used_end = a->bump;
    a->current = c;
    a->bump = c->base;
    a->end = c->base + c->size;
    a->last_block = NULL;
    a->chunks_mapped++;
    return true;
}

void *arena_alloc_slow(arena_t *a, size_t size) {
    if (a->closed) {
        a->last_error = ARENA_ECLOSED;
        return NULL;
    }
    if (size > a->small_max)
        return alloc_large(a, size);
    if (!refill_chunk(a))
        return NULL;
    return arena_alloc(a, size); /* fits now: small_max < chunk_size */
}

/* A new page for size class cls, cut page-aligned from the bump region. */
static void *alloc_class_slow(arena_t *a, size_t cls, size_t size) {
    if (a->closed) {
        a->last_error = ARENA_ECLOSED;
        return NULL;
    }
    char *page = (char *)(((uintptr_t)a->bump + ARENA_PAGE_SIZE - 1) & ~(uintptr_t)(ARENA_PAGE_SIZE - 1));
    if (!a->current || page > a->end || (size_t)(a->end - page) < ARENA_PAGE_SIZE) {
        if (!refill_chunk(a))
            return NULL;
        page = a->bump; /* chunks are page-aligned */
    }
    /* The skipped gap is never handed out but may be read by a realloc of
     * the bump block before it: make it addressable for ASan. */
    track_mem_undefined(a->bump, (size_t)(page - a->bump));
    a->bump = page + ARENA_PAGE_SIZE;
    a->last_block = NULL; /* the bump block before the page must not grow into it */
    size_t block = cls * ARENA_ALIGNMENT;
    arena_region.page_class[region_page_index(page)] = (uint8_t)cls;
    a->class_bump[cls] = page;
    a->class_end[cls] = page + ARENA_PAGE_SIZE / block * block;
    return arena_alloc(a, size);
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
    chunk_t *c = chunk_map_lookup(ptr);
    if (!c) {
        a->last_error = ARENA_EINVAL;
        return NULL;
    }
    char *p = ptr;
    if (c->kind == CHUNK_SMALL) {
        uint8_t cls = arena_region.page_class[region_page_index(p)];
        if (cls != PAGE_CLASS_BUMP) {
            /* A size-class block: in place while the new size fits its class
             * and is not so small that a smaller class would save half. */
            size_t block = (size_t)cls * ARENA_ALIGNMENT;
            if (size <= block && size > block / 2)
                return p;
        } else if (c == a->current && p == a->last_block && size <= a->small_max) {
            char *new_end = p + arena_round_size(size);
            if (new_end <= a->end) {
                if (new_end > a->bump) {
                    track_mem_undefined(a->bump, (size_t)(new_end - a->bump));
                    a->bytes_requested += (size_t)(new_end - a->bump);
                } else {
                    track_mem_noaccess(new_end, (size_t)(a->bump - new_end));
                }
                a->bump = new_end;
                if ((((uintptr_t)p ^ ((uintptr_t)new_end - 1)) >> ARENA_PAGE_SHIFT) != 0)
                    chunk_mark_crossing(p, (size_t)(new_end - p));
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
