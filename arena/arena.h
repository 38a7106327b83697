/* objarena: a bump-pointer arena allocator with exact, deferred release.
 *
 * Contract (what a caller may rely on)
 * ------------------------------------
 * - An arena hands out blocks from chunks: power-of-two sized, chunk-aligned
 *   ranges carved from one process-wide reservation of address space (the
 *   "region"). Requests larger than chunk_size/4 get a dedicated mapping (a
 *   "large chunk" holding exactly one block), carved from the same region.
 * - Every block is 16-byte aligned (CPython's ALIGNMENT on 64-bit). A request
 *   of 0 bytes gets a unique non-NULL block of 16 bytes.
 * - arena_free() makes a block reusable inside its open arena only in reuse
 *   mode (config.reuse); otherwise frees are no-ops for the arena's own
 *   allocation ("bump mode"). Either way the block is marked dead and its
 *   page's live count drops. A large chunk is returned to the OS by the
 *   free of its block.
 * - arena_release() ends the arena's allocating life. Every chunk with no live
 *   block is returned to the OS at once; every chunk that still holds a live
 *   block is RETAINED: it stays mapped, readable and writable, and is returned
 *   to the OS by the arena_free() of its last live block, whenever that
 *   happens. Nothing reachable is ever unmapped: a chunk is unmapped only
 *   when its live count is zero. (The count is only as exact as the caller's
 *   frees: a block never freed pins its chunk forever; that is a leak, never
 *   a crash.)
 * - A retained chunk's free space is handed back and reused, never its live
 *   blocks (arena/retained.h says exactly how): its 4 KiB pages that no live
 *   block touches go back to the OS at the release and as later frees empty
 *   them; a later arena with adopt_retained allocates into its free 128-byte
 *   lines (handed-back pages and the holes around survivors alike) before
 *   mapping fresh chunks. A live block's bytes are never written, moved or
 *   unmapped by anyone but its owner; a survivor pins the lines it touches.
 * - Ownership: the arena library owns all chunk memory and chunk metadata.
 *   The caller owns the arena_t handle until arena_destroy(). Blocks belong to
 *   the caller until freed; a block may be freed or reallocated after its
 *   arena was released or destroyed.
 * - Failure: functions return NULL or an arena_error_t; nothing aborts.
 *   A failed alloc/realloc leaves the arena, and the block passed to realloc,
 *   exactly as they were.
 *
 * Thread safety
 * -------------
 * - arena_owns(), arena_block_arena_id(), arena_global_stats() and
 *   arena_region_contains() are safe from any thread at any time, including
 *   while other threads create or unmap chunks. arena_owns() is a range
 *   compare and one table load.
 * - Every other call must be serialized by the caller with ONE lock shared by
 *   all arenas (the CPython hook uses the GIL of the main interpreter): frees
 *   of blocks of one arena touch chunk counters that allocation in any arena
 *   may be touching, and retained chunks belong to no arena.
 *   Internally chunk mapping/unmapping takes a mutex, so two callers that are
 *   serialized by different locks never corrupt the region itself; the
 *   counters are what need the one lock.
 *
 * Inside
 * ------
 * The library is a stack of layers (arena/README.md draws them and the
 * exit path): os_mem, region, pages, chunk, retained, pool, arena_state,
 * adopt, then this API (arena.c, alloc.c, free.c). Each internal header
 * states what its layer owns, its thread safety and how it fails; each
 * file includes only lower layers' headers (//tests/c:layering_test).
 */
#ifndef OBJARENA_ARENA_H
#define OBJARENA_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ARENA_ALIGNMENT 16u
#define ARENA_DEFAULT_CHUNK_SIZE ((size_t)1 << 20)  /* 1 MiB */
#define ARENA_MIN_CHUNK_SIZE ((size_t)1 << 16)      /* 64 KiB: one region slot */
#define ARENA_MAX_CHUNK_SIZE ((size_t)1 << 30)      /* 1 GiB */
#define ARENA_DEFAULT_RESERVE ((size_t)64 << 30)    /* 64 GiB of address space */
#define ARENA_HUGE_PAGE_SIZE ((size_t)2 << 20)      /* x86-64's transparent huge page */

