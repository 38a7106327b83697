// libFuzzer target for the arena library's public contract (arena/arena.h).
//
// Each input is decoded into a sequence of operations -- create (with or
// without a pool, reuse, poison, adoption, a byte limit, valid and invalid
// chunk sizes), alloc, calloc, realloc, free, release, destroy, pool
// create/trim/destroy, "refuse the Nth commit", and bulk alloc (up to 64
// blocks of a size) and bulk free (all but every k-th block) -- and after every step the
// library is checked against a reference model of what the contract promises:
//   - every live block keeps its contents (a position-dependent fill pattern),
//     is 16-byte aligned, owned, readable for at least its size, reports the
//     arena that made it, and overlaps no other live block;
//   - the chunks the model knows of (small chunks: the block address rounded
//     down to the arena's chunk size; large blocks: their own mapping) are
//     owned exactly while the contract says they are mapped: an open arena's
//     chunks always, a released arena's chunk while it holds a live block;
//     the moment a chunk must be unmapped (release of an empty chunk, free of
//     a retained chunk's last block, free of a large block) arena_owns() of
//     its first and last byte is false;
//   - an open arena allocates into a chunk of another open arena never, into
//     a retained chunk only by adoption (adopt on, poison off, same size);
//   - per arena: blocks_allocated, blocks_freed, bytes_mapped (the sum of its
//     chunks), live_blocks_at_release, bytes_mapped <= byte_limit; globally:
//     chunks_live + large_live, bytes_mapped, chunks_retained,
//     blocks_retained, arenas_live and pool warm bytes agree with the model;
//     the region's internal lists pass arena_testing_check_lists();
//   - a refused allocation returns NULL with an error the situation explains
//     (ECLOSED after release, ELIMIT with a limit, ENOMEM after an injected
//     commit failure, EINVAL for an overflowing calloc), and leaves the block
//     passed to realloc live and intact.
// At the end of an input every block is freed and every arena and pool
// destroyed, and the process-wide totals must be back where they started:
// the library has no reset, so that is what keeps a long run from growing.
// Poisoned chunks are quarantined forever (never reused): once the
// quarantine passes 8 GiB (or a quarter of the region), poison requests are
// ignored, so a long run neither exhausts the reserve nor grows ASan's
// shadow memory without bound (reported once on stderr).
//
// Built by tools/fuzz (clang, -fsanitize=fuzzer,address,undefined and
// ARENA_DEBUG=2, which turns on the library's internal assertions).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "arena/arena.h"
#include "arena/testing.h"
#include "tests/fuzz/fill_pattern.h"

