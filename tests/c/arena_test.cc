// GoogleTest suite for the arena library (arena/arena.h). Every test checks
// a behaviour of the contract that a naive arena would get wrong.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <atomic>
#include <set>
#include <vector>

#include "arena/arena.h"
#include "arena/size_class.h"
#include "arena/slots.h"
#include "arena/testing.h"

namespace {

constexpr size_t kChunk = 64 * 1024;  // small chunks keep the tests quick

// Adoption is off unless a test asks for it: most tests count the chunks
// they map, and survivors that earlier tests left retained must not show up
// in them. The model test and the ArenaAdopt tests turn it on.
arena_t *MakeArena(size_t chunk = kChunk, size_t limit = 0, bool poison = false, bool reuse = false,
                   arena_pool_t *pool = nullptr, bool adopt = false, size_t first_chunk = 0) {
    arena_config_t config;
    arena_config_init(&config);
    EXPECT_TRUE(config.adopt_retained);  // the default
    config.adopt_retained = adopt;
    config.chunk_size = chunk;
    config.byte_limit = limit;
    config.poison_on_release = poison;
    config.reuse = reuse;
    config.pool = pool;
    config.first_chunk_size = first_chunk;
    arena_t *a = nullptr;
    EXPECT_EQ(arena_create(&config, &a), ARENA_OK);
    return a;
}

arena_global_stats_t Global() {
    arena_global_stats_t g;
    arena_global_stats(&g);
    return g;
}

constexpr size_t kPage = 4096;

uintptr_t ChunkOf(const void *p) { return reinterpret_cast<uintptr_t>(p) & ~(uintptr_t)(kChunk - 1); }
size_t PageOf(const void *p) { return (reinterpret_cast<uintptr_t>(p) & (kChunk - 1)) / kPage; }

// "" when the region's retained and adoptable lists are consistent.
std::string ListProblem() {
    const char *problem = arena_testing_check_lists();
    return problem ? problem : "";
}

arena_stats_t Stats(arena_t *a) {
    arena_stats_t s;
    arena_get_stats(a, &s);
    return s;
}

// Runs fn in a forked child and reports whether it died of SIGSEGV/SIGBUS.
bool DiesWithFault(void (*fn)(void *), void *arg) {
    pid_t pid = fork();
    if (pid == 0) {
        // Under ASan its own SEGV handler would turn the fault into a report
        // and a normal exit: restore the default so the signal is visible.
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && (WTERMSIG(status) == SIGSEGV || WTERMSIG(status) == SIGBUS);
}

TEST(ArenaConfig, RejectsBadChunkSizes) {
    arena_config_t config;
    arena_config_init(&config);
    arena_t *a = reinterpret_cast<arena_t *>(0x1);
    config.chunk_size = 3 * 65536;
    EXPECT_EQ(arena_create(&config, &a), ARENA_EINVAL);
    EXPECT_EQ(a, nullptr);
    config.chunk_size = 4096;  // below one slot
    EXPECT_EQ(arena_create(&config, &a), ARENA_EINVAL);
    config.chunk_size = size_t(1) << 31;  // above the max
    EXPECT_EQ(arena_create(&config, &a), ARENA_EINVAL);
    EXPECT_EQ(arena_create(nullptr, &a), ARENA_OK);  // defaults
    EXPECT_NE(arena_id(a), 0u);
    arena_destroy(a);
    EXPECT_STREQ(arena_error_name(ARENA_ELIMIT), "arena byte limit reached");
}

// The VmFlags line of the /proc/self/smaps mapping that holds p ("" if none).
std::string VmFlagsOf(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return "";
    uintptr_t addr = reinterpret_cast<uintptr_t>(p);
    bool inside = false;
    std::string flags;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = lo <= addr && addr < hi;
        } else if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            flags = line + 8;
            break;
        }
    }
    fclose(f);
    return flags;
}

bool AdvisedHuge(const void *p) { return VmFlagsOf(p).find(" hg") != std::string::npos; }

// Kernels without transparent huge pages refuse MADV_HUGEPAGE (and show no
// "hg" flag): the advice is a hint, nothing to test there.
bool KernelHasTransparentHugePages() { return access("/sys/kernel/mm/transparent_hugepage", F_OK) == 0; }

TEST(ArenaHugePages, ChunksAreOneHugePageAndAdvised) {
    if (!KernelHasTransparentHugePages())
        GTEST_SKIP() << "no transparent huge pages in this kernel";
    arena_config_t config;
    arena_config_init(&config);
    config.adopt_retained = false;  // a fresh chunk, not an earlier test's retained one
    config.huge_pages = true;       // chunk_size left at 0: one huge page
    arena_t *a = nullptr;
    ASSERT_EQ(arena_create(&config, &a), ARENA_OK);
    void *p = arena_alloc(a, 64);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(Stats(a).bytes_mapped, ARENA_HUGE_PAGE_SIZE);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % ARENA_HUGE_PAGE_SIZE, 0u);  // THP needs the alignment
    EXPECT_TRUE(AdvisedHuge(p)) << VmFlagsOf(p);

    arena_t *plain = MakeArena(ARENA_HUGE_PAGE_SIZE);
    void *q = arena_alloc(plain, 64);
    ASSERT_NE(q, nullptr);
    EXPECT_FALSE(VmFlagsOf(q).empty());
    EXPECT_FALSE(AdvisedHuge(q)) << VmFlagsOf(q);
    arena_destroy(plain);
    arena_destroy(a);
}

TEST(ArenaHugePages, ChunksSmallerThanAHugePageAreRejected) {
    arena_config_t config;
    arena_config_init(&config);
    config.huge_pages = true;
    config.chunk_size = ARENA_HUGE_PAGE_SIZE / 2;
    arena_t *a = reinterpret_cast<arena_t *>(0x1);
    EXPECT_EQ(arena_create(&config, &a), ARENA_EINVAL);
    EXPECT_EQ(a, nullptr);

    arena_pool_config_t pool_config = {ARENA_HUGE_PAGE_SIZE / 2, 0, true};
    arena_pool_t *pool = reinterpret_cast<arena_pool_t *>(0x1);
    EXPECT_EQ(arena_pool_create(&pool_config, &pool), ARENA_EINVAL);
    EXPECT_EQ(pool, nullptr);

    pool_config.huge_pages = false;  // a plain pool of 1 MiB chunks...
    ASSERT_EQ(arena_pool_create(&pool_config, &pool), ARENA_OK);
    config.chunk_size = 0;
    config.pool = pool;  // ...cannot serve an arena that asks for huge pages
    EXPECT_EQ(arena_create(&config, &a), ARENA_EINVAL);
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);

    if (!KernelHasTransparentHugePages())
        GTEST_SKIP() << "no transparent huge pages in this kernel";
    pool_config = {0, 0, true};
    ASSERT_EQ(arena_pool_create(&pool_config, &pool), ARENA_OK);
    config.huge_pages = false;  // the pool's huge pages apply to its arenas
    config.adopt_retained = false;
    config.pool = pool;
    ASSERT_EQ(arena_create(&config, &a), ARENA_OK);
    void *p = arena_alloc(a, 64);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(Stats(a).bytes_mapped, ARENA_HUGE_PAGE_SIZE);
    EXPECT_TRUE(AdvisedHuge(p)) << VmFlagsOf(p);
    arena_destroy(a);
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);
}

TEST(ArenaAlloc, AlignmentAndZeroSize) {
    arena_t *a = MakeArena();
    std::vector<void *> zero;
    for (size_t size : {0, 1, 7, 15, 16, 17, 33, 100, 511, 512, 4000}) {
        void *p = arena_alloc(a, size);
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u) << size;
        EXPECT_TRUE(arena_owns(p));
        memset(p, 0xAB, size);
    }
    for (int i = 0; i < 100; i++) zero.push_back(arena_alloc(a, 0));
    for (size_t i = 0; i < zero.size(); i++) {
        ASSERT_NE(zero[i], nullptr);
        for (size_t j = 0; j < i; j++) ASSERT_NE(zero[i], zero[j]);
    }
    // Distinct small blocks never overlap.
    char *p = static_cast<char *>(arena_alloc(a, 24));
    char *q = static_cast<char *>(arena_alloc(a, 24));
    EXPECT_GE(q - p, 32);
    arena_destroy(a);
}

// arena_owner_of is arena_owns's lookup, and arena_free_owned frees with it:
// both modes, small and large blocks, and a block freed again to its class.
TEST(ArenaFree, OwnedFreeMatchesArenaFree) {
    for (bool reuse : {false, true}) {
        arena_t *a = MakeArena(kChunk, 0, false, reuse);
        int on_stack = 0;
        EXPECT_EQ(arena_owner_of(&on_stack), nullptr);
        EXPECT_EQ(arena_owner_of(nullptr), nullptr);
        std::vector<void *> blocks;
        for (size_t size : {16, 48, 1000, 1040, 3000, 5000, 40000})
            blocks.push_back(arena_alloc(a, size));
        for (void *p : blocks) {
            ASSERT_NE(p, nullptr);
            void *owner = arena_owner_of(p);
            ASSERT_NE(owner, nullptr);
            EXPECT_EQ(arena_owns(p), true);
            arena_free_owned(owner, p);
        }
        arena_stats_t st;
        arena_get_stats(a, &st);
        EXPECT_EQ(st.blocks_freed, blocks.size()) << reuse;
        if (reuse) {  // each freed block went to its class: the same sizes take them back
            std::set<void *> again;
            for (size_t size : {16, 48, 1000, 1040, 3000, 5000})
                again.insert(arena_alloc(a, size));
            for (size_t i = 0; i + 1 < blocks.size(); i++)
                EXPECT_TRUE(again.count(blocks[i])) << i;
        }
        arena_release(a);
        arena_get_stats(a, &st);
        EXPECT_EQ(st.live_blocks_at_release, reuse ? 6u : 0u);
        arena_destroy(a);
    }
}

TEST(ArenaAlloc, CallocZeroesAndChecksOverflow) {
    arena_t *a = MakeArena();
    unsigned char *p = static_cast<unsigned char *>(arena_alloc(a, 256));
    memset(p, 0xFF, 256);
    arena_free(p);
    unsigned char *z = static_cast<unsigned char *>(arena_calloc(a, 16, 16));
    ASSERT_NE(z, nullptr);
    for (int i = 0; i < 256; i++) ASSERT_EQ(z[i], 0);
    EXPECT_EQ(arena_calloc(a, SIZE_MAX / 2, 3), nullptr);
    EXPECT_EQ(arena_last_error(a), ARENA_EINVAL);
    EXPECT_NE(arena_alloc(a, 16), nullptr);  // still usable
    arena_destroy(a);
}