typedef enum arena_error {
    ARENA_OK = 0,
    ARENA_EINVAL = 1,   /* bad config (chunk size not a power of two in range...) */
    ARENA_ENOMEM = 2,   /* the OS refused memory (or the region is exhausted) */
    ARENA_ELIMIT = 3,   /* the arena's byte limit would be exceeded */
    ARENA_ECLOSED = 4,  /* the arena was released: it allocates no more */
} arena_error_t;

/* Returns a static, human-readable name for an error code. */
const char *arena_error_name(arena_error_t err);

/* The chunk size an arena or pool configured with chunk_size (0: the
 * default) and huge_pages uses: chunk_size itself, or the default, which
 * huge pages raise to ARENA_HUGE_PAGE_SIZE. Not validated. */
size_t arena_default_chunk_size(size_t chunk_size, bool huge_pages);

typedef struct arena_config {
    /* Power of two in [ARENA_MIN_CHUNK_SIZE, ARENA_MAX_CHUNK_SIZE];
     * 0 means ARENA_DEFAULT_CHUNK_SIZE, or ARENA_HUGE_PAGE_SIZE with
     * huge_pages. */
    size_t chunk_size;
    /* Upper bound on the bytes this arena may have mapped at once (small and
     * large chunks); 0 means unlimited. Checked when a chunk is mapped, so the
     * fast path pays nothing. An allocation that would pass it returns NULL and
     * sets the arena's last error to ARENA_ELIMIT; the arena stays usable. */
    size_t byte_limit;
    /* Debug: memory returned to the OS is instead made PROT_NONE and its
     * address range quarantined (never reused), so any access to released
     * memory faults deterministically. Costs address space, never RSS. */
    bool poison_on_release;
    /* Reuse mode: a block of up to 256 KiB is rounded to its size class,
     * its start is recorded (one bit per 16-byte granule, in a side table,
     * so its size is the distance to the next start) and, freed while the arena
     * is open, goes on its class's free list; the next request of that class
     * takes it (LIFO). New blocks are still bump-allocated, so objects made
     * together share pages. Off: pure bump ("frees are no-ops"). */
    bool reuse;
    /* Ask for transparent huge pages (MADV_HUGEPAGE) on fresh chunks, so a
     * phase that maps much fresh memory takes one fault per 2 MiB instead of
     * 512. Needs chunks of at least ARENA_HUGE_PAGE_SIZE (chunk_size 0 then
     * means that size; a smaller one, or a pool's, is ARENA_EINVAL). Costs
     * resident memory: a chunk's 2 MiB become resident as a whole when first
     * touched. Handing back a retained chunk's free pages splits its huge
     * page, so phases whose survivors stay fault in fresh huge pages each
     * time (measured slower than 4 KiB pages, docs/benchmarks.md), and with the
     * kernel's THP defrag set to "madvise" a fault may compact memory
     * synchronously. Off by default. */
    bool huge_pages;
    /* Optional pool of warm chunks (see arena_pool_create); chunk_size is
     * then the pool's. The pool must outlive the arena's open phase. NULL:
     * the default pool (arena_default_pool) when it applies. */
    struct arena_pool *pool;
    /* Adoption (on in arena_config_init's defaults): before mapping a fresh
     * chunk, the arena takes a RETAINED chunk (of any released arena, of the
     * arena's chunk size) that has free lines (128 bytes that no live block
     * touches) and bump-allocates through its runs of free lines ("spans")
     * in address order, down to a single line between two survivors. The
     * survivors' bytes are never touched: their blocks stay live, keep their
     * arena id (arena_block_arena_id answers per line) and are not counted
     * as this arena's at release. So phases whose survivors pin a little
     * refill the same pages, as pymalloc refills its pools, instead of
     * pinning a page (or a chunk) each forever. Never done by poisoning
     * arenas, never with poisoned chunks. */
    bool adopt_retained;
    /* The size of the arena's first fresh chunk, if smaller than chunk_size
     * (0: chunk_size). A power of two >= ARENA_MIN_CHUNK_SIZE; ignored with
     * huge pages, and for a first block above a quarter of it. For arenas
     * of which many are open at once and most make little (a scope per
     * asyncio task, pyext/task_scope.h): 10,000 of them hold 64 KiB chunks,
     * not 1 MiB ones. With a pool the first chunk is still a small one:
     * an adopted retained chunk of that size, a small chunk the pool keeps
     * warm, or a fresh one, never one of the pool's whole chunks (an arena
     * that parks after making little would hold it the whole time). At
     * release an empty first chunk is parked in the pool if a whole chunk
     * would still fit in the pool's budget beside it, else unmapped; one
     * with survivors is retained. */
    size_t first_chunk_size;
} arena_config_t;