namespace {

constexpr size_t kSlot = 64 * 1024;
constexpr int kArenas = 4;
constexpr int kPools = 2;
constexpr size_t kMaxLive = 256;
constexpr size_t kMaxLiveBytes = 48u << 20;
constexpr int kMaxOps = 400;

[[noreturn]] void Fail(const char *what, const void *p = nullptr, uint64_t a = 0, uint64_t b = 0) {
    fprintf(stderr, "arena_fuzzer: CONTRACT VIOLATION: %s (ptr %p, %llu vs %llu)\n", what, p,
            (unsigned long long)a, (unsigned long long)b);
    abort();
}

#define CHECK(cond, ...)                  \
    do {                                  \
        if (!(cond)) Fail(#cond, ##__VA_ARGS__); \
    } while (0)

// Fill() and Matches(): tests/fuzz/fill_pattern.h.

struct Block {
    size_t size;
    uint64_t seed;
    uint64_t origin;  // arena_id of the arena that handed it out
    uintptr_t chunk;  // base of the chunk (small) or mapping (large) holding it
};

enum class ChunkState { kOpen, kRetained };

struct Chunk {
    size_t size;
    bool large;
    ChunkState state;
    uint64_t arena;  // kOpen: id of the open arena that has it
    uint64_t live;   // model blocks inside
};

struct ArenaSlot {
    arena_t *arena = nullptr;
    uint64_t id = 0;
    size_t chunk_size = 0;
    size_t limit = 0;
    bool poison = false, reuse = false, adopt = false, closed = false;
    int pool = -1;
    uint64_t allocated = 0, freed = 0;
};

struct PoolSlot {
    arena_pool_t *pool = nullptr;
    size_t chunk_size = 0, max_warm = 0;
};

struct Model {
    ArenaSlot arenas[kArenas];
    PoolSlot pools[kPools];
    std::map<uintptr_t, Block> live;
    std::map<uintptr_t, Chunk> chunks;
    size_t live_bytes = 0;
    uint64_t next_seed = 1;
    bool injected = false;  // a commit failure was armed this input
    arena_global_stats_t base;
};

bool poison_allowed = true;

// Quarantined address space is never reused, and under ASan every chunk ever
// mapped keeps its shadow pages (1/8 of its size) resident: past this cap
// poison requests are ignored, so a long run's memory stays bounded.
uint64_t QuarantineCap(uint64_t reserve) {
    uint64_t cap = uint64_t{8} << 30;  // ~1 GiB of shadow
    return reserve / 4 < cap ? reserve / 4 : cap;
}

ArenaSlot *SlotById(Model &m, uint64_t id) {
    for (auto &s : m.arenas)
        if (s.arena && s.id == id) return &s;
    return nullptr;
}

bool Owned(uintptr_t p) { return arena_owns(reinterpret_cast<void *>(p)); }

void ExpectUnmapped(uintptr_t base, size_t size) {
    CHECK(!Owned(base), (void *)base);
    CHECK(!Owned(base + size - 1), (void *)base);
}

void ForgetChunk(Model &m, std::map<uintptr_t, Chunk>::iterator it) {
    uintptr_t base = it->first;
    size_t size = it->second.size;
    m.chunks.erase(it);
    ExpectUnmapped(base, size);
}

// No model chunk other than `self` overlaps [base, base+size).
void CheckNoOverlap(Model &m, uintptr_t base, size_t size) {
    auto it = m.chunks.lower_bound(base);
    if (it != m.chunks.end() && it->first != base) CHECK(it->first >= base + size, (void *)base);
    if (it != m.chunks.begin()) {
        auto prev = std::prev(it);
        CHECK(prev->first + prev->second.size <= base, (void *)base);
    }
}

// A new block p of `size` bytes from arena slot `s`; `large` = it got its own
// mapping (the arena's large_mappings went up).
void AddBlock(Model &m, ArenaSlot &s, unsigned char *p, size_t size, bool large) {
    uintptr_t u = reinterpret_cast<uintptr_t>(p);
    CHECK(u % ARENA_ALIGNMENT == 0, p);
    CHECK(Owned(u) && Owned(u + (size ? size : 1) - 1), p);
    // No overlap with live blocks (a zero-size block takes 16 bytes).
    size_t span = size ? size : 1;
    auto next = m.live.lower_bound(u);
    CHECK(next == m.live.end() || next->first >= u + span, p, next->first);
    if (next != m.live.begin()) {
        auto prev = std::prev(next);
        CHECK(prev->first + (prev->second.size ? prev->second.size : 1) <= u, p, prev->first);
    }
    uintptr_t base;
    if (large) {
        base = u;
        CHECK(u % kSlot == 0, p);
        CheckNoOverlap(m, base, (size + kSlot - 1) & ~(kSlot - 1));
        m.chunks[base] = Chunk{(size + kSlot - 1) & ~(kSlot - 1), true, ChunkState::kOpen, s.id, 1};
    } else {
        base = u & ~(uintptr_t)(s.chunk_size - 1);
        auto it = m.chunks.find(base);
        if (it == m.chunks.end()) {
            CheckNoOverlap(m, base, s.chunk_size);
            m.chunks[base] = Chunk{s.chunk_size, false, ChunkState::kOpen, s.id, 1};
        } else {
            Chunk &c = it->second;
            CHECK(!c.large && c.size == s.chunk_size, p, c.size, s.chunk_size);
            if (c.state == ChunkState::kRetained) {
                // Only adoption puts an open arena into a retained chunk.
                CHECK(s.adopt && !s.poison, p);
                c.state = ChunkState::kOpen;
                c.arena = s.id;
            }
            CHECK(c.arena == s.id, p, c.arena, s.id);  // never another open arena's chunk
            c.live++;
        }
    }
    uint64_t seed = m.next_seed++;
    Fill(p, size, seed);
    m.live[u] = Block{size, seed, s.id, base};
    m.live_bytes += size;
    s.allocated++;
}

// Model side of freeing live block `it` (the library call is the caller's).
void DropBlock(Model &m, std::map<uintptr_t, Block>::iterator it) {
    Block b = it->second;
    m.live_bytes -= b.size;
    m.live.erase(it);
    if (ArenaSlot *origin = SlotById(m, b.origin); origin && !origin->closed) origin->freed++;
    auto c = m.chunks.find(b.chunk);
    CHECK(c != m.chunks.end() && c->second.live > 0, (void *)b.chunk);
    c->second.live--;
    if (c->second.large || (c->second.state == ChunkState::kRetained && c->second.live == 0)) {
        CHECK(c->second.live == 0, (void *)b.chunk);
        ForgetChunk(m, c);
    }
}

void CheckBlock(uintptr_t u, const Block &b, bool full) {
    const unsigned char *p = reinterpret_cast<const unsigned char *>(u);
    CHECK(Owned(u), p);
    CHECK(arena_block_arena_id(p) == b.origin, p, arena_block_arena_id(p), b.origin);
    size_t readable = arena_block_readable_size(p);
    CHECK(readable >= b.size, p, readable, b.size);
    // Between steps ~64 words per block (a full check costs too much with
    // 48 MiB live); every block is checked in full when freed or reallocated
    // and at the end of the input.
    size_t step = full ? 1 : (b.size / 8 / 64 > 61 ? b.size / 8 / 64 : 61);
    CHECK(Matches(p, b.size, b.seed, step), p, b.size);
}

arena_stats_t Stats(arena_t *a) {
    arena_stats_t s;
    arena_get_stats(a, &s);
    return s;
}

void CheckAll(Model &m, bool full) {
    for (auto &kv : m.live) CheckBlock(kv.first, kv.second, full);
    uint64_t small = 0, large = 0, bytes = 0, retained = 0, retained_blocks = 0;
    for (auto &kv : m.chunks) {
        const Chunk &c = kv.second;
        CHECK(Owned(kv.first) && Owned(kv.first + c.size - 1), (void *)kv.first);
        (c.large ? large : small)++;
        bytes += c.size;
        if (c.state == ChunkState::kRetained) {
            retained++;
            retained_blocks += c.live;
            CHECK(c.live > 0, (void *)kv.first);
        }
    }
    uint64_t warm = 0, warm_chunks = 0;
    for (int i = 0; i < kPools; i++) {
        if (!m.pools[i].pool) continue;
        arena_pool_stats_t ps;
        arena_pool_get_stats(m.pools[i].pool, &ps);
        CHECK(ps.warm_bytes <= m.pools[i].max_warm, nullptr, ps.warm_bytes, m.pools[i].max_warm);
        CHECK(ps.warm_bytes == ps.warm_chunks * m.pools[i].chunk_size, nullptr, ps.warm_bytes);
        uint64_t open = 0;
        for (auto &s : m.arenas) open += s.arena && !s.closed && s.pool == i;
        CHECK(ps.arenas_open == open, nullptr, ps.arenas_open, open);
        warm += ps.warm_bytes;
        warm_chunks += ps.warm_chunks;
    }
    // Arenas of the default chunk size with no pool park their empty chunks
    // in the process's default pool (arena_default_pool): counted as warm.
    if (arena_pool_t *dp = arena_default_pool()) {
        arena_pool_stats_t ps;
        arena_pool_get_stats(dp, &ps);
        CHECK(ps.warm_bytes <= ARENA_DEFAULT_WARM_BYTES, nullptr, ps.warm_bytes);
        warm += ps.warm_bytes;
        warm_chunks += ps.warm_chunks;
    }
    for (auto &s : m.arenas) {
        if (!s.arena) continue;
        arena_stats_t st = Stats(s.arena);
        CHECK(st.blocks_allocated == s.allocated, nullptr, st.blocks_allocated, s.allocated);
        CHECK(st.blocks_freed == s.freed, nullptr, st.blocks_freed, s.freed);
        uint64_t mine = 0;
        for (auto &kv : m.chunks)
            if (kv.second.state == ChunkState::kOpen && kv.second.arena == s.id) mine += kv.second.size;
        CHECK(st.bytes_mapped == (s.closed ? 0 : mine), nullptr, st.bytes_mapped, mine);
        if (s.limit) CHECK(st.peak_mapped <= s.limit, nullptr, st.peak_mapped, s.limit);
        CHECK(st.released == s.closed);
    }
    arena_global_stats_t g;
    arena_global_stats(&g);
    CHECK(g.chunks_live + g.large_live == m.base.chunks_live + m.base.large_live + small + large + warm_chunks, nullptr,
          g.chunks_live + g.large_live, small + large + warm_chunks);
    CHECK(g.large_live == m.base.large_live + large, nullptr, g.large_live, large);
    CHECK(g.bytes_mapped == m.base.bytes_mapped + bytes + warm, nullptr, g.bytes_mapped, bytes + warm);
    CHECK(g.warm_bytes == m.base.warm_bytes + warm, nullptr, g.warm_bytes, warm);
    CHECK(g.chunks_retained == m.base.chunks_retained + retained, nullptr, g.chunks_retained, retained);
    CHECK(g.blocks_retained == m.base.blocks_retained + retained_blocks, nullptr, g.blocks_retained, retained_blocks);
    uint64_t arenas = 0;
    for (auto &s : m.arenas) arenas += s.arena != nullptr;
    CHECK(g.arenas_live == m.base.arenas_live + arenas, nullptr, g.arenas_live, arenas);
    const char *problem = arena_testing_check_lists();
    if (problem) Fail(problem);
}

size_t PickChunkSize(uint8_t v, bool *valid) {
    static const size_t sizes[] = {64 << 10, 128 << 10, 256 << 10, 1 << 20, 2 << 20,
                                   0 /* default */, 96 << 10 /* not a power of two */, 32 << 10 /* too small */};
    size_t s = sizes[v % 8];
    *valid = (v % 8) < 6;
    return s;
}

size_t PickSize(FuzzedDataProvider &in) {
    uint8_t kind = in.ConsumeIntegral<uint8_t>();
    switch (kind % 8) {
    case 0: return 0;
    case 1: case 2: case 3: return in.ConsumeIntegralInRange<size_t>(1, 256);
    case 4: case 5: return in.ConsumeIntegralInRange<size_t>(1, 4096);
    case 6: return in.ConsumeIntegralInRange<size_t>(4096, 300 << 10);   // around small_max of each chunk size
    default: return in.ConsumeIntegralInRange<size_t>(300 << 10, 3 << 20);  // large in every arena
    }
}

// The error a refused allocation from slot s may report.
void CheckRefusal(Model &m, ArenaSlot &s, bool calloc_overflow = false) {
    arena_error_t err = arena_last_error(s.arena);
    if (calloc_overflow) {
        CHECK(err == ARENA_EINVAL, nullptr, err);
        return;
    }
    if (s.closed) {
        CHECK(err == ARENA_ECLOSED, nullptr, err);
        return;
    }
    CHECK((err == ARENA_ELIMIT && s.limit) || (err == ARENA_ENOMEM && m.injected), nullptr, err, s.limit);
}

std::map<uintptr_t, Block>::iterator PickBlock(Model &m, FuzzedDataProvider &in) {
    if (m.live.empty()) return m.live.end();
    size_t k = in.ConsumeIntegral<uint8_t>() % m.live.size();
    auto it = m.live.begin();
    std::advance(it, k);
    return it;
}

void DestroyArena(Model &m, ArenaSlot &s);

void CreateArena(Model &m, FuzzedDataProvider &in) {
    int slot = in.ConsumeIntegral<uint8_t>() % kArenas;
    uint8_t flags = in.ConsumeIntegral<uint8_t>();
    uint8_t size_pick = in.ConsumeIntegral<uint8_t>();
    uint8_t limit_pick = in.ConsumeIntegral<uint8_t>();
    ArenaSlot &s = m.arenas[slot];
    if (s.arena) DestroyArena(m, s);  // the slot's old arena goes first (its blocks stay live)
    arena_config_t config;
    arena_config_init(&config);
    bool valid;
    config.chunk_size = PickChunkSize(size_pick, &valid);
    config.reuse = flags & 1;
    config.poison_on_release = (flags & 2) && poison_allowed;
    config.adopt_retained = flags & 4;
    config.huge_pages = flags & 8;
    int pool = (flags & 16) ? (flags >> 5) % kPools : -1;
    if (pool >= 0 && !m.pools[pool].pool) pool = -1;
    config.pool = pool >= 0 ? m.pools[pool].pool : nullptr;
    config.byte_limit = (flags & 128) ? (1 + limit_pick % 32) * kSlot : 0;
    size_t chunk = pool >= 0 ? m.pools[pool].chunk_size : config.chunk_size ? config.chunk_size : (config.huge_pages ? ARENA_HUGE_PAGE_SIZE : ARENA_DEFAULT_CHUNK_SIZE);
    if (pool >= 0) valid = true;
    if (config.huge_pages && chunk < ARENA_HUGE_PAGE_SIZE) valid = false;
    arena_t *a = nullptr;
    arena_error_t err = arena_create(&config, &a);
    if (!valid) {
        CHECK(err == ARENA_EINVAL && a == nullptr, nullptr, err);
        return;
    }
    CHECK(err == ARENA_OK && a != nullptr, nullptr, err);
    s.arena = a;
    s.id = arena_id(a);
    CHECK(s.id != 0);
    for (auto &o : m.arenas) CHECK(&o == &s || !o.arena || o.id != s.id);
    s.chunk_size = chunk;
    s.limit = config.byte_limit;
    s.poison = config.poison_on_release;
    s.reuse = config.reuse;
    s.adopt = config.adopt_retained && !config.poison_on_release;
    s.pool = pool;
}

void Release(Model &m, ArenaSlot &s) {
    bool was_closed = s.closed;
    uint64_t own = 0;
    for (auto &kv : m.live) own += kv.second.origin == s.id;
    arena_release(s.arena);
    s.closed = true;
    arena_stats_t st = Stats(s.arena);
    CHECK(st.released && st.bytes_mapped == 0);
    if (!was_closed) CHECK(st.live_blocks_at_release == own, nullptr, st.live_blocks_at_release, own);
    for (auto it = m.chunks.begin(); it != m.chunks.end();) {
        auto cur = it++;
        if (cur->second.state != ChunkState::kOpen || cur->second.arena != s.id) continue;
        if (cur->second.live == 0) ForgetChunk(m, cur);  // unmapped or parked: owned by no one
        else cur->second.state = ChunkState::kRetained;
    }
    // Stays released: allocation is refused.
    CHECK(arena_alloc(s.arena, 16) == nullptr && arena_last_error(s.arena) == ARENA_ECLOSED);
}

void Alloc(Model &m, FuzzedDataProvider &in, int how) {
    ArenaSlot &s = m.arenas[in.ConsumeIntegral<uint8_t>() % kArenas];
    size_t size = PickSize(in);
    if (!s.arena || m.live.size() >= kMaxLive || m.live_bytes + size > kMaxLiveBytes) return;
    uint64_t large_before = Stats(s.arena).large_mappings;
    unsigned char *p;
    if (how == 0) {
        p = static_cast<unsigned char *>(arena_alloc(s.arena, size));
    } else if (how == 1) {
        size_t count = in.ConsumeIntegralInRange<size_t>(0, 8);
        if (in.ConsumeBool()) {  // overflowing count*size
            CHECK(arena_calloc(s.arena, SIZE_MAX / 2 + 1, 2 + count) == nullptr);
            CheckRefusal(m, s, /*calloc_overflow=*/true);
            return;
        }
        size = count ? size / count : size;
        size_t total = count * size;
        p = static_cast<unsigned char *>(arena_calloc(s.arena, count, size));
        if (p)
            for (size_t i = 0; i < total; i++) CHECK(p[i] == 0, p, i);
        size = total;
    } else {
        p = static_cast<unsigned char *>(arena_realloc(s.arena, nullptr, size));
    }
    if (!p) {
        CheckRefusal(m, s);
        return;
    }
    CHECK(!s.closed, p);
    AddBlock(m, s, p, size, Stats(s.arena).large_mappings != large_before);
}

// Many blocks of one size in one step: fills chunks fast enough for the
// fuzzer to reach full chunks, page hand-back and adoption's later spans.
void BulkAlloc(Model &m, FuzzedDataProvider &in) {
    ArenaSlot &s = m.arenas[in.ConsumeIntegral<uint8_t>() % kArenas];
    size_t size = PickSize(in);
    int count = in.ConsumeIntegralInRange<int>(1, 64);
    if (!s.arena) return;
    for (int i = 0; i < count && m.live.size() < kMaxLive && m.live_bytes + size <= kMaxLiveBytes; i++) {
        uint64_t large_before = Stats(s.arena).large_mappings;
        unsigned char *p = static_cast<unsigned char *>(arena_alloc(s.arena, size));
        if (!p) {
            CheckRefusal(m, s);
            return;
        }
        AddBlock(m, s, p, size, Stats(s.arena).large_mappings != large_before);
    }
}

// Frees every live block but one in `keep` (in address order): survivors
// spread over pages and chunks, as a phase's escapes are.
void BulkFree(Model &m, FuzzedDataProvider &in) {
    size_t keep = in.ConsumeIntegralInRange<size_t>(2, 64);
    size_t offset = in.ConsumeIntegral<uint8_t>() % keep;
    size_t k = 0;
    for (auto it = m.live.begin(); it != m.live.end(); k++) {
        auto cur = it++;
        if (k % keep == offset) continue;
        CheckBlock(cur->first, cur->second, false);
        arena_free(reinterpret_cast<void *>(cur->first));
        DropBlock(m, cur);
    }
}

void Realloc(Model &m, FuzzedDataProvider &in) {
    ArenaSlot &s = m.arenas[in.ConsumeIntegral<uint8_t>() % kArenas];
    auto it = PickBlock(m, in);
    size_t size = PickSize(in);
    if (!s.arena || it == m.live.end()) return;
    if (size > it->second.size && m.live_bytes + size - it->second.size > kMaxLiveBytes) return;
    uintptr_t old = it->first;
    Block b = it->second;
    CheckBlock(old, b, true);
    uint64_t large_before = Stats(s.arena).large_mappings;
    unsigned char *q = static_cast<unsigned char *>(arena_realloc(s.arena, reinterpret_cast<void *>(old), size));
    if (!q) {
        CheckRefusal(m, s);
        CheckBlock(old, b, true);  // untouched and still live
        return;
    }
    size_t kept = b.size < size ? b.size : size;
    CHECK(Matches(q, kept, b.seed), q, kept);
    if (reinterpret_cast<uintptr_t>(q) == old) {
        // In place: same block, same chunk, same origin, new size.
        m.live_bytes += size;
        m.live_bytes -= b.size;
        auto &blk = m.live[old];
        blk.size = size;
        blk.seed = m.next_seed++;
        // In-place growth must not run into the next live block.
        auto next = m.live.upper_bound(old);
        CHECK(next == m.live.end() || next->first >= old + (size ? size : 1), q, next->first);
        Fill(q, size, blk.seed);
        return;
    }
    CHECK(!s.closed, q);
    bool large = Stats(s.arena).large_mappings != large_before;
    // The new block first: it may sit in the old one's chunk, adopted while
    // the old block still pinned it.
    AddBlock(m, s, q, size, large);
    DropBlock(m, m.live.find(old));  // realloc freed it
}

void FreeBlock(Model &m, FuzzedDataProvider &in) {
    auto it = PickBlock(m, in);
    if (it == m.live.end()) {
        arena_free(nullptr);
        return;
    }
    CheckBlock(it->first, it->second, true);
    void *p = reinterpret_cast<void *>(it->first);
    if (in.ConsumeBool()) {
        void *owner = arena_owner_of(p);
        CHECK(owner != nullptr, p);
        arena_free_owned(owner, p);
    } else {
        arena_free(p);
    }
    DropBlock(m, it);
}

void PoolCreate(Model &m, FuzzedDataProvider &in) {
    int slot = in.ConsumeIntegral<uint8_t>() % kPools;
    uint8_t flags = in.ConsumeIntegral<uint8_t>();
    PoolSlot &p = m.pools[slot];
    if (p.pool) return;
    arena_pool_config_t config{};
    bool valid;
    config.chunk_size = PickChunkSize(flags, &valid);
    static const size_t warm[] = {0, 64 << 10, 256 << 10, 4 << 20};
    config.max_warm_bytes = warm[(flags >> 3) % 4];
    config.huge_pages = flags & 32;
    size_t chunk = config.chunk_size ? config.chunk_size : (config.huge_pages ? ARENA_HUGE_PAGE_SIZE : ARENA_DEFAULT_CHUNK_SIZE);
    if (config.huge_pages && chunk < ARENA_HUGE_PAGE_SIZE) valid = false;
    arena_pool_t *pool = nullptr;
    arena_error_t err = arena_pool_create(&config, &pool);
    if (!valid) {
        CHECK(err == ARENA_EINVAL && pool == nullptr, nullptr, err);
        return;
    }
    CHECK(err == ARENA_OK && pool != nullptr, nullptr, err);
    p.pool = pool;
    p.chunk_size = chunk;
    p.max_warm = config.max_warm_bytes ? config.max_warm_bytes : (256u << 20);
}

void PoolDestroy(Model &m, int slot) {
    PoolSlot &p = m.pools[slot];
    if (!p.pool) return;
    bool open = false;
    for (auto &s : m.arenas) open |= s.arena && !s.closed && s.pool == slot;
    arena_error_t err = arena_pool_destroy(p.pool);
    if (open) {
        CHECK(err == ARENA_EINVAL, nullptr, err);
        return;
    }
    CHECK(err == ARENA_OK, nullptr, err);
    p = PoolSlot();
    for (auto &s : m.arenas)
        if (s.pool == slot) s.pool = -1;  // (released: it no longer refers to the pool)
}

void DestroyArena(Model &m, ArenaSlot &s) {
    if (!s.closed) Release(m, s);
    arena_destroy(s.arena);
    s = ArenaSlot();
}

void Cleanup(Model &m) {
    arena_testing_fail_commit_after(-1);
    CheckAll(m, true);
    while (!m.live.empty()) {
        auto it = m.live.begin();
        arena_free(reinterpret_cast<void *>(it->first));
        DropBlock(m, it);
    }
    for (auto &s : m.arenas)
        if (s.arena) DestroyArena(m, s);
    for (int i = 0; i < kPools; i++) PoolDestroy(m, i);
    CheckAll(m, true);
    if (arena_pool_t *dp = arena_default_pool()) arena_pool_trim(dp, 0);  // back to the input's start
    CheckAll(m, true);
    CHECK(m.chunks.empty());
    arena_global_stats_t g;
    arena_global_stats(&g);
    CHECK(g.bytes_mapped == m.base.bytes_mapped && g.chunks_live == m.base.chunks_live &&
              g.large_live == m.base.large_live && g.chunks_retained == m.base.chunks_retained &&
              g.warm_bytes == m.base.warm_bytes && g.arenas_live == m.base.arenas_live,
          nullptr, g.bytes_mapped, m.base.bytes_mapped);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzedDataProvider in(data, size);
    Model m;
    arena_global_stats(&m.base);
    if (poison_allowed && m.base.reserve_bytes && m.base.quarantined_bytes > QuarantineCap(m.base.reserve_bytes)) {
        poison_allowed = false;
        fprintf(stderr, "arena_fuzzer: quarantine at %llu of %llu reserved bytes: poison requests ignored from now on\n",
                (unsigned long long)m.base.quarantined_bytes, (unsigned long long)m.base.reserve_bytes);
    }
    static const bool trace = getenv("ARENA_FUZZ_TRACE") != nullptr;  // reading a seed: one line per step
    for (int ops = 0; ops < kMaxOps && in.remaining_bytes() > 0; ops++) {
        uint8_t op = in.ConsumeIntegral<uint8_t>();
        if (trace) fprintf(stderr, "arena_fuzzer: op %d (%u), %zu live blocks\n", op % 18, op, m.live.size());
        switch (op % 18) {
        case 0: CreateArena(m, in); break;
        case 1: case 2: case 3: Alloc(m, in, 0); break;
        case 4: Alloc(m, in, 1); break;
        case 5: Alloc(m, in, 2); break;
        case 6: case 7: Realloc(m, in); break;
        case 8: case 9: FreeBlock(m, in); break;
        case 10: {
            ArenaSlot &s = m.arenas[in.ConsumeIntegral<uint8_t>() % kArenas];
            if (s.arena) Release(m, s);
            break;
        }
        case 11: {
            ArenaSlot &s = m.arenas[in.ConsumeIntegral<uint8_t>() % kArenas];
            if (s.arena) DestroyArena(m, s);
            break;
        }
        case 12: PoolCreate(m, in); break;
        case 13: {
            PoolSlot &p = m.pools[in.ConsumeIntegral<uint8_t>() % kPools];
            static const size_t keep[] = {0, 64 << 10, 1 << 20, SIZE_MAX};
            if (p.pool) arena_pool_trim(p.pool, keep[in.ConsumeIntegral<uint8_t>() % 4]);
            break;
        }
        case 14: PoolDestroy(m, in.ConsumeIntegral<uint8_t>() % kPools); break;
        case 15: {
            long n = in.ConsumeIntegralInRange<long>(-1, 6);
            arena_testing_fail_commit_after(n);
            m.injected |= n >= 0;
            break;
        }
        case 16: BulkAlloc(m, in); break;
        case 17: BulkFree(m, in); break;
        }
        CheckAll(m, false);
    }
    if (trace) {
        arena_global_stats_t g;
        arena_global_stats(&g);
        fprintf(stderr, "arena_fuzzer: %zu live blocks, %zu chunks; chunks ever mapped %llu, adopted %llu\n",
                m.live.size(), m.chunks.size(), (unsigned long long)g.chunks_mapped_total,
                (unsigned long long)g.chunks_adopted_total);
    }
    Cleanup(m);
    return 0;
}
