/* Pools of warm chunks: empty chunks parked mapped and faulted in, handed to
 * the pool's next arenas, given back by trim or destroy. The contract is in
 * pool.h (and arena.h for the public half). */
#include <stddef.h>
#include <stdlib.h>

#include "arena/pool.h"

#define DEFAULT_MAX_WARM_BYTES ((size_t)256 << 20)

arena_error_t arena_pool_create(const arena_pool_config_t *config, arena_pool_t **out) {
    *out = NULL;
    bool huge_pages = config && config->huge_pages;
    size_t chunk = arena_default_chunk_size(config ? config->chunk_size : 0, huge_pages);
    if (!chunk_size_valid(chunk) || (huge_pages && chunk < ARENA_HUGE_PAGE_SIZE))
        return ARENA_EINVAL;
    arena_error_t err = region_ensure();
    if (err != ARENA_OK)
        return err;
    arena_pool_t *pool = calloc(1, sizeof *pool);
    if (!pool)
        return ARENA_ENOMEM;
    pool->chunk_size = chunk;
    pool->max_warm_bytes = config && config->max_warm_bytes ? config->max_warm_bytes : DEFAULT_MAX_WARM_BYTES;
    pool->huge_pages = huge_pages;
    *out = pool;
    return ARENA_OK;
}

/* Parked and warm retained chunks share max_warm_bytes (before, parking
 * looked at the parked bytes alone, and a pool behind task scopes held 503
 * MiB warm with a 256 MiB budget). A chunk smaller than the pool's (a task
 * scope's first chunk) fits only while a whole chunk of the pool's would
 * still fit beside it: the small ones never crowd out the chunks the pool
 * is for (the default pool, whose budget is one chunk, keeps none). */
static bool budget_fits(const arena_pool_t *pool, size_t size) {
    if (size > pool->chunk_size)
        return false;
    size_t spare = size < pool->chunk_size ? pool->chunk_size : 0;
    return pool->warm_bytes + pool->warm_retained.bytes + size + spare <= pool->max_warm_bytes;
}

static bool pool_has_room(const arena_pool_t *pool, const chunk_t *c) {
    return c->kind == CHUNK_SMALL && !c->poison && budget_fits(pool, c->size);
}

bool pool_park(arena_pool_t *pool, chunk_t *c) {
    if (!pool_has_room(pool, c))
        return false;
    /* Unpublished: a parked chunk is owned by no arena. */
    chunk_publish(c, NULL);
    c->arena = NULL;
    c->warm = true;
    chunk_t **list = c->size == pool->chunk_size ? &pool->warm : &pool->warm_small;
    c->next = *list;
    *list = c;
    pool->warm_bytes += c->size;
    pool->warm_chunks++;
    pool->parked++;
    pthread_mutex_lock(&arena_region.lock);
    arena_region.stats.warm_bytes += c->size;
    pthread_mutex_unlock(&arena_region.lock);
    return true;
}

bool pool_park_emptied(retained_warm_t *warm, chunk_t *c) {
    arena_pool_t *pool = (arena_pool_t *)((char *)warm - offsetof(arena_pool_t, warm_retained));
    if (!pool_park(pool, c))
        return false;
    pool->parked_emptied++;
    return true;
}

/* Takes chunk *link off its list. */
static chunk_t *unpark(arena_pool_t *pool, chunk_t **link) {
    chunk_t *c = *link;
    *link = c->next;
    pool->warm_bytes -= c->size;
    pool->warm_chunks--;
    pthread_mutex_lock(&arena_region.lock);
    arena_region.stats.warm_bytes -= c->size;
    pthread_mutex_unlock(&arena_region.lock);
    c->warm = false;
    c->next = NULL;
    return c;
}

chunk_t *pool_take(arena_pool_t *pool) {
    if (!pool->warm) {
        pool->misses++;
        return NULL;
    }
    pool->hits++;
    return unpark(pool, &pool->warm);
}

chunk_t *pool_take_small(arena_pool_t *pool, size_t size) {
    for (chunk_t **link = &pool->warm_small; *link; link = &(*link)->next) {
        if ((*link)->size == size) {
            pool->hits++;
            return unpark(pool, link);
        }
    }
    pool->misses++;
    return NULL;
}

retained_warm_t *pool_warm_list_for(arena_pool_t *pool, const chunk_t *c) {
    return pool && budget_fits(pool, c->size) ? &pool->warm_retained : NULL;
}

void arena_pool_trim(arena_pool_t *pool, size_t keep_bytes) {
    retained_warm_trim(&pool->warm_retained, pool->warm_bytes, keep_bytes);
    /* The small chunks first: the whole ones are what the pool is for. */
    while ((pool->warm_small || pool->warm) && pool->warm_bytes > keep_bytes) {
        chunk_t *c = unpark(pool, pool->warm_small ? &pool->warm_small : &pool->warm);
        pool->trimmed_bytes += c->size;
        c->prev = NULL;
        chunk_unmap(c); /* on no list now */
    }
}

arena_error_t arena_pool_destroy(arena_pool_t *pool) {
    if (!pool)
        return ARENA_OK;
    if (pool->arenas_open)
        return ARENA_EINVAL;
    arena_pool_trim(pool, 0);
    free(pool);
    return ARENA_OK;
}

/* The default pool: arenas with no pool of their own, of the default chunk
 * size, that neither poison nor ask for huge pages park up to
 * ARENA_DEFAULT_WARM_BYTES of empty chunks here (env OBJARENA_WARM_BYTES:
 * bytes, 0 for none). A worker running one short scope after another then
 * maps, faults in and unmaps nothing per scope (measured: two mmaps and ~8
 * page faults, about half the cost of a 20 us task's scope, before). */
static pthread_once_t default_pool_once = PTHREAD_ONCE_INIT;
static arena_pool_t *default_pool;

static void default_pool_create(void) {
    size_t warm = ARENA_DEFAULT_WARM_BYTES;
    /* 0..the region's size; a bad value keeps the default (the extension
     * refuses it with a ValueError before any arena exists). */
    (void)arena_env_warm_bytes(arena_region_requested_reserve(), &warm);
    if (warm < ARENA_DEFAULT_CHUNK_SIZE)
        return; /* not even one chunk: no default pool */
    arena_pool_config_t config = {.chunk_size = ARENA_DEFAULT_CHUNK_SIZE, .max_warm_bytes = warm};
    if (arena_pool_create(&config, &default_pool) != ARENA_OK)
        default_pool = NULL;
}

arena_pool_t *arena_default_pool(void) {
    pthread_once(&default_pool_once, default_pool_create);
    return default_pool;
}

void arena_pool_get_stats(const arena_pool_t *pool, arena_pool_stats_t *out) {
    out->warm_bytes = pool->warm_bytes;
    out->warm_chunks = pool->warm_chunks;
    out->hits = pool->hits;
    out->misses = pool->misses;
    out->parked = pool->parked;
    out->trimmed_bytes = pool->trimmed_bytes;
    out->arenas_open = pool->arenas_open;
    out->warm_retained_bytes = pool->warm_retained.bytes;
    out->warm_retained_chunks = pool->warm_retained.chunks;
    out->retained_hits = pool->retained_hits;
    out->parked_emptied = pool->parked_emptied;
}