TEST(ArenaRealloc, GrowsAndShrinksMostRecentBlockInPlace) {
    arena_t *a = MakeArena();
    char *p = static_cast<char *>(arena_alloc(a, 40));
    memcpy(p, "0123456789012345678901234567890123456789", 40);
    char *q = static_cast<char *>(arena_realloc(a, p, 400));
    EXPECT_EQ(q, p);
    EXPECT_EQ(memcmp(q, "0123456789012345678901234567890123456789", 40), 0);
    char *r = static_cast<char *>(arena_realloc(a, q, 20));
    EXPECT_EQ(r, p);
    // The shrink gave the tail back: the next block starts right after.
    char *next = static_cast<char *>(arena_alloc(a, 16));
    EXPECT_EQ(next, p + 32);
    arena_destroy(a);
}

TEST(ArenaRealloc, CopiesWhenNotMostRecentAndFreesOld) {
    arena_t *a = MakeArena();
    char *p = static_cast<char *>(arena_alloc(a, 100));
    for (int i = 0; i < 100; i++) p[i] = char(i);
    char *other = static_cast<char *>(arena_alloc(a, 50));
    memset(other, 0x5A, 50);
    char *q = static_cast<char *>(arena_realloc(a, p, 1000));
    ASSERT_NE(q, nullptr);
    EXPECT_NE(q, p);
    for (int i = 0; i < 100; i++) ASSERT_EQ(q[i], char(i));
    for (int i = 0; i < 50; i++) ASSERT_EQ(other[i], 0x5A);  // neighbour untouched
    arena_stats_t s = Stats(a);
    EXPECT_EQ(s.blocks_freed, 1u);  // the old block
    // Shrinking a non-recent block copies only what fits.
    char *small = static_cast<char *>(arena_realloc(a, other, 8));
    ASSERT_NE(small, nullptr);
    EXPECT_EQ(small[7], 0x5A);
    arena_destroy(a);
}

TEST(ArenaRealloc, NeverReadsPastMappedMemory) {
    // The last block of a chunk grows far beyond the chunk: the copy must stop
    // at the chunk's bump pointer (ASan config checks the bytes it reads).
    arena_t *a = MakeArena();
    char *filler = static_cast<char *>(arena_alloc(a, kChunk / 4 - 64));
    ASSERT_NE(filler, nullptr);
    char *p = nullptr;
    // Fill the chunk up to its end.
    while (true) {
        void *n = arena_alloc(a, 1024);
        if (Stats(a).chunks_mapped > 1) break;
        p = static_cast<char *>(n);
    }
    ASSERT_NE(p, nullptr);
    memset(p, 0x77, 1024);
    char *q = static_cast<char *>(arena_realloc(a, p, 3 * kChunk));
    ASSERT_NE(q, nullptr);
    for (int i = 0; i < 1024; i++) ASSERT_EQ(q[i], 0x77);
    EXPECT_EQ(arena_block_readable_size(q), 3 * kChunk);
    arena_free(q);
    arena_destroy(a);
}

TEST(ArenaRealloc, WorksOnBlocksOfReleasedArenas) {
    arena_t *old_arena = MakeArena();
    char *p = static_cast<char *>(arena_alloc(old_arena, 64));
    strcpy(p, "survivor");
    arena_release(old_arena);
    EXPECT_TRUE(arena_owns(p));
    arena_t *fresh = MakeArena();
    char *q = static_cast<char *>(arena_realloc(fresh, p, 200));
    ASSERT_NE(q, nullptr);
    EXPECT_STREQ(q, "survivor");
    // The old chunk's last block moved: the retained chunk is gone.
    EXPECT_FALSE(arena_owns(p));
    // A released arena refuses to allocate, realloc included.
    EXPECT_EQ(arena_realloc(old_arena, q, 500), nullptr);
    EXPECT_EQ(arena_last_error(old_arena), ARENA_ECLOSED);
    EXPECT_STREQ(q, "survivor");
    arena_destroy(old_arena);
    arena_destroy(fresh);
    arena_free(q);
    EXPECT_FALSE(arena_owns(q));
}

TEST(ArenaChunks, BlocksAroundAndBeyondChunkSize) {
    arena_t *a = MakeArena();
    uint64_t before_large = Global().large_live;
    std::vector<char *> large_blocks;
    // Just under the large threshold: from a chunk.
    char *p = static_cast<char *>(arena_alloc(a, kChunk / 4));
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(Stats(a).large_mappings, 0u);
    // Above it, at and beyond the chunk size: dedicated mappings.
    for (size_t size : {kChunk / 4 + 1, kChunk, kChunk + 1, 5 * kChunk + 123}) {
        char *q = static_cast<char *>(arena_alloc(a, size));
        ASSERT_NE(q, nullptr) << size;
        memset(q, 0xCD, size);  // every byte writable
        EXPECT_EQ(arena_block_readable_size(q), size);
        large_blocks.push_back(q);
    }
    EXPECT_EQ(Stats(a).large_mappings, 4u);
    EXPECT_EQ(Global().large_live, before_large + 4);

    // Many blocks spanning several chunks.
    std::vector<char *> blocks;
    for (int i = 0; i < 1000; i++) {
        char *b = static_cast<char *>(arena_alloc(a, 500));
        ASSERT_NE(b, nullptr);
        memset(b, i & 0xFF, 500);
        blocks.push_back(b);
    }
    for (int i = 0; i < 1000; i++) ASSERT_EQ((unsigned char)blocks[i][499], (unsigned)(i & 0xFF));
    EXPECT_GE(Stats(a).chunks_mapped, 8u);
    arena_destroy(a);
    // Live large blocks outlive their arena (retained), until freed.
    EXPECT_EQ(Global().large_live, before_large + 4);
    for (char *q : large_blocks) {
        EXPECT_EQ((unsigned char)q[0], 0xCD);
        arena_free(q);
    }
    EXPECT_EQ(Global().large_live, before_large);
    for (char *b : blocks) arena_free(b);
}

// Placing a chunk costs in proportion to the holes it looks at, not to the
// chunks the process holds. Before, the first-fit search started at the
// lowest free slot and read the slot bitmap a bit at a time, so when that
// slot began a hole too small for the request (a 64 KiB first chunk's slot,
// freed among held ones), every map read every slot held above it: 10,000
// open asyncio task scopes made each new chunk cost ~10,000 reads.
TEST(ArenaChunks, PlacingAChunkReadsWordsNotEverySlotHeld) {
    constexpr int kHeld = 4096;
    std::vector<arena_t *> held;
    std::vector<void *> blocks;
    for (int i = 0; i < kHeld; i++) {  // one 64 KiB chunk each, mapped while its arena is open
        arena_t *a = MakeArena(kChunk);
        blocks.push_back(arena_alloc(a, 64));
        ASSERT_NE(blocks.back(), nullptr);
        held.push_back(a);
    }
    for (int i = 0; i < kHeld; i += 2) {  // a one-slot hole every other slot
        arena_free(blocks[i]);
        arena_destroy(held[i]);
    }
    constexpr int kMaps = 256;
    arena_t *b = MakeArena(kChunk);
    std::vector<void *> large;
    unsigned long long reads = arena_testing_slot_reads();
    for (int i = 0; i < kMaps; i++) {  // two slots each: fits in none of the holes
        void *p = arena_alloc(b, 2 * kChunk);
        ASSERT_NE(p, nullptr);
        large.push_back(p);
    }
    reads = arena_testing_slot_reads() - reads;
    // The first map looks at every hole (a few reads each); the others
    // start where it stopped. Before: ~kHeld reads each, ~1M in all.
    EXPECT_LE(reads, 4ull * kHeld + 16ull * kMaps) << kMaps << " maps";
    // Still first fit: a one-slot map takes the lowest hole again.
    std::vector<uintptr_t> holes;
    for (int i = 0; i < kHeld; i += 2) {
        arena_t *c = MakeArena(kChunk);
        void *p = arena_alloc(c, 64);
        ASSERT_NE(p, nullptr);
        holes.push_back(ChunkOf(p));
        held[i] = c;
    }
    for (size_t i = 1; i < holes.size(); i++) EXPECT_LT(holes[i - 1], holes[i]) << i;
    for (void *p : large) arena_free(p);
    for (arena_t *a : held) arena_destroy(a);
    arena_destroy(b);
}

// The slot map's placement is exactly first fit, whatever its hints
// remember: random takes and gives of the shapes chunk_map asks for (one
// slot, aligned runs of 16, unaligned runs of a few to a few hundred),
// against a plain bit-by-bit first fit.
TEST(SlotMap, PlacesExactlyAsFirstFit) {
    constexpr size_t kSlots = 1000;  // (not a multiple of 64: the last word is partial)
    std::vector<uint64_t> words((kSlots + 63) / 64, 0);
    slot_map_t map;
    slot_map_init(&map, words.data(), kSlots);
    std::vector<bool> model(kSlots, false);
    auto model_find = [&](size_t count, size_t align) -> size_t {
        for (size_t i = 0; i + count <= kSlots; i += align) {
            size_t j = i;
            while (j < i + count && !model[j]) j++;
            if (j == i + count) return i;
        }
        return SIZE_MAX;
    };
    struct Run { size_t first, count; };
    std::vector<Run> runs;
    std::mt19937 rng(12345);
    // Ten shapes: more than the map's eight hints, so hints get replaced.
    const std::pair<size_t, size_t> shapes[] = {{1, 1}, {16, 16}, {2, 1}, {5, 1}, {32, 32}, {300, 1},
                                                 {64, 64}, {3, 2}, {100, 4}, {7, 1}};
    size_t found = 0, failed = 0;
    for (int step = 0; step < 200000; step++) {
        if (runs.empty() || rng() % 100 < 55) {
            auto [count, align] = shapes[rng() % (sizeof shapes / sizeof shapes[0])];
            size_t want = model_find(count, align);
            size_t got = slot_map_find(&map, count, align);
            ASSERT_EQ(got, want) << "step " << step << ": " << count << " slots aligned " << align;
            if (got == SIZE_MAX) {
                failed++;
                continue;
            }
            found++;
            if (rng() % 4 == 0)
                continue;  // found but not taken (chunk_map's metadata allocation can fail after the search)
            slot_map_take(&map, got, count);
            for (size_t i = got; i < got + count; i++) model[i] = true;
            runs.push_back({got, count});
        } else {
            size_t k = rng() % runs.size();
            slot_map_give(&map, runs[k].first, runs[k].count);
            for (size_t i = runs[k].first; i < runs[k].first + runs[k].count; i++) model[i] = false;
            runs[k] = runs.back();
            runs.pop_back();
        }
    }
    EXPECT_GT(found, 10000u);
    EXPECT_GT(failed, 100u);  // the map was full at times: searches that fail were exercised
    for (size_t i = 0; i < kSlots; i++) ASSERT_EQ((words[i / 64] >> (i % 64)) & 1, model[i] ? 1u : 0u) << i;
}

