/* Arena lifecycle: create, release (the end of a phase), destroy, stats.
 * Top layer (arena/README.md): the release is where a scope's exit enters
 * the library, and it reads top-down: this file decides each chunk's fate
 * and calls one layer below for each (adopt.h, pool.h, retained.h,
 * chunk.h), which never call back up. */
#include <stdlib.h>
#include <string.h>

#include "arena/adopt.h"

void arena_config_init(arena_config_t *config) {
    memset(config, 0, sizeof *config);
    config->adopt_retained = true; /* chunk_size 0: the default for the other settings */
}

/* One spare handle: a worker's scope per task creates and destroys an
 * arena each time, and glibc's calloc of the 2.4 KiB handle cost ~2,800
 * instructions a task (callgrind, 3.11), a memset of a recycled one ~150.
 * Exchanged atomically, so even callers serialized by different locks
 * never share it. Off under ASan, which should see a handle used after
 * arena_destroy. */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_SPARE_HANDLE 0
#else
#define ARENA_SPARE_HANDLE 1
#endif
static _Atomic(arena_t *) spare_handle;

static arena_t *handle_new(void) {
    arena_t *a = ARENA_SPARE_HANDLE ? atomic_exchange(&spare_handle, NULL) : NULL;
    if (a) {
        memset(a, 0, sizeof *a);
        return a;
    }
    return calloc(1, sizeof *a);
}

static void handle_free(arena_t *a) {
    if (ARENA_SPARE_HANDLE)
        a = atomic_exchange(&spare_handle, a); /* (the one it replaces, or NULL) */
    free(a);
}

arena_error_t arena_create(const arena_config_t *config, arena_t **out) {
    *out = NULL;
    arena_config_t defaults;
    if (!config) {
        arena_config_init(&defaults);
        config = &defaults;
    }
    bool huge_pages = config->huge_pages || (config->pool && config->pool->huge_pages);
    size_t chunk_size = arena_default_chunk_size(config->chunk_size, huge_pages);
    if (config->pool)
        chunk_size = config->pool->chunk_size;
    if (!chunk_size_valid(chunk_size) || (huge_pages && chunk_size < ARENA_HUGE_PAGE_SIZE))
        return ARENA_EINVAL;
    if (config->first_chunk_size && !chunk_size_valid(config->first_chunk_size))
        return ARENA_EINVAL;
    arena_error_t err = region_ensure();
    if (err != ARENA_OK)
        return err;
    arena_t *a = handle_new();
    if (!a)
        return ARENA_ENOMEM;
    a->chunk_size = chunk_size;
    if (config->first_chunk_size < chunk_size && !huge_pages)
        a->first_chunk_size = config->first_chunk_size;
    /* Above a quarter chunk a dedicated mapping wastes less than the chunk
     * tail a block would strand. */
    a->small_max = chunk_size / 4;
    a->byte_limit = config->byte_limit;
    a->poison = config->poison_on_release;
    a->reuse = config->reuse;
    a->adopt = config->adopt_retained && !config->poison_on_release;
    a->pool = config->pool;
    if (!a->pool && !a->poison && !huge_pages && chunk_size == ARENA_DEFAULT_CHUNK_SIZE)
        a->pool = arena_default_pool(); /* (NULL when turned off) */
    a->huge_pages = huge_pages;
    if (a->pool)
        a->pool->arenas_open++;
    a->id = region_new_arena_id();
    pthread_mutex_lock(&arena_region.lock);
    arena_region.stats.arenas_live++;
    arena_region.stats.arenas_created++;
    pthread_mutex_unlock(&arena_region.lock);
    *out = a;
    return ARENA_OK;
}

void arena_release(arena_t *a) {
    if (a->closed)
        return;
    a->closed = true;
    arena_leave_current(a);
    a->current = NULL;
    a->bump = a->end = a->last_block = NULL;

    memset(a->free_list, 0, sizeof a->free_list);

    arena_stats_t *r = &a->at_release;
    chunk_t *c = a->chunks;
    while (c) {
        chunk_t *next = c->next;
        uint64_t live = c->kind == CHUNK_LARGE ? c->live_blocks : chunk_count_live(c);
        /* In an adopted chunk only the arena's own lines' blocks are its own. */
        uint64_t own = c->adopted ? adopted_own_live(c) : live;
        c->adopted = false;
        c->reuse = false;
        /* Off the arena's list first: prev/next are about to link it into
         * a pool's or the retained list, and a neighbour unmapped later in
         * this loop must not write through them. */
        arena_chunk_detach(c);
        if (live == 0) {
            r->chunks_released++;
            r->bytes_released += c->size;
            if (a->pool && pool_park(a->pool, c))
                r->chunks_parked++;
            else
                chunk_unmap(c);
        } else {
            if (own) { /* (a chunk that only earlier phases' survivors hold is not this arena's doing) */
                r->chunks_retained++;
                r->bytes_retained += c->size;
                r->live_blocks_at_release += own;
            }
            r->bytes_pages_released += retained_take(c, pool_warm_list_for(a->pool, c));
        }
        c = next;
    }
    a->chunks = NULL;
    if (a->pool) {
        a->pool->arenas_open--;
        a->pool = NULL;
    }
    r->released = true;
}

void arena_destroy(arena_t *a) {
    if (!a)
        return;
    arena_release(a);
    pthread_mutex_lock(&arena_region.lock);
    arena_region.stats.arenas_live--;
    pthread_mutex_unlock(&arena_region.lock);
    handle_free(a);
}

/* A free-list pop counts only blocks_reused (arena_state.h). */
static uint64_t blocks_allocated(const arena_t *a) { return a->blocks_carved + a->blocks_reused; }

void arena_get_stats(const arena_t *a, arena_stats_t *out) {
    *out = a->at_release;
    out->bytes_requested = a->bytes_requested;
    out->blocks_allocated = blocks_allocated(a);
    out->blocks_freed = a->blocks_freed;
    out->bytes_mapped = a->bytes_mapped;
    out->peak_mapped = a->peak_mapped;
    out->chunks_mapped = a->chunks_mapped;
    out->large_mappings = a->large_mappings;
    out->blocks_reused = a->blocks_reused;
    out->chunks_adopted = a->chunks_adopted;
    out->bytes_adopted = a->bytes_adopted;
}

uint64_t arena_id(const arena_t *a) { return a->id; }

uint64_t arena_live_blocks(const arena_t *a) { return blocks_allocated(a) - a->blocks_freed; }

uint64_t arena_bytes_mapped(const arena_t *a) { return a->bytes_mapped; }

void arena_set_byte_limit(arena_t *a, size_t byte_limit) { a->byte_limit = byte_limit; }

arena_error_t arena_last_error(const arena_t *a) { return a->last_error; }