typedef struct arena arena_t;
typedef struct arena_pool arena_pool_t;

/* Fills *config with the defaults. */
void arena_config_init(arena_config_t *config);

/* Creates an arena. config may be NULL for defaults. On success stores the
 * handle in *out and returns ARENA_OK; on failure *out is NULL. Maps no chunk
 * until the first allocation. Reserves the process-wide region on first use
 * (size: arena_region_configure(), else env OBJARENA_RESERVE_BYTES, else
 * ARENA_DEFAULT_RESERVE, halved until the OS accepts, down to 1 GiB). */
arena_error_t arena_create(const arena_config_t *config, arena_t **out);

/* Allocates size bytes, 16-byte aligned. NULL on failure (see
 * arena_last_error). The fast path is a bump of a pointer. */
void *arena_alloc(arena_t *arena, size_t size);

/* count*size zeroed bytes; NULL on overflow (ARENA_EINVAL) or failure. */
void *arena_calloc(arena_t *arena, size_t count, size_t size);

/* Resizes block ptr (which must be owned by some arena, live, or NULL).
 * - ptr == NULL: arena_alloc(arena, size).
 * - ptr is the most recent block of `arena` and the new size fits its chunk,
 *   or ptr is a large block whose mapping fits the new size: resized in place.
 * - otherwise a new block is allocated from `arena`, the old contents are
 *   copied up to min(size, arena_block_readable_size(ptr)) and ptr is freed.
 *   ptr may belong to any arena, including a released one.
 * On failure returns NULL and ptr is untouched and still live. */
void *arena_realloc(arena_t *arena, void *ptr, size_t size);

/* Frees a live block of any arena (open, released or destroyed). O(1).
 * ptr must be owned (arena_owns) and live; NULL is ignored. A foreign pointer
 * is ignored (and asserted on in debug builds). */
void arena_free(void *ptr);

/* Is ptr inside a mapped chunk (open or retained) of any arena? Safe for any
 * pointer value and from any thread. Interior pointers count. Inline: a
 * subtract, a compare and, for pointers inside the region, one table load
 * (it runs on every free the CPython hook sees). */
static inline bool arena_owns(const void *ptr);

/* The ownership map behind arena_owns (read-only for callers). */
struct arena_ownership_map {
    uintptr_t base;           /* first byte of the region (0 before it exists) */
    size_t size;              /* bytes in the region (0 before it exists) */
    void *const *slot_owner;  /* per 64 KiB slot: its chunk, or NULL */
};
extern struct arena_ownership_map arena_ownership;

/* ptr's offset from the region's base: huge for pointers below it. Only
 * meaningful after a load of the size that was not 0 (arena_region_size). */
static inline uintptr_t arena_region_offset(const void *ptr) {
    return (uintptr_t)ptr - __atomic_load_n(&arena_ownership.base, __ATOMIC_RELAXED);
}

/* The test-only probe between the two loads of an ownership check
 * (tests/c/ownership_init_race_test.cc builds the library with it). */
#ifdef ARENA_TESTING_OWNERSHIP_PROBE
void arena_testing_between_ownership_loads(void);
#define ARENA_BETWEEN_OWNERSHIP_LOADS() arena_testing_between_ownership_loads()
#else
#define ARENA_BETWEEN_OWNERSHIP_LOADS() ((void)0)
#endif