TEST(ArenaChunks, LargeMappingReturnedWhenItsBlockIsFreed) {
    arena_t *a = MakeArena();
    uint64_t mapped_before = Global().bytes_mapped;
    char *big = static_cast<char *>(arena_alloc(a, 10 * kChunk));
    ASSERT_NE(big, nullptr);
    EXPECT_GE(Global().bytes_mapped, mapped_before + 10 * kChunk);
    arena_free(big);
    EXPECT_FALSE(arena_owns(big));
    EXPECT_EQ(Global().bytes_mapped, mapped_before);
    EXPECT_EQ(Stats(a).bytes_mapped, 0u);
    arena_destroy(a);
}

TEST(ArenaLimit, ReturnsNullAndStaysUsable) {
    arena_t *a = MakeArena(kChunk, 3 * kChunk);
    std::vector<void *> blocks;
    void *p;
    while ((p = arena_alloc(a, 1000)) != nullptr) blocks.push_back(p);
    EXPECT_EQ(arena_last_error(a), ARENA_ELIMIT);
    EXPECT_LE(Stats(a).bytes_mapped, 3 * kChunk);
    EXPECT_GT(blocks.size(), 100u);
    // Large requests past the limit fail too; nothing already allocated is lost.
    EXPECT_EQ(arena_alloc(a, 10 * kChunk), nullptr);
    for (void *b : blocks) ASSERT_TRUE(arena_owns(b));
    arena_free(blocks.back());
    blocks.pop_back();
    arena_release(a);
    EXPECT_EQ(Stats(a).chunks_retained, 3u);
    for (void *b : blocks) arena_free(b);
    arena_destroy(a);
}

TEST(ArenaLimit, LargeBlockWithinLimitThenSmallAfterFree) {
    arena_t *a = MakeArena(kChunk, 4 * kChunk);
    void *big = arena_alloc(a, 3 * kChunk);
    ASSERT_NE(big, nullptr);
    EXPECT_NE(arena_alloc(a, 100), nullptr);      // one chunk: 4 * kChunk mapped
    EXPECT_EQ(arena_alloc(a, 2 * kChunk), nullptr);  // would pass the limit
    EXPECT_EQ(arena_last_error(a), ARENA_ELIMIT);
    arena_free(big);                                // returned at once
    EXPECT_NE(arena_alloc(a, 2 * kChunk), nullptr);  // fits again
    arena_destroy(a);
}

TEST(ArenaOs, RefusedCommitGivesNullAndArenaStaysUsable) {
    arena_t *a = MakeArena();
    void *first = arena_alloc(a, 100);
    ASSERT_NE(first, nullptr);
    arena_testing_fail_commit_after(0);
    EXPECT_EQ(arena_alloc(a, 10 * kChunk), nullptr);
    EXPECT_EQ(arena_last_error(a), ARENA_ENOMEM);
    arena_testing_fail_commit_after(-1);
    EXPECT_NE(arena_alloc(a, 10 * kChunk), nullptr);
    // A failing chunk refill leaves the current chunk intact.
    arena_testing_fail_commit_after(0);
    void *p;
    int n = 0;
    while ((p = arena_alloc(a, 1000)) != nullptr) n++;
    arena_testing_fail_commit_after(-1);
    EXPECT_EQ(arena_last_error(a), ARENA_ENOMEM);
    EXPECT_TRUE(arena_owns(first));
    EXPECT_NE(arena_alloc(a, 1000), nullptr);
    arena_destroy(a);
}

TEST(ArenaRelease, WithoutSurvivorsUnmapsEverything) {
    uint64_t mapped_before = Global().bytes_mapped;
    arena_t *a = MakeArena();
    std::vector<void *> blocks;
    for (int i = 0; i < 2000; i++) blocks.push_back(arena_alloc(a, 100));
    blocks.push_back(arena_alloc(a, 2 * kChunk));
    for (void *b : blocks) arena_free(b);
    uint64_t chunks = Stats(a).chunks_mapped;
    EXPECT_GE(chunks, 3u);
    arena_release(a);
    arena_stats_t s = Stats(a);
    EXPECT_TRUE(s.released);
    EXPECT_EQ(s.chunks_released, chunks);  // the large one went at its free
    EXPECT_EQ(s.chunks_retained, 0u);
    EXPECT_EQ(s.bytes_mapped, 0u);
    EXPECT_EQ(s.blocks_freed, 2001u);
    for (void *b : blocks) EXPECT_FALSE(arena_owns(b));
    EXPECT_EQ(Global().bytes_mapped, mapped_before);
    EXPECT_EQ(arena_alloc(a, 16), nullptr);
    EXPECT_EQ(arena_last_error(a), ARENA_ECLOSED);
    arena_release(a);  // idempotent
    arena_destroy(a);
}

TEST(ArenaRelease, SurvivorsPinOnlyTheirChunksAndLastFreeUnmaps) {
    arena_global_stats_t g0 = Global();
    arena_t *a = MakeArena();
    std::vector<char *> blocks;
    for (int i = 0; i < 3000; i++) blocks.push_back(static_cast<char *>(arena_alloc(a, 100)));
    char *survivor_a = blocks[10];    // first chunk
    char *survivor_b = blocks[2999];  // last chunk
    strcpy(survivor_a, "alive-a");
    strcpy(survivor_b, "alive-b");
    for (char *b : blocks)
        if (b != survivor_a && b != survivor_b) arena_free(b);
    uint64_t chunks = Stats(a).chunks_mapped;
    arena_release(a);
    arena_stats_t s = Stats(a);
    EXPECT_EQ(s.chunks_retained, 2u);
    EXPECT_EQ(s.chunks_released, chunks - 2);
    EXPECT_EQ(s.live_blocks_at_release, 2u);
    EXPECT_EQ(s.bytes_retained, 2 * kChunk);
    arena_global_stats_t g1 = Global();
    EXPECT_EQ(g1.chunks_retained, g0.chunks_retained + 2);
    EXPECT_EQ(g1.blocks_retained, g0.blocks_retained + 2);
    // Survivors are intact and writable; their neighbours' chunk stays mapped.
    EXPECT_STREQ(survivor_a, "alive-a");
    EXPECT_STREQ(survivor_b, "alive-b");
    EXPECT_TRUE(arena_owns(blocks[11]));
    EXPECT_FALSE(arena_owns(blocks[1500]));
    EXPECT_EQ(arena_block_arena_id(survivor_a), arena_id(a));
    arena_destroy(a);  // the handle can go; the survivors cannot
    EXPECT_STREQ(survivor_a, "alive-a");
    arena_free(survivor_a);
    EXPECT_FALSE(arena_owns(survivor_a));
    EXPECT_TRUE(arena_owns(survivor_b));
    EXPECT_EQ(Global().chunks_retained, g0.chunks_retained + 1);
    arena_free(survivor_b);
    arena_global_stats_t g2 = Global();
    EXPECT_EQ(g2.chunks_retained, g0.chunks_retained);
    EXPECT_EQ(g2.bytes_mapped, g0.bytes_mapped);
    EXPECT_EQ(g2.retained_unmapped_total, g0.retained_unmapped_total + 2);
}

TEST(ArenaRelease, RetainedChunksBetweenEmptyOnesKeepTheRetainedListIntact) {
    // Chunks in list order (newest first): survivor, empty, survivor, empty.
    // Release unmaps the empty ones while the others are already on the
    // retained list; unlinking an empty chunk from the arena's list must not
    // write through its retained neighbour's links.
    ASSERT_EQ(ListProblem(), "");
    arena_t *a = MakeArena();
    std::vector<char *> survivors;
    for (int chunk = 0; chunk < 4; chunk++) {
        std::vector<char *> blocks;
        for (size_t i = 0; i < kChunk / 64; i++) blocks.push_back(static_cast<char *>(arena_alloc(a, 64)));
        ASSERT_EQ(ChunkOf(blocks.front()), ChunkOf(blocks.back()));
        for (size_t i = 0; i < blocks.size(); i++)
            if (chunk % 2 == 1 && i == 7) survivors.push_back(blocks[i]);
            else arena_free(blocks[i]);
    }
    arena_release(a);
    EXPECT_EQ(Stats(a).chunks_retained, 2u);
    EXPECT_EQ(ListProblem(), "");
    arena_free(survivors[1]);  // the newest first: it was linked first
    EXPECT_EQ(ListProblem(), "");
    arena_free(survivors[0]);
    EXPECT_EQ(ListProblem(), "");
    arena_destroy(a);
}

int stack_probe;
TEST(ArenaOwns, ForeignPointersAreNotOwned) {
    arena_t *a = MakeArena();
    void *mine = arena_alloc(a, 32);
    EXPECT_TRUE(arena_owns(mine));
    EXPECT_TRUE(arena_owns(static_cast<char *>(mine) + 17));  // interior
    void *heap = malloc(32);
    int local = 0;
    EXPECT_FALSE(arena_owns(heap));
    EXPECT_FALSE(arena_owns(&local));
    EXPECT_FALSE(arena_owns(&stack_probe));
    EXPECT_FALSE(arena_owns(nullptr));
    EXPECT_FALSE(arena_owns(reinterpret_cast<void *>(UINTPTR_MAX)));
    EXPECT_FALSE(arena_owns(reinterpret_cast<void *>(uintptr_t(16))));
    EXPECT_EQ(arena_block_arena_id(heap), 0u);
    free(heap);
    arena_destroy(a);
}

TEST(ArenaOwns, SafeWhileAnotherThreadCreatesChunks) {
    std::atomic<bool> stop{false};
    std::atomic<long> owned_hits{0};
    std::vector<void *> published(4096, nullptr);
    std::atomic<size_t> count{0};
    std::thread reader([&] {
        std::mt19937_64 rng(7);
        while (!stop.load()) {
            size_t n = count.load(std::memory_order_acquire);
            if (n) {
                void *p = published[rng() % n];
                if (arena_owns(p)) owned_hits++;
            }
            int local;
            if (arena_owns(&local)) owned_hits += 1000000;  // never
        }
    });
    arena_t *a = MakeArena();
    for (size_t i = 0; i < published.size(); i++) {
        published[i] = arena_alloc(a, 1000);
        count.store(i + 1, std::memory_order_release);
    }
    while (owned_hits.load() == 0) std::this_thread::yield();
    stop = true;
    reader.join();
    EXPECT_LT(owned_hits.load(), 1000000);
    arena_destroy(a);
}

void TouchReleased(void *p) { static_cast<volatile char *>(p)[0] = 1; }

