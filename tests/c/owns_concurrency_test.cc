// arena_owns(), arena_owner_of(), arena_block_arena_id() and
// arena_global_stats() from other threads while one thread (the "one lock"
// holder of the contract) maps, adopts, parks, retains and unmaps chunks.
// The contract (arena.h): those four are safe from any thread at any time.
//
// Readers check what the contract lets them know: a block that stayed live
// for the whole duration of a lookup is owned, by the arena that made it; a
// pointer outside the region (stack, heap) never is. "Stayed live" is known
// through a seqlock per published slot: the writer makes the slot's
// generation odd before it frees the block and even after it publishes the
// next one, so a reader that sees the same even generation before and after
// its lookup raced with no free. (The unpublish is a release store and the
// lookup an acquire load, so a lookup that saw the chunk gone also sees the
// odd generation.)
//
// Built and run in every config; under --config=tsan ThreadSanitizer
// checks the library's lock-free reads against the writer.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <thread>
#include <unordered_set>
#include <vector>

#include "arena/arena.h"

namespace {

constexpr size_t kSlots = 64;
constexpr size_t kChunk = 64 * 1024;

struct Published {
    std::atomic<uint64_t> generation{0};  // odd while the writer changes the slot
    std::atomic<uintptr_t> ptr{0};
    std::atomic<uint64_t> arena{0};
};

struct Shared {
    Published slots[kSlots];
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> checked{0}, misses{0};
    std::atomic<int> failures{0};
};

void Reader(Shared *s, unsigned seed) {
    std::mt19937_64 rng(seed);
    int local = 0;
    void *heap = malloc(64);
    while (!s->stop.load(std::memory_order_relaxed)) {
        Published &slot = s->slots[rng() % kSlots];
        uint64_t g1 = slot.generation.load(std::memory_order_seq_cst);
        uintptr_t p = slot.ptr.load(std::memory_order_seq_cst);
        uint64_t id = slot.arena.load(std::memory_order_seq_cst);
        const void *ptr = reinterpret_cast<const void *>(p);
        const void *interior = reinterpret_cast<const void *>(p + 8);
        bool owned = arena_owns(ptr) && arena_owns(interior);
        void *owner = arena_owner_of(ptr);
        uint64_t block_id = arena_block_arena_id(ptr);
        uint64_t g2 = slot.generation.load(std::memory_order_seq_cst);
        if (p && g1 == g2 && g1 % 2 == 0) {
            s->checked.fetch_add(1, std::memory_order_relaxed);
            if (!owned || owner == nullptr || block_id != id) s->failures.fetch_add(1);
        } else {
            s->misses.fetch_add(1, std::memory_order_relaxed);
        }
        if (arena_owns(&local) || arena_owns(heap) || arena_owner_of(&local) || arena_block_arena_id(heap))
            s->failures.fetch_add(1000);
        if ((rng() & 255) == 0) {
            arena_global_stats_t g;
            arena_global_stats(&g);
            if (g.chunks_live > (1u << 20)) s->failures.fetch_add(1);  // (uses it)
        }
    }
    free(heap);
}

arena_t *NewArena(std::mt19937_64 &rng, arena_pool_t *pool) {
    arena_config_t config;
    arena_config_init(&config);
    config.chunk_size = kChunk;
    config.reuse = rng() & 1;
    config.adopt_retained = rng() & 2;
    config.poison_on_release = (rng() & 12) == 0;
    config.pool = (rng() & 16) ? pool : nullptr;
    arena_t *a = nullptr;
    EXPECT_EQ(arena_create(&config, &a), ARENA_OK);
    return a;
}

TEST(OwnsConcurrency, ReadersNeverMissALiveBlockWhileChunksComeAndGo) {
    Shared s;
    std::vector<std::thread> readers;
    for (unsigned i = 0; i < 3; i++) readers.emplace_back(Reader, &s, 100 + i);

    std::mt19937_64 rng(7);
    arena_pool_config_t pool_config{};
    pool_config.chunk_size = kChunk;
    pool_config.max_warm_bytes = 4 * kChunk;
    arena_pool_t *pool = nullptr;
    ASSERT_EQ(arena_pool_create(&pool_config, &pool), ARENA_OK);
    std::vector<void *> survivors;  // blocks kept past their arena's release
    const int phases = 300;
    for (int phase = 0; phase < phases; phase++) {
        arena_t *a = NewArena(rng, pool);
        ASSERT_NE(a, nullptr);
        std::vector<void *> blocks;
        std::unordered_set<void *> this_phase;
        for (int i = 0; i < 400; i++) {
            size_t size = (rng() % 50 == 0) ? kChunk / 2 + rng() % kChunk : 16 + rng() % 2000;
            void *p = arena_alloc(a, size);
            ASSERT_NE(p, nullptr);
            blocks.push_back(p);
            this_phase.insert(p);
            if (rng() % 4 == 0) {
                // Republish a slot: odd generation, free its block (unless it
                // is this phase's: the loop below frees those), publish p.
                Published &slot = s.slots[rng() % kSlots];
                uint64_t g = slot.generation.load(std::memory_order_relaxed);
                slot.generation.store(g + 1, std::memory_order_seq_cst);
                void *old = reinterpret_cast<void *>(slot.ptr.exchange(0, std::memory_order_seq_cst));
                if (old && !this_phase.count(old)) arena_free(old);
                slot.ptr.store(reinterpret_cast<uintptr_t>(p), std::memory_order_seq_cst);
                slot.arena.store(arena_id(a), std::memory_order_seq_cst);
                slot.generation.store(g + 2, std::memory_order_seq_cst);
            }
        }
        // Free most blocks, unless a reader may be looking at them.
        auto published = [&](void *p) {
            for (auto &slot : s.slots)
                if (slot.ptr.load(std::memory_order_relaxed) == reinterpret_cast<uintptr_t>(p)) return true;
            return false;
        };
        for (void *p : blocks) {
            if (published(p)) continue;
            if (rng() % 20 == 0)
                survivors.push_back(p);  // its chunk is retained at release
            else
                arena_free(p);
        }
        arena_release(a);  // unmaps (or parks) every chunk without survivors
        arena_destroy(a);
        // Survivors die later: their retained chunks unmap with the last one.
        while (survivors.size() > 200) {
            arena_free(survivors.front());
            survivors.erase(survivors.begin());
        }
        // Retire a few published blocks: free them under an odd generation.
        for (int k = 0; k < 16; k++) {
            Published &slot = s.slots[rng() % kSlots];
            uint64_t g = slot.generation.load(std::memory_order_relaxed);
            slot.generation.store(g + 1, std::memory_order_seq_cst);
            uintptr_t p = slot.ptr.exchange(0, std::memory_order_seq_cst);
            if (p) arena_free(reinterpret_cast<void *>(p));
            slot.generation.store(g + 2, std::memory_order_seq_cst);
        }
        if (phase % 10 == 0) arena_pool_trim(pool, rng() % 2 ? 0 : kChunk);
    }
    s.stop = true;
    for (auto &t : readers) t.join();
    for (void *p : survivors) arena_free(p);
    for (auto &slot : s.slots)
        if (uintptr_t p = slot.ptr.exchange(0)) arena_free(reinterpret_cast<void *>(p));
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);
    EXPECT_EQ(s.failures.load(), 0);
    EXPECT_GT(s.checked.load(), 1000u) << "misses: " << s.misses.load();
    arena_global_stats_t g;
    arena_global_stats(&g);
    EXPECT_EQ(g.chunks_retained, 0u);
    EXPECT_EQ(g.warm_bytes, 0u);
}

}  // namespace