/* The region's size, to compare an offset with: loaded BEFORE the base.
 * region_ensure stores the base, then the size (release), so a reader that
 * sees a size also sees the base. In the other order a reader could pair a
 * base of 0, read before the region existed, with the size read after it
 * (descheduled between the two loads while another thread made the region
 * and its first chunks): NULL and every pointer under the size would look
 * up the slot table at offset ptr, and NULL would be "owned" by the chunk in
 * slot 0. (Seen in CI under ASan and load: a reader's arena_block_arena_id
 * read the line owner of NULL, 2^64 - base bytes into the region.) Two
 * plain moves on x86 in either order. */
static inline size_t arena_region_size(void) {
    size_t size = __atomic_load_n(&arena_ownership.size, __ATOMIC_ACQUIRE);
    ARENA_BETWEEN_OWNERSHIP_LOADS();
    return size;
}

/* Is ptr inside the region's address range (mapped or not)? The first half
 * of arena_owns: a pass-through free tests this alone, and looks the slot
 * up out of line for the rare pointer inside. */
static inline bool arena_in_region(const void *ptr) {
    size_t size = arena_region_size();
    return arena_region_offset(ptr) < size;
}

/* The chunk holding ptr (opaque), or NULL: arena_owns's lookup, for a
 * caller that frees the block next (arena_free_owned). */
static inline void *arena_owner_of(const void *ptr) {
    size_t size = arena_region_size();
    uintptr_t offset = arena_region_offset(ptr);
    if (offset >= size)
        return NULL;
    return __atomic_load_n(&arena_ownership.slot_owner[offset >> 16], __ATOMIC_ACQUIRE);
}

static inline bool arena_owns(const void *ptr) { return arena_owner_of(ptr) != NULL; }

/* arena_free of ptr, whose arena_owner_of() the caller just read (non-NULL):
 * the same, without the second lookup. */
void arena_free_owned(void *owner, void *ptr);

/* The size of ptr (an owned, live block; any arena, open or released): the
 * requested size of a large block; for a small block the bytes up to the
 * next block's start (its size rounded up to 16, or to its size class in
 * reuse mode). The bound realloc copies up to. */
size_t arena_block_readable_size(const void *ptr);

/* The id (arena_id()) of the arena that allocated the chunk holding ptr, or 0
 * if ptr is not owned. Thread-safe; answers for released arenas too. */
uint64_t arena_block_arena_id(const void *ptr);

/* A process-unique id of this arena, never 0, never reused. */
uint64_t arena_id(const arena_t *arena);

/* Blocks this arena handed out and that were not freed while it was open
 * (before arena_release: its live blocks; a cheap read of two counters). */
uint64_t arena_live_blocks(const arena_t *arena);

/* Bytes this arena has mapped now (small and large chunks). */
uint64_t arena_bytes_mapped(const arena_t *arena);

/* Changes the arena's byte limit (0: none) for the chunks it maps from now
 * on; nothing already mapped is affected. (The CPython hook lowers it by
 * what the phase holds outside the arena.) */
void arena_set_byte_limit(arena_t *arena, size_t byte_limit);

/* The error of the last failed call on this arena (ARENA_OK if none). */
arena_error_t arena_last_error(const arena_t *arena);

/* Ends the arena's phase: every chunk with no live block is unmapped at once
 * (or parked warm in the arena's pool, up to the pool's cap); the rest are
 * retained (see the contract above), and inside each retained chunk every
 * 4 KiB page that holds no live block and that no live block crosses into is
 * handed back to the OS at once (MADV_DONTNEED; PROT_NONE when poisoning).
 * Later frees in a retained chunk hand back pages as they empty. Costs two
 * reads of each page's entries in the page tables of the chunks it held
 * (a live-count sum, the hand-back walk) and the OS's hand-back of the
 * free pages: proportional to pages, never to the blocks the phase made
 * (an adopted chunk's escapes are its page counts less the earlier
 * survivors it still holds, counted at adoption). Afterwards
 * alloc returns NULL with ARENA_ECLOSED; stats stay readable. Idempotent. */
void arena_release(arena_t *arena);

/* Releases (if not yet) and frees the handle. NULL is ignored. */
void arena_destroy(arena_t *arena);