TEST(ArenaPoison, TouchingReleasedMemoryFaults) {
    arena_t *a = MakeArena(kChunk, 0, /*poison=*/true);
    char *dead = static_cast<char *>(arena_alloc(a, 64));
    char *survivor = static_cast<char *>(arena_alloc(a, 2 * kChunk));  // large, own mapping
    arena_free(dead);
    arena_release(a);
    EXPECT_TRUE(DiesWithFault(TouchReleased, dead));
    // Retained until its last free, then poisoned too.
    survivor[0] = 1;
    EXPECT_FALSE(DiesWithFault(TouchReleased, survivor));
    arena_free(survivor);
    EXPECT_TRUE(DiesWithFault(TouchReleased, survivor));
    EXPECT_GE(Global().quarantined_bytes, 3 * kChunk);
    arena_destroy(a);
}

// Randomized alloc/realloc/free/release against a reference model: every live
// block keeps its contents, stays owned, never overlaps another, and at the
// end everything maps back to zero.
struct ModelBlock {
    size_t size;
    unsigned char fill;
    uint64_t arena;  // id of the arena that handed it out
};

void CheckBlock(void *p, const ModelBlock &b) {
    const unsigned char *c = static_cast<const unsigned char *>(p);
    ASSERT_TRUE(arena_owns(p));
    ASSERT_EQ(arena_block_arena_id(p), b.arena);
    for (size_t i = 0; i < b.size; i += (b.size / 8) + 1) ASSERT_EQ(c[i], b.fill) << i;
    if (b.size) {
        ASSERT_EQ(c[b.size - 1], b.fill);
    }
}

class ArenaModel : public ::testing::TestWithParam<std::tuple<unsigned, bool>> {};

TEST_P(ArenaModel, RandomSequenceMatchesReferenceModel) {
    std::mt19937 rng(std::get<0>(GetParam()));
    const bool reuse = std::get<1>(GetParam());
    arena_global_stats_t g0 = Global();
    std::map<char *, ModelBlock> live;
    // Adoption on: later arenas allocate around the survivors of earlier ones.
    arena_t *a = MakeArena(kChunk, 0, false, reuse, nullptr, /*adopt=*/true);
    std::vector<arena_t *> released;
    auto random_size = [&]() -> size_t {
        unsigned r = rng() % 100;
        if (r < 70) return 16 + rng() % 112;
        if (r < 95) return rng() % 1024;
        if (r < 99) return rng() % (kChunk / 2);
        return kChunk + rng() % (2 * kChunk);
    };
    auto random_live = [&]() {
        auto it = live.begin();
        std::advance(it, rng() % live.size());
        return it;
    };
    unsigned char next_fill = 1;
    uint64_t adopted = 0;
    for (int step = 0; step < 20000; step++) {
        unsigned op = rng() % 100;
        if (op < 50 || live.empty()) {
            size_t size = random_size();
            char *p = static_cast<char *>(arena_alloc(a, size));
            ASSERT_NE(p, nullptr);
            ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
            ModelBlock b{size, next_fill++, arena_id(a)};
            memset(p, b.fill, size);
            ASSERT_TRUE(live.emplace(p, b).second) << "address handed out twice";
        } else if (op < 65) {
            auto it = random_live();
            CheckBlock(it->first, it->second);
            size_t size = random_size();
            char *q = static_cast<char *>(arena_realloc(a, it->first, size));
            ASSERT_NE(q, nullptr);
            ModelBlock b = it->second;
            size_t kept = std::min(b.size, size);
            for (size_t i = 0; i < kept; i += kept / 8 + 1) ASSERT_EQ((unsigned char)q[i], b.fill);
            if (kept) {
                ASSERT_EQ((unsigned char)q[kept - 1], b.fill);
            }
            if (q != it->first) b.arena = arena_id(a);
            live.erase(it);
            b.size = size;
            b.fill = next_fill++;
            memset(q, b.fill, size);
            ASSERT_TRUE(live.emplace(q, b).second);
        } else if (op < 98) {
            auto it = random_live();
            CheckBlock(it->first, it->second);
            arena_free(it->first);
            live.erase(it);
        } else {
            arena_release(a);
            arena_stats_t s = Stats(a);
            ASSERT_EQ(s.bytes_mapped, 0u);
            // Its escapes are exactly its own live blocks, not the survivors
            // of earlier arenas in the chunks it adopted.
            uint64_t own = 0;
            for (auto &kv : live) own += kv.second.arena == arena_id(a);
            ASSERT_EQ(s.live_blocks_at_release, own);
            ASSERT_EQ(ListProblem(), "");
            adopted += s.chunks_adopted;
            released.push_back(a);
            a = MakeArena(kChunk, 0, false, reuse, nullptr, /*adopt=*/true);
        }
        if (step % 1000 == 0) {
            char *prev_end = nullptr;
            for (auto &kv : live) {
                ASSERT_GE(kv.first, prev_end) << "blocks overlap";
                prev_end = kv.first + kv.second.size;
                CheckBlock(kv.first, kv.second);
            }
        }
    }
    for (auto &kv : live) {
        CheckBlock(kv.first, kv.second);
        arena_free(kv.first);
    }
    adopted += Stats(a).chunks_adopted;
    arena_destroy(a);
    for (arena_t *r : released) arena_destroy(r);
    arena_global_stats_t g1 = Global();
    EXPECT_EQ(g1.bytes_mapped, g0.bytes_mapped);
    EXPECT_EQ(g1.chunks_retained, g0.chunks_retained);
    EXPECT_EQ(g1.blocks_retained, g0.blocks_retained);
    EXPECT_GT(adopted, 0u);  // the sequence did exercise adoption
    EXPECT_EQ(ListProblem(), "");
    EXPECT_EQ(g1.chunks_adopted_total - g0.chunks_adopted_total, adopted);
}

INSTANTIATE_TEST_SUITE_P(Seeds, ArenaModel,
                         ::testing::Combine(::testing::Values(1u, 2u, 3u, 42u, 2026u), ::testing::Bool()));

// ---- page-granular release inside retained chunks ----

TEST(ArenaPages, RetainedChunkGivesBackItsFreePages) {
    arena_t *a = MakeArena(kChunk, 0, /*poison=*/true);
    std::vector<char *> blocks;
    for (int i = 0; i < 600; i++) blocks.push_back(static_cast<char *>(arena_alloc(a, 96)));  // ~14 pages
    char *keep = blocks[300];
    memset(keep, 0x42, 96);
    for (char *b : blocks)
        if (b != keep) arena_free(b);
    uint64_t global_before = Global().bytes_pages_released;
    arena_release(a);
    arena_stats_t s = Stats(a);
    EXPECT_EQ(s.chunks_retained, 1u);
    // All but the survivor's page(s) (two if it crosses a boundary) go back.
    EXPECT_GE(s.bytes_pages_released, kChunk - 2 * 4096);
    EXPECT_EQ(Global().bytes_pages_released - global_before, s.bytes_pages_released);
    for (int i = 0; i < 96; i++) ASSERT_EQ(keep[i], 0x42);
    // A block of a released page faults (poison), the survivor's page does not.
    char *far = blocks[0];
    EXPECT_TRUE(DiesWithFault(TouchReleased, far));
    EXPECT_FALSE(DiesWithFault(TouchReleased, keep));
    arena_free(keep);
    EXPECT_FALSE(arena_owns(keep));
    arena_destroy(a);
}

TEST(ArenaPages, BlockCrossingAPageBoundaryKeepsBothPages) {
    arena_t *a = MakeArena(kChunk, 0, /*poison=*/true);
    std::vector<char *> blocks;
    char *crossing = nullptr;
    for (int i = 0; i < 400 && !crossing; i++) {
        char *b = static_cast<char *>(arena_alloc(a, 208));
        uintptr_t start = reinterpret_cast<uintptr_t>(b), last = start + 207;
        if ((start >> 12) != (last >> 12) && (start >> 12) > (reinterpret_cast<uintptr_t>(blocks.empty() ? b : blocks[0]) >> 12))
            crossing = b;
        else
            blocks.push_back(b);
    }
    ASSERT_NE(crossing, nullptr);
    for (int i = 0; i < 100; i++) blocks.push_back(static_cast<char *>(arena_alloc(a, 208)));
    for (char *b : blocks) arena_free(b);
    arena_release(a);
    EXPECT_EQ(Stats(a).live_blocks_at_release, 1u);
    // Every byte of the crossing survivor is still mapped and writable.
    memset(crossing, 0x33, 208);
    EXPECT_FALSE(DiesWithFault(TouchReleased, crossing + 207));
    EXPECT_TRUE(DiesWithFault(TouchReleased, blocks[0]));
    arena_free(crossing);
    arena_destroy(a);
}

// Bump-allocates 208-byte blocks until one crosses a page boundary; returns
// it and fills `before` with the blocks allocated before it.
char *AllocUntilCrossing(arena_t *a, std::vector<char *> *before) {
    for (int i = 0; i < 400; i++) {
        char *b = static_cast<char *>(arena_alloc(a, 208));
        uintptr_t start = reinterpret_cast<uintptr_t>(b);
        if ((start >> 12) != ((start + 207) >> 12) && !before->empty())
            return b;
        before->push_back(b);
    }
    return nullptr;
}

void ReallocA208ByteBlockIntoFreshArena(void *p) {
    arena_t *fresh = MakeArena();
    unsigned char *q = static_cast<unsigned char *>(arena_realloc(fresh, p, 4000));
    for (int i = 0; i < 208; i++)
        if (!q || q[i] != 0x5A) _exit(5);
}

TEST(ArenaPages, DeadBlockCrossingOutOfASurvivorsPageDoesNotPinTheNextPage) {
    // Reuse mode knows the size of every freed block, so it knows when the
    // block crossing out of a page dies: the survivor's page stays, the next
    // page goes back. (Treating every crossing block as live kept it.)
    arena_t *a = MakeArena(kChunk, 0, /*poison=*/true, /*reuse=*/true);
    std::vector<char *> blocks;
    char *crossing = AllocUntilCrossing(a, &blocks);
    ASSERT_NE(crossing, nullptr);
    char *keep = blocks.back();  // the block before it: same page, not crossing
    ASSERT_EQ(reinterpret_cast<uintptr_t>(keep) >> 12, reinterpret_cast<uintptr_t>(crossing) >> 12);
    memset(keep, 0x5A, 208);
    for (int i = 0; i < 60; i++) blocks.push_back(static_cast<char *>(arena_alloc(a, 208)));
    arena_free(crossing);
    for (char *b : blocks)
        if (b != keep) arena_free(b);
    arena_release(a);
    EXPECT_EQ(Stats(a).live_blocks_at_release, 1u);
    EXPECT_TRUE(DiesWithFault(TouchReleased, crossing + 207)) << "the dead crossing block pinned the next page";
    ASSERT_FALSE(DiesWithFault(TouchReleased, keep));  // (before reading it here)
    for (int i = 0; i < 208; i++) ASSERT_EQ(static_cast<unsigned char>(keep[i]), 0x5A);
    // realloc copies from the survivor's own page only, never from the
    // released page the dead block used to cross into.
    EXPECT_LE(arena_block_readable_size(keep),
              4096u - (reinterpret_cast<uintptr_t>(keep) & 4095u));
    EXPECT_FALSE(DiesWithFault(ReallocA208ByteBlockIntoFreshArena, keep));
    arena_free(keep);
    arena_destroy(a);
}

