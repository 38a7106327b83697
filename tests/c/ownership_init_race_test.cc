// The ownership checks (arena_owns, arena_owner_of, arena_in_region,
// arena_block_arena_id) from a thread that is descheduled in the middle of
// one while another thread makes the region and its first chunk.
//
// The library here is built with a probe between the two loads of every
// ownership check (//arena:arena_ownership_probe): the reader parks there,
// the main thread makes the region and allocates, then the reader goes on.
// A check must answer as if it ran wholly before or wholly after: NULL is
// never owned. (The CI run of stop 27, ASan under load: a reader that loaded the
// base (0) before the region existed and the size after asked the chunk in
// slot 0 about NULL, and read its line owner 2^64 - base bytes away.)
//
// Each check runs in a fresh forked child: the region is made once per
// process, and the park must come before it.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include "arena/arena.h"

namespace {

thread_local bool park_here = false;
std::atomic<int> parked{0};
std::atomic<bool> go{false};

}  // namespace

extern "C" void arena_testing_between_ownership_loads(void) {
    if (!park_here) return;
    park_here = false;  // once per reader
    parked.store(1);
    while (!go.load()) std::this_thread::yield();
}

namespace {

enum class Check { kOwns, kOwnerOf, kInRegion, kBlockArenaId };

// In a child: park a reader in `check` of NULL, make the region and a block
// in its first chunk, let the reader finish. Exit code 0 when NULL was not
// owned, 1 when it was, 2 on a setup failure.
int ChildRun(Check check) {
    if (arena_region_configure((size_t)1 << 30) != ARENA_OK) return 2;
    std::atomic<int> answer{-1};
    std::thread reader([&] {
        park_here = true;
        const void *null_ptr = nullptr;
        bool owned = false;
        switch (check) {
            case Check::kOwns: owned = arena_owns(null_ptr); break;
            case Check::kOwnerOf: owned = arena_owner_of(null_ptr) != nullptr; break;
            case Check::kInRegion: owned = arena_in_region(null_ptr); break;
            case Check::kBlockArenaId: owned = arena_block_arena_id(null_ptr) != 0; break;
        }
        answer.store(owned ? 1 : 0);
    });
    while (!parked.load()) std::this_thread::yield();
    arena_config_t config;
    arena_config_init(&config);
    arena_t *a = nullptr;
    if (arena_create(&config, &a) != ARENA_OK) return 2;
    void *p = arena_alloc(a, 64);
    if (!p || !arena_owns(p)) return 2;
    // The region's first chunk is in slot 0: the one a stale base of 0 finds.
    if (arena_owner_of(p) != arena_ownership.slot_owner[0]) return 2;
    go.store(true);
    reader.join();
    return answer.load();
}

int RunInChild(Check check) {
    pid_t pid = fork();
    if (pid == 0) _exit(ChildRun(check));
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    if (WIFSIGNALED(status)) return 100 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

TEST(OwnershipInitRace, NullIsNotOwnedByAReaderParkedWhileTheRegionIsMade) {
    EXPECT_EQ(RunInChild(Check::kOwns), 0) << "arena_owns";
    EXPECT_EQ(RunInChild(Check::kOwnerOf), 0) << "arena_owner_of";
    EXPECT_EQ(RunInChild(Check::kInRegion), 0) << "arena_in_region";
    EXPECT_EQ(RunInChild(Check::kBlockArenaId), 0) << "arena_block_arena_id";
}

}  // namespace