typedef struct arena_stats {
    uint64_t bytes_requested;   /* sum of sizes asked for (alloc + realloc growth) */
    uint64_t blocks_allocated;  /* blocks handed out */
    uint64_t blocks_freed;      /* frees of this arena's blocks while it was open */
    uint64_t bytes_mapped;      /* bytes currently mapped for this arena (0 after release) */
    uint64_t peak_mapped;       /* highest bytes_mapped */
    uint64_t chunks_mapped;     /* small chunks mapped over the arena's life */
    uint64_t large_mappings;    /* dedicated mappings over the arena's life */
    /* Filled by arena_release(): */
    uint64_t chunks_released;   /* chunks (small+large) unmapped at release */
    uint64_t bytes_released;    /* their bytes */
    uint64_t chunks_retained;   /* chunks kept because they hold live blocks */
    uint64_t bytes_retained;    /* their bytes */
    uint64_t live_blocks_at_release;
    uint64_t bytes_pages_released; /* bytes of free pages handed back inside retained chunks */
    uint64_t chunks_parked;     /* empty chunks parked warm in the pool */
    uint64_t blocks_reused;     /* reuse mode: allocations served from a free list */
    uint64_t chunks_adopted;    /* retained chunks this arena allocated into (adopt_retained) */
    uint64_t bytes_adopted;     /* bytes of their free lines it took ("spans") */
    bool released;
} arena_stats_t;

void arena_get_stats(const arena_t *arena, arena_stats_t *out);

typedef struct arena_global_stats {
    uint64_t reserve_bytes;        /* size of the region (0 before first use) */
    uint64_t bytes_mapped;         /* all chunks of all arenas, incl. retained */
    uint64_t peak_mapped;
    uint64_t chunks_live;          /* mapped small chunks, open or retained */
    uint64_t large_live;           /* mapped large chunks, open or retained */
    uint64_t chunks_retained;      /* small+large chunks retained past release */
    uint64_t bytes_retained;
    uint64_t blocks_retained;      /* live blocks in retained chunks */
    uint64_t chunks_mapped_total;  /* ever mapped (small+large) */
    uint64_t chunks_unmapped_total;
    uint64_t retained_unmapped_total; /* retained chunks later freed by their last block (unmapped, or parked in their pool) */
    uint64_t quarantined_bytes;    /* poisoned ranges (debug) */
    uint64_t bytes_pages_released; /* pages handed back inside retained chunks, ever */
    uint64_t warm_bytes;           /* chunks parked in pools (mapped, counted in bytes_mapped) */
    uint64_t warm_retained_bytes;  /* retained chunks whose free pages pools keep resident (whole size) */
    uint64_t chunks_adopted_total; /* retained chunks taken back by an open arena, ever */
    uint64_t arenas_live;          /* created, not destroyed */
    uint64_t arenas_created;
} arena_global_stats_t;

/* Process-wide totals. Safe from any thread (takes the region mutex). */
void arena_global_stats(arena_global_stats_t *out);

/* ---- Pools of warm chunks (APR-pool style explicit lifetime) ----
 * A pool keeps empty chunks of released arenas mapped and faulted in, and
 * the free pages of their retained chunks resident, up to max_warm_bytes,
 * so the next arena that uses the pool allocates into warm memory (no page
 * faults, no syscalls), around the survivors of earlier phases first. A
 * warm retained chunk keeps the pages its survivors leave as they die, and
 * the free of its last block parks it in the pool (not unmapped), so
 * survivors that die soon after their arena's release do not cost the pool
 * its chunks. Memory stays with the pool until
 * arena_pool_trim() or arena_pool_destroy(). Same serialization contract as
 * arenas. */
typedef struct arena_pool_config {
    size_t chunk_size;      /* 0: ARENA_DEFAULT_CHUNK_SIZE (ARENA_HUGE_PAGE_SIZE with huge_pages) */
    size_t max_warm_bytes;  /* cap on parked bytes; 0: 256 MiB */
    bool huge_pages;        /* MADV_HUGEPAGE on its chunks (as arena_config_t's) */
} arena_pool_config_t;