TEST(ArenaPages, CrossingBlockHandedOutAgainPinsTheNextPageAgain) {
    arena_t *a = MakeArena(kChunk, 0, /*poison=*/true, /*reuse=*/true);
    std::vector<char *> blocks;
    char *crossing = AllocUntilCrossing(a, &blocks);
    ASSERT_NE(crossing, nullptr);
    arena_free(crossing);  // dead: its next page would be free...
    char *again = static_cast<char *>(arena_alloc(a, 208));
    ASSERT_EQ(again, crossing) << "same class, LIFO";  // ...but it is live again
    memset(again, 0x77, 208);
    for (char *b : blocks) arena_free(b);
    arena_release(a);
    EXPECT_EQ(Stats(a).live_blocks_at_release, 1u);
    ASSERT_FALSE(DiesWithFault(TouchReleased, again + 207)) << "the live crossing block lost its next page";
    for (int i = 0; i < 208; i++) ASSERT_EQ(static_cast<unsigned char>(again[i]), 0x77);
    arena_free(again);
    arena_destroy(a);
}

TEST(ArenaPages, LaterFreesInARetainedChunkGiveBackPages) {
    arena_t *a = MakeArena(kChunk);
    std::vector<char *> blocks;
    for (int i = 0; i < 500; i++) blocks.push_back(static_cast<char *>(arena_alloc(a, 112)));
    char *first = blocks[0], *last = blocks[499];
    for (char *b : blocks)
        if (b != first && b != last) arena_free(b);
    arena_release(a);
    uint64_t before = Global().bytes_pages_released;
    arena_free(first);  // its page empties: handed back now
    EXPECT_GE(Global().bytes_pages_released - before, 4096u);
    EXPECT_TRUE(arena_owns(last));
    arena_free(last);
    EXPECT_FALSE(arena_owns(last));
    arena_destroy(a);
}

// ---- reuse mode ----

TEST(ArenaReuse, FreedBlocksAreHandedOutAgain) {
    arena_t *a = MakeArena(kChunk, 0, false, /*reuse=*/true);
    void *p = arena_alloc(a, 40);
    arena_free(p);
    EXPECT_EQ(arena_alloc(a, 48), p);  // same class (48), LIFO
    arena_free(p);
    // A churn loop never grows past its working set.
    std::vector<void *> window;
    for (int i = 0; i < 200000; i++) {
        window.push_back(arena_alloc(a, 16 + (i % 30) * 16));
        if (window.size() > 64) {
            arena_free(window.front());
            window.erase(window.begin());
        }
    }
    arena_stats_t s = Stats(a);
    EXPECT_LE(s.chunks_mapped, 2u);  // 30 classes x one 4 KiB page each
    EXPECT_GT(s.blocks_reused, 190000u);
    for (void *w : window) arena_free(w);
    arena_release(a);
    EXPECT_EQ(Stats(a).chunks_retained, 0u);
    arena_destroy(a);
}

TEST(ArenaReuse, CallocZeroesReusedMemoryAndReallocKnowsExactSizes) {
    arena_t *a = MakeArena(kChunk, 0, false, true);
    unsigned char *p = static_cast<unsigned char *>(arena_alloc(a, 64));
    memset(p, 0xEE, 64);
    arena_free(p);
    unsigned char *z = static_cast<unsigned char *>(arena_calloc(a, 8, 8));
    ASSERT_EQ(z, p);
    for (int i = 0; i < 64; i++) ASSERT_EQ(z[i], 0);
    EXPECT_EQ(arena_block_readable_size(z), 64u);  // exact: its class
    for (int i = 0; i < 64; i++) z[i] = (unsigned char)i;
    EXPECT_EQ(arena_realloc(a, z, 60), z);  // same class: in place
    void *after = arena_alloc(a, 16);       // z is no longer the most recent block
    unsigned char *grown = static_cast<unsigned char *>(arena_realloc(a, z, 300));
    ASSERT_NE(grown, z);
    for (int i = 0; i < 64; i++) ASSERT_EQ(grown[i], i);
    EXPECT_EQ(arena_block_readable_size(grown), 304u);
    arena_free(grown);
    arena_free(after);
    arena_destroy(a);
}

void ReallocIntoFreshArena(void *p) {
    arena_t *fresh = MakeArena();
    char *q = static_cast<char *>(arena_realloc(fresh, p, 4000));
    if (!q || q[0] != 0x11 || q[599] != 0x11) _exit(5);
}

TEST(ArenaReuse, ReallocOfABumpBlockNeverReadsANeighbouringReleasedPage) {
    // A 600-byte block (no size class), then pages of small blocks after it.
    // Those pages empty and are handed back (PROT_NONE when poisoning); a
    // realloc of the big block must copy only its own page(s).
    arena_t *a = MakeArena(kChunk, 0, /*poison=*/true, /*reuse=*/true);
    char *big = static_cast<char *>(arena_alloc(a, 600));
    memset(big, 0x11, 600);
    std::vector<void *> small;
    for (int i = 0; i < 300; i++) small.push_back(arena_alloc(a, 32));  // class pages after it
    for (void *p : small) arena_free(p);
    arena_release(a);
    EXPECT_GT(Stats(a).bytes_pages_released, 0u);
    EXPECT_LE(arena_block_readable_size(big), 4096u);
    EXPECT_FALSE(DiesWithFault(ReallocIntoFreshArena, big));
    arena_free(big);
    arena_destroy(a);
}

TEST(ArenaReuse, SizeClassesHoldEveryRequestUpTo256KiB) {
    arena_size_classes_init();
    for (unsigned c = 2; c < ARENA_CLASSES; c++) {
        ASSERT_GT(arena_class_size[c], arena_class_size[c - 1]);
        ASSERT_EQ(arena_class_size[c] % 16, 0u);
    }
    for (size_t r = 16; r <= ARENA_CLASS_MAX; r += 16) {
        unsigned c = arena_size_class(r);
        ASSERT_GE(arena_class_size[c], r);
        ASSERT_LT(arena_class_size[c - 1], r);  // the smallest class that holds it
        if (r > ARENA_LINEAR_MAX) {
            ASSERT_LE(arena_class_size[c], r + r / 12);  // < 8.4% rounding
        }
    }
}

TEST(ArenaReuse, MidSizeBlocksAreRecycledToo) {
    arena_t *a = MakeArena(ARENA_DEFAULT_CHUNK_SIZE, 0, false, true);
    char *p = static_cast<char *>(arena_alloc(a, 10000));
    memset(p, 1, 10000);
    size_t block = arena_block_readable_size(p);
    EXPECT_GE(block, 10000u);
    EXPECT_LT(block, 10900u);
    arena_free(p);
    EXPECT_EQ(arena_alloc(a, 9900), p);  // same geometric class
    // A loop of 20 KB temporaries stays in one chunk.
    for (int i = 0; i < 2000; i++) arena_free(arena_alloc(a, 20000 + i % 64));
    EXPECT_EQ(Stats(a).chunks_mapped, 1u);
    arena_free(p);
    arena_destroy(a);
}

TEST(ArenaReuse, EveryClassRoundTripsThroughFreeIncludingTheLastBlock) {
    // A block's size comes from the block-start bitmap (the distance to the
    // next start, or to the bump pointer for the last block): a wrong size
    // would put the block on another class's list and the same request
    // would not get it back.
    arena_t *a = MakeArena(ARENA_DEFAULT_CHUNK_SIZE, 0, false, true);
    const size_t sizes[] = {1, 16, 17, 100, 512, 1000, 3072, 3073, 5000, 40000, 200000};
    std::vector<void *> blocks;
    for (size_t n : sizes) blocks.push_back(arena_alloc(a, n));
    for (size_t i = 0; i < blocks.size(); i++) {
        EXPECT_GE(arena_block_readable_size(blocks[i]), sizes[i]);
        EXPECT_LT(arena_block_readable_size(blocks[i]), sizes[i] + sizes[i] / 12 + 16) << sizes[i];
    }
    for (void *b : blocks) arena_free(b);  // the last one ends at the bump pointer
    for (size_t i = blocks.size(); i-- > 0;)
        EXPECT_EQ(arena_alloc(a, sizes[i]), blocks[i]) << sizes[i];
    EXPECT_EQ(Stats(a).blocks_reused, blocks.size());
    arena_destroy(a);
}

TEST(ArenaReuse, BlocksEndingInTheNextBitsWordOrAtTheSlotsEndKnowTheirSize) {
    // A free reads its block's size from the start bits: the next start in
    // the block's own 64-bit word (512 bytes), else in the next word of the
    // same 64 KiB slot, else the out-of-line walk. Sizes that do not divide
    // 512 put block ends in every position of both words; the chunk is filled
    // to its last byte, so its last block ends at the slot's end (no next
    // word to read). A wrong size puts a block on another class's list, and
    // the same request would not get it back.
    for (size_t size : {48u, 80u, 208u, 496u, 1008u}) {
        arena_t *a = MakeArena(kChunk, 0, false, true);
        std::vector<void *> blocks;
        for (size_t used = 0; used + size <= kChunk; used += size) blocks.push_back(arena_alloc(a, size));
        ASSERT_EQ(ChunkOf(blocks.front()), ChunkOf(blocks.back())) << size;
        size_t tail = kChunk - blocks.size() * size;  // the rest of the chunk: one block, to its last byte
        void *last = tail ? arena_alloc(a, tail) : nullptr;
        if (last) {
            ASSERT_EQ(ChunkOf(last), ChunkOf(blocks.front())) << size;
        }
        for (void *b : blocks) ASSERT_EQ(arena_block_readable_size(b), size) << size;
        if (last) {
            EXPECT_EQ(arena_block_readable_size(last), tail) << size;
        }
        for (void *b : blocks) arena_free(b);
        if (last) arena_free(last);
        for (size_t i = blocks.size(); i-- > 0;) ASSERT_EQ(arena_alloc(a, size), blocks[i]) << size << " #" << i;
        if (last) {
            EXPECT_EQ(arena_alloc(a, tail), last) << size;
        }
        arena_destroy(a);
    }
}

