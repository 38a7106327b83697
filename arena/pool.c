/* Pools of warm chunks: empty chunks parked mapped and faulted in, handed to
 * the pool's next arenas, given back by trim or destroy. The contract is in
 * pool.h (and arena.h for the public half). */
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

bool pool_park(arena_pool_t *pool, chunk_t *c) {
    if (c->kind != CHUNK_SMALL || c->poison || c->size != pool->chunk_size ||
        pool->warm_bytes + c->size > pool->max_warm_bytes)
        return false;
    /* Unpublished: a parked chunk is owned by no arena. */
    chunk_publish(c, NULL);
    c->arena = NULL;
    c->warm = true;
    c->next = pool->warm;
    pool->warm = c;
    pool->warm_bytes += c->size;
    pool->warm_chunks++;
    pool->parked++;
    pthread_mutex_lock(&arena_region.lock);
    arena_region.stats.warm_bytes += c->size;
    pthread_mutex_unlock(&arena_region.lock);
    return true;
}

chunk_t *pool_take(arena_pool_t *pool) {
    chunk_t *c = pool->warm;
    if (!c) {
        pool->misses++;
        return NULL;
    }
    pool->warm = c->next;
    pool->warm_bytes -= c->size;
    pool->warm_chunks--;
    pool->hits++;
    pthread_mutex_lock(&arena_region.lock);
    arena_region.stats.warm_bytes -= c->size;
    pthread_mutex_unlock(&arena_region.lock);
    c->warm = false;
    c->next = NULL;
    return c;
}

retained_warm_t *pool_warm_list_for(arena_pool_t *pool, const chunk_t *c) {
    if (!pool || c->size != pool->chunk_size ||
        pool->warm_bytes + pool->warm_retained.bytes + c->size > pool->max_warm_bytes)
        return NULL;
    return &pool->warm_retained;
}

void arena_pool_trim(arena_pool_t *pool, size_t keep_bytes) {
    retained_warm_trim(&pool->warm_retained, pool->warm_bytes, keep_bytes);
    while (pool->warm && pool->warm_bytes > keep_bytes) {
        chunk_t *c = pool->warm;
        pool->warm = c->next;
        pool->warm_bytes -= c->size;
        pool->warm_chunks--;
        pool->trimmed_bytes += c->size;
        c->next = c->prev = NULL;
        c->warm = false;
        pthread_mutex_lock(&arena_region.lock);
        arena_region.stats.warm_bytes -= c->size;
        pthread_mutex_unlock(&arena_region.lock);
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
}