typedef struct arena_pool_stats {
    uint64_t warm_bytes, warm_chunks;
    uint64_t hits;           /* chunks handed out warm */
    uint64_t misses;         /* chunks an arena of the pool had to map fresh */
    uint64_t parked;         /* chunks parked by releases */
    uint64_t trimmed_bytes;  /* given back by trim/destroy */
    uint64_t arenas_open;
    /* Retained chunks of the pool's arenas whose free pages stay resident
     * (counted whole against max_warm_bytes), adopted first by its next
     * arenas; trim hands their free pages back. */
    uint64_t warm_retained_bytes, warm_retained_chunks;
    uint64_t retained_hits;  /* warm retained chunks its arenas adopted */
    /* Warm retained chunks parked (counted in `parked` too) when the free
     * of their last block emptied them, instead of being unmapped. */
    uint64_t parked_emptied;
} arena_pool_stats_t;

arena_error_t arena_pool_create(const arena_pool_config_t *config, arena_pool_t **out);

/* Bytes of empty chunks the default pool keeps warm (env OBJARENA_WARM_BYTES
 * overrides; under one chunk: no default pool). */
#define ARENA_DEFAULT_WARM_BYTES ARENA_DEFAULT_CHUNK_SIZE

/* The process's default pool, or NULL when OBJARENA_WARM_BYTES turned it
 * off: an arena created with no pool, of the default chunk size, that
 * neither poisons nor asks for huge pages parks its empty chunks here at
 * release (up to ARENA_DEFAULT_WARM_BYTES) and takes them back before
 * mapping fresh ones, so a scope per short task costs no mmap, munmap or
 * page fault. Within the same budget it may instead keep the free pages
 * of one retained chunk resident (a chunk an earlier survivor keeps, which
 * a worker's next scope adopts). Never destroyed;
 * arena_pool_trim(arena_default_pool(), 0) gives its chunks back. */
arena_pool_t *arena_default_pool(void);
/* Unmaps parked chunks until at most keep_bytes stay warm. */
void arena_pool_trim(arena_pool_t *pool, size_t keep_bytes);
/* Trims everything and frees the pool. ARENA_EINVAL (and nothing is freed)
 * while an arena of the pool is still open. NULL is ignored. */
arena_error_t arena_pool_destroy(arena_pool_t *pool);
void arena_pool_get_stats(const arena_pool_t *pool, arena_pool_stats_t *out);

/* Sets the size of the region reservation. Only before the first arena is
 * created; returns ARENA_EINVAL afterwards or for sizes outside
 * ARENA_MIN_RESERVE..ARENA_MAX_RESERVE. */
arena_error_t arena_region_configure(size_t reserve_bytes);

/* ---- values from the environment (env.c) ----
 *
 * The region's size: 1 GiB (the region is cut in whole GiBs) to 16 TiB (its
 * side tables take about 5% of it in address space, and x86-64 user space
 * is 128 TiB). */
#define ARENA_MIN_RESERVE ((size_t)1 << 30)
#define ARENA_MAX_RESERVE ((size_t)1 << 44)

/* Parses a byte count strictly: decimal digits, then optionally one of
 * K, M, G, T (powers of 1024, either case) and then optionally "i" and "B"
 * ("4G", "2GiB", "512KB", "1048576"). Nothing else: no whitespace, no sign,
 * no other base, no value over UINT64_MAX. ARENA_OK and *out, or
 * ARENA_EINVAL (*out untouched). */
arena_error_t arena_parse_bytes(const char *text, uint64_t *out);

/* OBJARENA_RESERVE_BYTES (ARENA_MIN_RESERVE..ARENA_MAX_RESERVE) and
 * OBJARENA_WARM_BYTES (0..reserve, the region's size): ARENA_OK with *out
 * set, or untouched when the variable is unset or empty; ARENA_EINVAL for
 * any other value (*out untouched: the C library then keeps its default;
 * the extension refuses the scope with a ValueError first). */
arena_error_t arena_env_reserve_bytes(size_t *out);
arena_error_t arena_env_warm_bytes(size_t reserve, size_t *out);

/* The size the region is (or will be) reserved with: arena_region_configure's,
 * else a valid OBJARENA_RESERVE_BYTES, else ARENA_DEFAULT_RESERVE (the OS may
 * grant less: info()["reserve_bytes"]). */
size_t arena_region_requested_reserve(void);

#ifdef __cplusplus
}
#endif
#endif /* OBJARENA_ARENA_H */