TEST(ArenaReuse, StaleBlockStartsOfAnEarlierChunkAreCleared) {
    // Arena 1 fills a chunk with 16-byte blocks (a start bit on every
    // granule) and gives it back; arena 2's chunk lands on the same slots
    // (first fit). Stale bits would cut its 1 KiB blocks to 16 bytes: realloc
    // would copy 16 bytes and a freed block would go to the 16-byte list.
    arena_t *first = MakeArena(kChunk, 0, false, true);
    std::vector<void *> tiny;
    for (size_t i = 0; i < kChunk / 16 - 1; i++) tiny.push_back(arena_alloc(first, 16));
    char *old_base = static_cast<char *>(tiny[0]);
    for (void *t : tiny) arena_free(t);
    arena_destroy(first);
    arena_t *a = MakeArena(kChunk, 0, false, true);
    unsigned char *p = static_cast<unsigned char *>(arena_alloc(a, 1024));
    ASSERT_EQ(reinterpret_cast<char *>(p), old_base) << "expected the same slot (first fit)";
    void *after = arena_alloc(a, 1024);  // p is not the most recent block
    for (int i = 0; i < 1024; i++) p[i] = static_cast<unsigned char>(i * 7);
    EXPECT_EQ(arena_block_readable_size(p), 1024u);
    unsigned char *grown = static_cast<unsigned char *>(arena_realloc(a, p, 2048));
    ASSERT_NE(grown, p);
    for (int i = 0; i < 1024; i++) ASSERT_EQ(grown[i], static_cast<unsigned char>(i * 7)) << i;
    EXPECT_EQ(arena_alloc(a, 1020), p) << "the freed 1 KiB block must be on the 1 KiB list";
    arena_free(grown);
    arena_free(after);
    arena_destroy(a);
}

// ---- pools of warm chunks ----

// Fills exactly one chunk of arena a with 64-byte blocks and frees all but
// those in the listed pages (one survivor each, holding `text`).
std::vector<char *> LeaveSurvivors(arena_t *a, std::initializer_list<size_t> pages, const char *text) {
    std::vector<char *> blocks, survivors;
    for (size_t i = 0; i < kChunk / 64; i++) blocks.push_back(static_cast<char *>(arena_alloc(a, 64)));
    EXPECT_EQ(ChunkOf(blocks.front()), ChunkOf(blocks.back()));
    for (size_t page : pages) {
        char *s = blocks[page * (kPage / 64) + 5];
        strcpy(s, text);
        survivors.push_back(s);
    }
    for (char *b : blocks)
        if (std::find(survivors.begin(), survivors.end(), b) == survivors.end()) arena_free(b);
    return survivors;
}

TEST(ArenaPool, ReleasedChunksStayWarmForTheNextArena) {
    arena_pool_config_t pc = {kChunk, 8 * kChunk, false};
    arena_pool_t *pool = nullptr;
    ASSERT_EQ(arena_pool_create(&pc, &pool), ARENA_OK);
    arena_t *a = MakeArena(kChunk, 0, false, false, pool);
    std::vector<void *> blocks;
    for (int i = 0; i < 5000; i++) blocks.push_back(arena_alloc(a, 100));  // ~8 chunks
    for (void *b : blocks) arena_free(b);
    uint64_t chunks = Stats(a).chunks_mapped;
    ASSERT_GE(chunks, 8u);
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_EINVAL);  // an arena is open
    arena_release(a);
    arena_pool_stats_t ps;
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_chunks, 8u);  // the cap
    EXPECT_EQ(ps.warm_bytes, 8 * kChunk);
    EXPECT_EQ(Stats(a).chunks_parked, 8u);
    EXPECT_EQ(Global().warm_bytes, 8 * kChunk);
    EXPECT_FALSE(arena_owns(blocks[0]));  // parked chunks own no blocks
    uint64_t mapped_total = Global().chunks_mapped_total;
    arena_t *b = MakeArena(kChunk, 0, false, false, pool);
    for (int i = 0; i < 4000; i++) ASSERT_NE(arena_alloc(b, 100), nullptr);
    arena_pool_get_stats(pool, &ps);
    EXPECT_GE(ps.hits, 6u);
    EXPECT_EQ(Global().chunks_mapped_total, mapped_total);  // no fresh mapping
    arena_release(b);  // its blocks were never freed: retained, not parked
    uint64_t mapped_before_trim = Global().bytes_mapped;
    arena_pool_trim(pool, 0);
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_bytes, 0u);
    EXPECT_EQ(Global().bytes_mapped, mapped_before_trim - ps.trimmed_bytes);
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);
    arena_destroy(a);
    arena_destroy(b);
}


TEST(ArenaPool, RetainedChunksKeepTheirFreePagesResidentForThePoolsNextArena) {
    arena_pool_config_t pc = {kChunk, 4 * kChunk, false};
    arena_pool_t *pool = nullptr;
    ASSERT_EQ(arena_pool_create(&pc, &pool), ARENA_OK);
    arena_t *a = MakeArena(kChunk, 0, false, false, pool);  // one fresh chunk, exactly
    std::vector<char *> blocks;
    for (size_t i = 0; i < kChunk / 64; i++) blocks.push_back(static_cast<char *>(arena_alloc(a, 64)));
    ASSERT_EQ(ChunkOf(blocks.front()), ChunkOf(blocks.back()));
    char *survivor = blocks[100];
    strcpy(survivor, "kept");
    for (char *b : blocks)
        if (b != survivor) arena_free(b);
    arena_release(a);
    arena_pool_stats_t ps;
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(Stats(a).chunks_retained, 1u);
    EXPECT_EQ(Stats(a).bytes_pages_released, 0u);  // resident: the pool keeps them warm
    EXPECT_EQ(ps.warm_retained_chunks, 1u);
    EXPECT_EQ(ps.warm_retained_bytes, kChunk);

    // The pool's next arena takes that chunk before any other, warm.
    arena_t *b = MakeArena(kChunk, 0, false, false, pool, /*adopt=*/true);
    char *p = static_cast<char *>(arena_alloc(b, 64));
    EXPECT_EQ(ChunkOf(p), ChunkOf(survivor));
    EXPECT_EQ(p, blocks[0]);
    EXPECT_EQ(Stats(b).chunks_adopted, 1u);
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_retained_chunks, 0u);
    EXPECT_EQ(ps.retained_hits, 1u);
    arena_free(p);
    arena_release(b);  // retained again (the survivor), warm again
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_retained_chunks, 1u);

    // trim hands the free pages back; the chunk stays retained for the survivor.
    uint64_t released_before = Global().bytes_pages_released;
    arena_pool_trim(pool, 0);
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_retained_chunks, 0u);
    EXPECT_EQ(Global().bytes_pages_released - released_before, kChunk - kPage);
    EXPECT_STREQ(survivor, "kept");
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);
    arena_free(survivor);
    EXPECT_FALSE(arena_owns(survivor));
    EXPECT_EQ(ListProblem(), "");
    arena_destroy(a);
    arena_destroy(b);
}

TEST(ArenaPool, AWarmRetainedChunkGoesBackToThePoolWithItsLastBlock) {
    // Survivors that die soon after their arena's release (a task scope's
    // future that the event loop drops a moment later) must not cost the
    // pool its chunk: before, the last free unmapped it, and a pool behind
    // many such exits mapped fresh chunks for nearly every arena.
    arena_pool_config_t pc = {kChunk, 4 * kChunk, false};
    arena_pool_t *pool = nullptr;
    ASSERT_EQ(arena_pool_create(&pc, &pool), ARENA_OK);
    arena_t *a = MakeArena(kChunk, 0, false, false, pool);
    std::vector<char *> survivors = LeaveSurvivors(a, {2, 9}, "kept");
    arena_release(a);
    arena_pool_stats_t ps;
    arena_pool_get_stats(pool, &ps);
    ASSERT_EQ(ps.warm_retained_chunks, 1u);
    uint64_t released = Global().bytes_pages_released, mapped = Global().bytes_mapped;
    uint64_t retained = Global().chunks_retained;

    arena_free(survivors[0]);  // its page empties: it stays resident (the pool counts the chunk whole)
    EXPECT_EQ(Global().bytes_pages_released, released);
    arena_free(survivors[1]);  // the last block: parked, not unmapped
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.parked_emptied, 1u);
    EXPECT_EQ(ps.warm_chunks, 1u);
    EXPECT_EQ(ps.warm_bytes, kChunk);
    EXPECT_EQ(ps.warm_retained_chunks, 0u);
    EXPECT_EQ(Global().bytes_mapped, mapped);
    EXPECT_EQ(Global().chunks_retained, retained - 1);
    EXPECT_FALSE(arena_owns(survivors[1]));  // a parked chunk owns no block
    EXPECT_EQ(ListProblem(), "");

    // The pool's next arena takes it: no fresh mapping.
    uint64_t mapped_total = Global().chunks_mapped_total;
    arena_t *b = MakeArena(kChunk, 0, false, false, pool);
    char *p = static_cast<char *>(arena_alloc(b, 64));
    EXPECT_EQ(ChunkOf(p), ChunkOf(survivors[1]));
    EXPECT_EQ(Global().chunks_mapped_total, mapped_total);
    arena_free(p);
    arena_release(b);
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);
    EXPECT_EQ(Global().bytes_mapped, mapped - kChunk);
    arena_destroy(a);
    arena_destroy(b);
}

TEST(ArenaPool, ARetainedChunkOffTheWarmListIsUnmappedWithItsLastBlock) {
    // The budget had no room to keep its pages: its last free unmaps it as before.
    arena_pool_config_t pc = {kChunk, kChunk, false};
    arena_pool_t *pool = nullptr;
    ASSERT_EQ(arena_pool_create(&pc, &pool), ARENA_OK);
    arena_t *a = MakeArena(kChunk, 0, false, false, pool);
    std::vector<char *> survivors = LeaveSurvivors(a, {3}, "kept");
    arena_t *filler = MakeArena(kChunk, 0, false, false, pool);
    arena_free(arena_alloc(filler, 64));
    arena_release(filler);  // parked: the budget is full
    arena_release(a);
    arena_pool_stats_t ps;
    arena_pool_get_stats(pool, &ps);
    ASSERT_EQ(ps.warm_retained_chunks, 0u);
    uint64_t mapped = Global().bytes_mapped;
    arena_free(survivors[0]);
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.parked_emptied, 0u);
    EXPECT_EQ(Global().bytes_mapped, mapped - kChunk);
    EXPECT_EQ(ListProblem(), "");
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);
    arena_destroy(filler);
    arena_destroy(a);
}

// A task scope's arena: a small (kChunk) first chunk, then the pool's.
arena_t *MakeSmallFirstArena(arena_pool_t *pool) { return MakeArena(kChunk, 0, false, false, pool, false, kChunk); }

