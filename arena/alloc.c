/* Allocation: the bump-pointer fast path, then chunk refills, large blocks,
 * calloc and realloc. */
#include <string.h>

#include "arena/internal.h"
#include "arena/track.h"

/* Fast path budget: a size compare, a round-up, a bounds compare, four
 * stores (bump, last block, chunk live count, two counters) -- about a dozen
 * instructions and two predictable branches. Everything else is
 * arena_alloc_slow. */
void *arena_alloc(arena_t *a, size_t size) {
    char *p = a->bump;
    size_t rounded = arena_round_size(size);
    if (ARENA_LIKELY(size <= a->small_max && rounded <= (size_t)(a->end - p))) {
        a->bump = p + rounded;
        a->last_block = p;
        a->current->live_blocks++;
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

void *arena_alloc_slow(arena_t *a, size_t size) {
    if (a->closed) {
        a->last_error = ARENA_ECLOSED;
        return NULL;
    }
    if (size > a->small_max)
        return alloc_large(a, size);
    if (!within_limit(a, a->chunk_size))
        return NULL;
    chunk_t *c = chunk_map(a, a->chunk_size, a->chunk_size, CHUNK_SMALL);
    if (!c) {
        a->last_error = ARENA_ENOMEM;
        return NULL;
    }
    if (a->current)
        a->current->used_end = a->bump;
    a->current = c;
    a->bump = c->base;
    a->end = c->base + c->size;
    a->chunks_mapped++;
    return arena_alloc(a, size); /* fits now: small_max < chunk_size */
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
    if (c->kind == CHUNK_SMALL && c == a->current && p == a->last_block && size <= a->small_max) {
        char *new_end = p + arena_round_size(size);
        if (new_end <= a->end) {
            if (new_end > a->bump) {
                track_mem_undefined(a->bump, (size_t)(new_end - a->bump));
                a->bytes_requested += (size_t)(new_end - a->bump);
            } else {
                track_mem_noaccess(new_end, (size_t)(a->bump - new_end));
            }
            a->bump = new_end;
            return p;
        }
    } else if (c->kind == CHUNK_LARGE && size <= c->size && size > a->small_max / 2) {
        /* In place inside its own mapping; a large block shrunk far below the
         * large threshold moves so its mapping can go back to the OS. */
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
