/* The process-wide region: one reservation of address space from which every
 * chunk is carved, a slot table mapping each 64 KiB slot to its chunk's
 * metadata (so ownership is a range compare and one load), the side tables,
 * arena ids, and the process-wide counters. The contract is in region.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena/region.h"
#include "arena/os_mem.h"
#include "arena/size_class.h"

region_t arena_region = {.lock = PTHREAD_MUTEX_INITIALIZER};
struct arena_ownership_map arena_ownership;

static pthread_once_t region_once = PTHREAD_ONCE_INIT;
static arena_error_t region_init_result = ARENA_ENOMEM;

size_t arena_region_requested_reserve(void) {
    if (arena_region.configured_reserve)
        return arena_region.configured_reserve;
    size_t v = ARENA_DEFAULT_RESERVE;
    (void)arena_env_reserve_bytes(&v); /* (a bad value keeps the default; the extension refuses it first) */
    return v;
}

static void region_init(void) {
    arena_size_classes_init();
    for (size_t reserve = arena_region_requested_reserve(); reserve >= REGION_MIN_RESERVE; reserve /= 2) {
        reserve &= ~(REGION_MIN_RESERVE - 1); /* whole GiBs */
        size_t slots = reserve >> REGION_SLOT_SHIFT;
        /* Reserve one max chunk more so the base can be aligned to 1 GiB:
         * then every power-of-two chunk is aligned to its own size. */
        char *raw = os_reserve(reserve + ARENA_MAX_CHUNK_SIZE);
        if (!raw)
            continue;
        size_t pages = reserve >> ARENA_PAGE_SHIFT;
        size_t table_bytes = slots * sizeof(struct chunk *);
        size_t bitmap_bytes = (slots + 63) / 64 * sizeof(uint64_t);
        size_t line_bytes = (reserve >> ARENA_LINE_SHIFT) * sizeof(uint32_t);
        size_t page_bytes = pages * (sizeof(uint32_t) + sizeof(uint16_t) + 2 * sizeof(uint8_t));
        size_t block_bits_bytes = reserve >> (ARENA_GRANULE_SHIFT + 2); /* two bits per granule */
        /* The tables cost only the pages that chunks actually use. */
        char *tables = os_alloc_table(table_bytes + bitmap_bytes + line_bytes + page_bytes + block_bits_bytes);
        if (!tables) {
            os_decommit(raw, reserve + ARENA_MAX_CHUNK_SIZE);
            continue;
        }
        char *next = tables + table_bytes + bitmap_bytes;
        arena_region.line_owner = (uint32_t *)next; /* (then the bitmaps: every table stays 8-byte aligned) */
        next += line_bytes;
        arena_region.block_bits = (uint64_t *)next;
        next += block_bits_bytes;
        arena_region.page_cross = (uint32_t *)next;
        arena_region.page_live = (uint16_t *)(next + pages * sizeof(uint32_t));
        arena_region.page_state = (uint8_t *)(next + pages * (sizeof(uint32_t) + sizeof(uint16_t)));
        arena_region.page_cross_live = arena_region.page_state + pages;
        uintptr_t aligned = ((uintptr_t)raw + ARENA_MAX_CHUNK_SIZE - 1) & ~(uintptr_t)(ARENA_MAX_CHUNK_SIZE - 1);
        arena_region.slot_owner = (_Atomic(struct chunk *) *)tables;
        slot_map_init(&arena_region.slots, (uint64_t *)(tables + table_bytes), slots);
        pthread_mutex_lock(&arena_region.lock); /* the stats' lock: arena_global_stats reads them */
        arena_region.stats.reserve_bytes = reserve;
        pthread_mutex_unlock(&arena_region.lock);
        /* Size last: a reader that sees it also sees the base and the table. */
        arena_ownership.slot_owner = (void *const *)tables;
        __atomic_store_n(&arena_ownership.base, aligned, __ATOMIC_RELAXED);
        __atomic_store_n(&arena_ownership.size, reserve, __ATOMIC_RELEASE);
        region_init_result = ARENA_OK;
        return;
    }
}

arena_error_t region_ensure(void) {
    pthread_once(&region_once, region_init);
    return region_init_result;
}

arena_error_t arena_region_configure(size_t reserve_bytes) {
    if (reserve_bytes < ARENA_MIN_RESERVE || reserve_bytes > ARENA_MAX_RESERVE)
        return ARENA_EINVAL;
    pthread_mutex_lock(&arena_region.lock);
    arena_error_t err = ARENA_EINVAL;
    if (__atomic_load_n(&arena_ownership.size, __ATOMIC_ACQUIRE) == 0 && arena_region.stats.arenas_created == 0) {
        arena_region.configured_reserve = reserve_bytes;
        err = ARENA_OK;
    }
    pthread_mutex_unlock(&arena_region.lock);
    return err;
}

static _Atomic uint64_t next_arena_id = 1;

uint64_t region_new_arena_id(void) { return atomic_fetch_add(&next_arena_id, 1); }

uint64_t arena_id_from_tag(uint32_t tag) {
    /* The most recent id with these low bits that has been issued. */
    uint64_t next = atomic_load_explicit(&next_arena_id, memory_order_relaxed);
    uint64_t id = (next & ~(uint64_t)UINT32_MAX) | tag;
    return id >= next ? id - ((uint64_t)1 << 32) : id;
}

void arena_global_stats(arena_global_stats_t *out) {
    pthread_mutex_lock(&arena_region.lock);
    *out = arena_region.stats;
    pthread_mutex_unlock(&arena_region.lock);
}

void arena_assert_fail(const char *expr, const char *file, int line, const char *func) {
    fprintf(stderr, "objarena: assertion failed: %s (%s:%d %s)\n", expr, file, line, func);
    abort();
}

const char *arena_error_name(arena_error_t err) {
    switch (err) {
    case ARENA_OK: return "ok";
    case ARENA_EINVAL: return "invalid argument";
    case ARENA_ENOMEM: return "out of memory";
    case ARENA_ELIMIT: return "arena byte limit reached";
    case ARENA_ECLOSED: return "arena released";
    }
    return "unknown error";
}