TEST(ArenaPool, ASmallFirstChunkLeavesThePoolsWholeChunksToOthers) {
    // A task scope's arena (a small first chunk) that makes little and
    // waits must not hold one of the pool's whole, resident chunks: a
    // thousand tasks waiting on a semaphore drained a Pool before.
    constexpr size_t kWhole = 4 * kChunk;
    arena_pool_config_t pc = {kWhole, 8 * kWhole, false};
    arena_pool_t *pool = nullptr;
    ASSERT_EQ(arena_pool_create(&pc, &pool), ARENA_OK);
    arena_t *w = MakeArena(kWhole, 0, false, false, pool);
    arena_free(arena_alloc(w, 64));
    arena_release(w);
    arena_pool_stats_t ps;
    arena_pool_get_stats(pool, &ps);
    ASSERT_EQ(ps.warm_chunks, 1u);

    arena_t *t = MakeSmallFirstArena(pool);
    void *p = arena_alloc(t, 100);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(Stats(t).bytes_mapped, kChunk);  // a small chunk of its own
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_chunks, 1u);             // the whole one still there
    arena_free(p);
    arena_release(t);                           // its small chunk is parked too
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_chunks, 2u);
    EXPECT_EQ(ps.warm_bytes, kWhole + kChunk);

    uint64_t mapped_total = Global().chunks_mapped_total, hits = ps.hits;
    arena_t *u = MakeSmallFirstArena(pool);
    void *q = arena_alloc(u, 100);
    EXPECT_EQ(ChunkOf(q), ChunkOf(p));         // the warm small chunk
    EXPECT_EQ(Global().chunks_mapped_total, mapped_total);
    // Its second chunk is the pool's whole one.
    std::vector<void *> more;
    while (Stats(u).bytes_mapped == kChunk) more.push_back(arena_alloc(u, 1000));
    EXPECT_EQ(Stats(u).bytes_mapped, kChunk + kWhole);
    EXPECT_EQ(Global().chunks_mapped_total, mapped_total);
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.hits, hits + 2);
    EXPECT_EQ(ps.warm_chunks, 0u);
    for (void *m : more) arena_free(m);
    arena_free(q);
    arena_release(u);
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);
    arena_destroy(w);
    arena_destroy(t);
    arena_destroy(u);
}

TEST(ArenaPool, ASmallFirstChunkWithASurvivorKeepsItsPagesForThePool) {
    // A task scope's first chunk that a survivor keeps stays resident for
    // the pool's next first chunk (adopted warm), and goes back to the pool
    // with its last block, as a whole chunk does. Before, its free pages
    // were handed back and the next task faulted them in again (3.11.7:
    // 106,539 faults for 2,000 requests against 34,755).
    constexpr size_t kWhole = 4 * kChunk;
    arena_pool_config_t pc = {kWhole, 8 * kWhole, false};
    arena_pool_t *pool = nullptr;
    ASSERT_EQ(arena_pool_create(&pc, &pool), ARENA_OK);
    arena_t *t = MakeSmallFirstArena(pool);
    std::vector<char *> survivors = LeaveSurvivors(t, {5}, "kept");
    ASSERT_EQ(Stats(t).bytes_mapped, kChunk);
    arena_release(t);
    arena_pool_stats_t ps;
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_retained_chunks, 1u);
    EXPECT_EQ(ps.warm_retained_bytes, kChunk);
    EXPECT_EQ(Stats(t).bytes_pages_released, 0u);
    arena_free(survivors[0]);
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.parked_emptied, 1u);
    EXPECT_EQ(ps.warm_chunks, 1u);
    EXPECT_EQ(ps.warm_bytes, kChunk);
    EXPECT_EQ(ListProblem(), "");
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);
    arena_destroy(t);
}

TEST(ArenaPool, ParkedAndWarmRetainedChunksShareOneBudget) {
    // max_warm_bytes bounds both: before, parking looked at the parked
    // bytes alone, and a pool behind task scopes held 503 MiB warm with a
    // 256 MiB budget (bench/task_scopes_long_run.py, 3.14.10).
    arena_pool_config_t pc = {kChunk, 2 * kChunk, false};
    arena_pool_t *pool = nullptr;
    ASSERT_EQ(arena_pool_create(&pc, &pool), ARENA_OK);
    arena_t *a = MakeArena(kChunk, 0, false, false, pool);
    std::vector<char *> survivors = LeaveSurvivors(a, {1}, "kept");
    arena_t *b = MakeArena(kChunk, 0, false, false, pool);
    std::vector<void *> blocks;
    while (Stats(b).chunks_mapped < 2) blocks.push_back(arena_alloc(b, 1000));
    for (void *p : blocks) arena_free(p);
    arena_release(a);  // warm retained: one chunk of the budget
    arena_release(b);  // two empty chunks: room for one
    arena_pool_stats_t ps;
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_retained_bytes, kChunk);
    EXPECT_EQ(ps.warm_chunks, 1u);
    EXPECT_EQ(ps.warm_bytes + ps.warm_retained_bytes, 2 * kChunk);
    arena_free(survivors[0]);  // counted already: parked in its own place in the budget
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_chunks, 2u);
    EXPECT_EQ(ps.parked_emptied, 1u);
    EXPECT_EQ(ps.warm_bytes + ps.warm_retained_bytes, 2 * kChunk);
    EXPECT_EQ(ListProblem(), "");
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);
    arena_destroy(a);
    arena_destroy(b);
}

TEST(ArenaPool, SmallChunksNeverCrowdOutAWholeOne) {
    // A pool whose budget is one whole chunk (the default pool's) parks no
    // small chunk: the whole chunk it keeps is worth more.
    constexpr size_t kWhole = 4 * kChunk;
    arena_pool_config_t pc = {kWhole, kWhole, false};
    arena_pool_t *pool = nullptr;
    ASSERT_EQ(arena_pool_create(&pc, &pool), ARENA_OK);
    arena_t *t = MakeSmallFirstArena(pool);
    arena_free(arena_alloc(t, 100));
    uint64_t mapped = Global().bytes_mapped;
    arena_release(t);
    arena_pool_stats_t ps;
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_chunks, 0u);
    EXPECT_EQ(Global().bytes_mapped, mapped - kChunk);
    arena_t *w = MakeArena(kWhole, 0, false, false, pool);
    arena_free(arena_alloc(w, 64));
    arena_release(w);
    arena_pool_get_stats(pool, &ps);
    EXPECT_EQ(ps.warm_chunks, 1u);
    EXPECT_EQ(arena_pool_destroy(pool), ARENA_OK);
    arena_destroy(t);
    arena_destroy(w);
}

// ---- adoption: later arenas allocate around earlier arenas' survivors ----



constexpr size_t kLine = 128;  // ARENA_LINE_SHIFT 7 (arena/region.h)
size_t LineOf(const void *p) { return (reinterpret_cast<uintptr_t>(p) & (kChunk - 1)) / kLine; }

TEST(ArenaAdopt, AllocatesAroundSurvivorsInARetainedChunk) {
    arena_t *a = MakeArena(kChunk);  // a fresh chunk (no leftovers of earlier tests)
    // One 64-byte survivor in pages 4 and 9, at byte 320 of the page: it
    // touches the page's third line only.
    std::vector<char *> survivors = LeaveSurvivors(a, {4, 9}, "survivor");
    arena_release(a);
    ASSERT_EQ(Stats(a).chunks_retained, 1u);
    ASSERT_EQ(Stats(a).bytes_pages_released, 14 * kPage);
    uint64_t mapped_total = Global().chunks_mapped_total;
    uint64_t retained = Global().chunks_retained;

    arena_t *b = MakeArena(kChunk, 0, false, false, nullptr, /*adopt=*/true);
    std::vector<char *> mine;
    const size_t free_lines = kChunk / kLine - 2;
    for (size_t i = 0; i < free_lines * (kLine / 64); i++) {  // every free line, exactly
        char *p = static_cast<char *>(arena_alloc(b, 64));
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(ChunkOf(p), ChunkOf(survivors[0])) << i;
        ASSERT_NE(LineOf(p), LineOf(survivors[0]));
        ASSERT_NE(LineOf(p), LineOf(survivors[1]));
        if (!mine.empty()) {
            ASSERT_GT(p, mine.back());  // spans in address order, no block twice
        }
        memset(p, 0xEE, 64);
        mine.push_back(p);
    }
    // The survivors' pages were refilled around them, down to the line:
    // the two lines before the survivor's, then the line after it.
    EXPECT_EQ(PageOf(mine[4 * (kPage / 64)]), 4u);
    EXPECT_EQ(mine[4 * (kPage / 64)], survivors[0] - 320);
    EXPECT_EQ(mine[4 * (kPage / 64) + 3], survivors[0] - 128);
    EXPECT_EQ(mine[4 * (kPage / 64) + 4], survivors[0] + 64);
    EXPECT_EQ(Stats(b).chunks_adopted, 1u);
    EXPECT_EQ(Stats(b).bytes_adopted, free_lines * kLine);
    EXPECT_EQ(Global().chunks_mapped_total, mapped_total);  // no fresh chunk
    EXPECT_EQ(Global().chunks_retained, retained - 1);      // it is b's now
    EXPECT_STREQ(survivors[0], "survivor");
    EXPECT_STREQ(survivors[1], "survivor");
    EXPECT_EQ(arena_block_arena_id(survivors[0]), arena_id(a));
    EXPECT_EQ(arena_block_arena_id(mine[0]), arena_id(b));
    EXPECT_EQ(arena_block_arena_id(mine[4 * (kPage / 64)]), arena_id(b));  // in a survivor's page
    // A survivor's size is exact (the next block start), whoever asks.
    EXPECT_EQ(arena_block_readable_size(survivors[0]), 64u);

    // The chunk is full: the next block is a fresh chunk's.
    char *fresh = static_cast<char *>(arena_alloc(b, 64));
    EXPECT_NE(ChunkOf(fresh), ChunkOf(survivors[0]));
    arena_free(fresh);

    char *moved = static_cast<char *>(arena_realloc(b, survivors[0], 3000));
    ASSERT_NE(moved, nullptr);
    EXPECT_STREQ(moved, "survivor");
    EXPECT_EQ(arena_block_arena_id(moved), arena_id(b));

    // b's escapes are its own blocks only; the earlier survivor left is a's.
    for (size_t i = 1; i < mine.size(); i++) arena_free(mine[i]);
    arena_release(b);
    EXPECT_EQ(Stats(b).live_blocks_at_release, 2u);  // mine[0] and moved
    EXPECT_EQ(Stats(b).chunks_retained, 2u);         // the adopted chunk (mine[0]) and moved's
    EXPECT_STREQ(survivors[1], "survivor");
    EXPECT_STREQ(moved, "survivor");
    EXPECT_EQ(arena_block_arena_id(survivors[1]), arena_id(a));  // still, after b's release
    EXPECT_EQ(arena_block_arena_id(mine[0]), arena_id(b));
    arena_free(mine[0]);
    arena_free(moved);
    EXPECT_TRUE(arena_owns(survivors[1]));
    EXPECT_STREQ(survivors[1], "survivor");
    arena_free(survivors[1]);
    EXPECT_FALSE(arena_owns(survivors[1]));  // its last block: the chunk is gone
    EXPECT_EQ(ListProblem(), "");
    arena_destroy(a);
    arena_destroy(b);
}

// Issue 21: a release's sieve (counting the live blocks of the chunks it
// held, finding the pages to hand back) reads side tables in proportion to
// the pages, however many blocks the phase made: an adopted chunk filled
// with 16-byte blocks (eight a line, about 4,000 here) costs what one of
// 1 KiB blocks costs. Its escape count stays exact with an earlier
// survivor freed during the phase.
TEST(ArenaAdopt, ReleaseSievesByPagesNotBlocks) {
    constexpr size_t kPages = kChunk / kPage;
    for (size_t block : {16u, 1024u}) {
        arena_t *a = MakeArena(kChunk);  // a fresh chunk (no leftovers of earlier tests)
        std::vector<char *> survivors = LeaveSurvivors(a, {4, 9}, "survivor");
        arena_release(a);
        ASSERT_EQ(Stats(a).chunks_retained, 1u);
        arena_t *b = MakeArena(kChunk, 0, false, false, nullptr, /*adopt=*/true);
        std::vector<char *> mine, kept;
        for (;;) {
            char *p = static_cast<char *>(arena_alloc(b, block));
            ASSERT_NE(p, nullptr);
            if (ChunkOf(p) != ChunkOf(survivors[0])) {  // the adopted chunk is full
                arena_free(p);
                break;
            }
            memset(p, 0xEE, block);
            mine.push_back(p);
        }
        // (The block that did not fit may have gone to another retained
        // chunk, left by earlier tests, or a fresh one: each costs its pages.)
        const uint64_t chunks_held = Stats(b).chunks_adopted + Stats(b).chunks_mapped;
        ASSERT_GT(mine.size(), (kChunk / block) / 2);
        for (size_t i = 0; i < mine.size(); i++) {
            if (i % 500 == 7)
                kept.push_back(mine[i]);
            else
                arena_free(mine[i]);
        }
        arena_free(survivors[0]);  // an earlier phase's survivor, freed during b's phase
        unsigned long long reads = arena_testing_sieve_reads();
        arena_release(b);
        reads = arena_testing_sieve_reads() - reads;
        // Two reads a page (the live count, the hand-back walk), and slack.
        EXPECT_LE(reads, 3 * kPages * chunks_held) << block << "-byte blocks: " << mine.size();
        EXPECT_EQ(Stats(b).live_blocks_at_release, kept.size()) << block;  // b's own, not a's survivor
        EXPECT_STREQ(survivors[1], "survivor");
        EXPECT_EQ(arena_block_arena_id(survivors[1]), arena_id(a));
        for (char *p : kept) {
            EXPECT_EQ(static_cast<unsigned char>(p[block - 1]), 0xEE);
            EXPECT_EQ(arena_block_arena_id(p), arena_id(b));
            arena_free(p);
        }
        EXPECT_TRUE(arena_owns(survivors[1]));
        arena_free(survivors[1]);
        EXPECT_FALSE(arena_owns(survivors[1]));  // its last block: the chunk is gone
        EXPECT_EQ(ListProblem(), "");
        arena_destroy(a);
        arena_destroy(b);
    }
}

TEST(ArenaAdopt, ReuseModeKnowsWhereASpanEnds) {
    arena_t *a = MakeArena(kChunk);  // a fresh chunk (no leftovers of earlier tests)
    std::vector<char *> survivors = LeaveSurvivors(a, {4}, "pinned");
    arena_release(a);
    arena_t *b = MakeArena(kChunk, 0, false, /*reuse=*/true, nullptr, /*adopt=*/true);
    std::vector<char *> mine;
    const size_t before = (4 * kPage + 256) / 64;  // the blocks before the survivor's line (bytes 256-383 of page 4)
    for (size_t i = 0; i < before + 1; i++) mine.push_back(static_cast<char *>(arena_alloc(b, 64)));
    ASSERT_EQ(Stats(b).chunks_adopted, 1u);
    char *last_of_span = mine[before - 1];
    ASSERT_EQ(last_of_span, survivors[0] - 320 + 192);
    ASSERT_EQ(mine.back(), survivors[0] + 64);  // the next span: the line after the survivor's
    // The block before the survivor's line is 64 bytes, not "up to the next
    // live block"...
    EXPECT_EQ(arena_block_readable_size(last_of_span), 64u);
    // ...so its free puts it on the 64-byte list and the next 64-byte
    // request gets it back.
    arena_free(last_of_span);
    EXPECT_EQ(arena_alloc(b, 64), last_of_span);
    // The last block before the bump pointer is exact too.
    EXPECT_EQ(arena_block_readable_size(mine.back()), 64u);
    EXPECT_STREQ(survivors[0], "pinned");
    arena_destroy(b);
    for (char *p : mine) (void)p;  // all b's: retained with b's chunk, never freed here
    arena_free(survivors[0]);
    arena_destroy(a);
}

TEST(ArenaAdopt, PhasesThatEachKeepABlockStopMappingFreshChunks) {
    uint64_t mapped[2];
    for (bool adopt : {false, true}) {
        uint64_t before = Global().chunks_mapped_total;
        std::vector<char *> kept;
        for (int phase = 0; phase < 64; phase++) {
            arena_t *x = MakeArena(kChunk, 0, false, false, nullptr, adopt);
            std::vector<char *> blocks;
            for (int i = 0; i < 100; i++) blocks.push_back(static_cast<char *>(arena_alloc(x, 64)));
            for (int i = 0; i < 100; i++)
                if (i != 50) arena_free(blocks[i]);
            snprintf(blocks[50], 64, "phase %d", phase);
            kept.push_back(blocks[50]);
            arena_destroy(x);
        }
        mapped[adopt] = Global().chunks_mapped_total - before;
        for (int phase = 0; phase < 64; phase++) {
            char expect[64];
            snprintf(expect, sizeof expect, "phase %d", phase);
            EXPECT_STREQ(kept[phase], expect);
            arena_free(kept[phase]);
        }
    }
    EXPECT_EQ(mapped[false], 64u);  // one chunk per phase, each pinned by one block
    EXPECT_LE(mapped[true], 16u);   // the survivors share chunks
}

TEST(ArenaAdopt, AChunkWithoutAFreeLineIsLeftUntilAFreeMakesOne) {
    // A survivor in every line: nothing to reuse, a fresh chunk.
    arena_t *a = MakeArena(kChunk);
    std::vector<char *> blocks, survivors;
    for (size_t i = 0; i < kChunk / 64; i++) blocks.push_back(static_cast<char *>(arena_alloc(a, 64)));
    for (size_t i = 0; i < blocks.size(); i++) {
        if (i % (kLine / 64) == kLine / 64 - 1) {  // the last block of each line
            snprintf(blocks[i], 64, "line %zu", i / (kLine / 64));
            survivors.push_back(blocks[i]);
        } else {
            arena_free(blocks[i]);
        }
    }
    arena_release(a);
    EXPECT_EQ(Stats(a).bytes_pages_released, 0u);
    arena_t *b = MakeArena(kChunk, 0, false, false, nullptr, /*adopt=*/true);
    char *p = static_cast<char *>(arena_alloc(b, 64));
    EXPECT_NE(ChunkOf(p), ChunkOf(survivors[0]));
    arena_destroy(b);
    // Two neighbouring lines lose their survivors: the next arena takes them.
    arena_free(survivors[10]);
    arena_free(survivors[11]);
    arena_t *c = MakeArena(kChunk, 0, false, false, nullptr, /*adopt=*/true);
    std::vector<char *> mine;
    for (size_t i = 0; i < 2 * kLine / 64; i++) {
        mine.push_back(static_cast<char *>(arena_alloc(c, 64)));
        ASSERT_EQ(ChunkOf(mine.back()), ChunkOf(survivors[0])) << i;
        memset(mine.back(), 0xAB, 64);
    }
    EXPECT_EQ(LineOf(mine.front()), 10u);
    EXPECT_EQ(LineOf(mine.back()), 11u);
    EXPECT_EQ(Stats(c).chunks_adopted, 1u);
    for (size_t i = 0; i < survivors.size(); i++) {
        if (i == 10 || i == 11) continue;
        char expect[64];
        snprintf(expect, sizeof expect, "line %zu", i);
        EXPECT_STREQ(survivors[i], expect);
    }
    for (char *m : mine) arena_free(m);
    arena_destroy(c);
    for (size_t i = 0; i < survivors.size(); i++)
        if (i != 10 && i != 11) arena_free(survivors[i]);
    arena_free(p);
    EXPECT_EQ(ListProblem(), "");
    arena_destroy(a);
}

// Many phases, each keeping a few blocks of random sizes and dropping some
// kept earlier (a bounded cache): every survivor's contents stay intact
// through heavy reuse of its chunk, and the chunks mapped stay bounded by
// what is live instead of growing with the phases.
TEST(ArenaAdopt, ABoundedCacheOfSurvivorsKeepsItsChunksBounded) {
    struct Kept { unsigned char *p; size_t size; unsigned char fill; };
    std::vector<Kept> cache;
    uint64_t seed = 12345;
    auto next = [&seed]() { seed = seed * 6364136223846793005ull + 1442695040888963407ull; return seed >> 33; };
    uint64_t live_before = Global().chunks_live;
    uint64_t max_live = 0;
    for (int phase = 0; phase < 2000; phase++) {
        arena_t *x = MakeArena(kChunk, 0, false, /*reuse=*/phase % 2 == 0, nullptr, /*adopt=*/true);
        for (int i = 0; i < 400; i++) {
            size_t size = 16 + next() % 300;
            auto *p = static_cast<unsigned char *>(arena_alloc(x, size));
            ASSERT_NE(p, nullptr);
            unsigned char fill = static_cast<unsigned char>(next());
            memset(p, fill, size);
            if (next() % 100 == 0)
                cache.push_back({p, size, fill});
            else
                arena_free(p);
        }
        arena_destroy(x);
        while (cache.size() > 200) {  // the oldest go
            Kept k = cache.front();
            for (size_t b = 0; b < k.size; b++) ASSERT_EQ(k.p[b], k.fill) << "phase " << phase;
            arena_free(k.p);
            cache.erase(cache.begin());
        }
        uint64_t live = Global().chunks_live - live_before;
        if (live > max_live) max_live = live;
    }
    for (const Kept &k : cache) {
        for (size_t b = 0; b < k.size; b++) ASSERT_EQ(k.p[b], k.fill);
        arena_free(k.p);
    }
    // 200 live survivors of up to ~316 bytes touch at most ~800 lines of
    // 128 bytes (under 2 chunks of 512): 3 chunks at most were live here.
    // With page-granular adoption (runs of 4 free pages or more) it was 22.
    EXPECT_LE(max_live, 8u);
    EXPECT_EQ(ListProblem(), "");
}

}  // namespace
