// libFuzzer target for objarena's CPython hook and scopes (pyext/hook.h,
// pyext/scope.h), driven through the C API of an embedded interpreter.
//
// Each input is decoded into a sequence of operations on one thread (the
// interpreter's main thread, GIL held throughout):
//   - scopes: make one (limit, chunk size, pool, poison, reuse, capture_mem,
//     adopt, huge pages, collect mode, strict; valid and invalid options),
//     enter it, exit it innermost-first or out of order, exit or enter it a
//     second time, free it while active;
//   - pauses: enter, exit (in and out of order), twice;
//   - blocks: PyObject_Malloc/Calloc/Realloc/Free and PyMem_Malloc/Calloc/
//     Realloc/Free of sizes from 0 to 3 MiB, bulk allocations and frees, of
//     arena blocks and of foreign ones (made outside scopes or in a pause),
//     freed and reallocated inside other scopes or after their scope exited;
//   - Python: small snippets run in whatever scope or pause is innermost
//     (temporaries, objects kept in a global list past their scope's exit
//     and dropped later, reference cycles, big bytearrays, compiled
//     functions), PyGC_Collect, objarena_collect_caches, tracemalloc
//     start/stop (guarded as the objarena package guards it);
//   - pools of warm chunks (create, trim; the default pool's trim), and
//     "refuse the Nth chunk commit" (the hook then falls back to the saved
//     allocator).
// After every step the hook is checked against a model of what its contract
// promises:
//   - every live block keeps its contents (a position-dependent pattern);
//     an arena block stays owned, reports the arena that made it (the scope
//     that was capturing, or for a realloc in place the original's), and is
//     readable for its size; a foreign block is never owned;
//   - an allocation is captured exactly when the innermost frame is a scope
//     (PYMEM_DOMAIN_MEM: one with capture_mem, up to 512 bytes); NULL only
//     under the innermost scope's byte limit (counted in its limit_hits); a
//     foreign block inside a scope only after an injected commit failure
//     (counted in alloc_fallbacks) or in the grace window a limit's refusal
//     opens (counted in limit_grace_allocs); realloc of an arena block
//     outside capture moves it out, and a failed realloc leaves the block
//     intact;
//   - the thread's stack (objarena_thread_top/capture, frame states) is the
//     model's; out-of-order and repeated exits and enters fail with
//     RuntimeError and leave the stack as scope.h documents, an invalid
//     option fails with ValueError (either may be a MemoryError where a
//     limited scope captures: the exception object could not be made);
//     while a scope is active the full face is installed; each open arena
//     stays within its effective limit;
//   - a scope whose arena no Python code ran into ("clean") has exactly the
//     model's live blocks (arena_live_blocks), at every step and at release;
//   - arenas_live counts the active scopes; the region's lists pass
//     arena_testing_check_lists();
//   - each snippet computes what it should, and a limited scope's snippet
//     may only fail with MemoryError.
// Poison is on for a scope when its input asks, and for the one-step default
// scope (op 19), so a block freed or unmapped while still in use faults at
// once.
//
// Process-wide state between inputs: the hook stays installed (by design),
// installed once in LLVMFuzzerInitialize (both domains), so every input
// starts from the same chain. At the end of an input tracemalloc is stopped,
// every frame exited innermost first, every block freed, every scope and
// pool freed, the Python objects the input kept are dropped,
// objarena_collect_caches() runs and the default pool is trimmed; then no
// arena is live, no pool chunk is warm, and (for an input that ran no
// Python code in a scope) no more blocks are retained than at its start.
// Poisoned chunks are quarantined forever, so once the quarantine passes
// 32 GiB (or half of the region) poison requests are ignored (QuarantineCap
// says why not arena_fuzzer.cc's 8 GiB); and retained memory of Python's own
// survivors (caches, a dict's key table that grew in a scope) must stay
// below 1 GiB over the whole run, or the run fails.
//
// Built by tools/fuzz hook (clang, -fsanitize=fuzzer,address,undefined,
// ARENA_DEBUG=2) against one CPython (OBJARENA_FUZZ_PYTHON, its path).
#include <Python.h>  // first (it includes C++-aware headers)

#include "pyext/collect.h"
#include "pyext/hook.h"
#include "pyext/scope.h"

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

#ifndef OBJARENA_FUZZ_PYTHON
#error "OBJARENA_FUZZ_PYTHON (the interpreter's executable) must be defined by tools/fuzz"
#endif

// libpython keeps allocations past any input (interned strings, caches, and
// garbage cycles waiting for a collection) that LeakSanitizer may see as
// leaks; none of them are the hook's. The exit's freelist walk allocates the
// heap copies of arena entries (pyext/freelists.c, rehome()) that CPython
// then hands out as its own objects, so the same objects carry that stack
// instead of libpython's. (The walk's bookkeeping of the copies is checked
// by the freelist layout check: every chain ends after exactly its count.)
extern "C" const char *__lsan_default_suppressions(void) { return "leak:libpython\nleak:rehome\nleak:freelists.c\n"; }

namespace {

constexpr int kScopes = 6;
constexpr int kPauses = 3;
constexpr int kPools = 2;
constexpr size_t kMaxLive = 256;
constexpr size_t kMaxLiveBytes = 48u << 20;
constexpr int kMaxOps = 300;
constexpr size_t kMemCaptureMax = 512;  // hook.c's OBJARENA_MEM_CAPTURE_MAX
constexpr uint64_t kRetainedCap = uint64_t{1} << 30;

[[noreturn]] void Fail(const char *what, const void *p = nullptr, uint64_t a = 0, uint64_t b = 0) {
    fprintf(stderr, "hook_fuzzer: CONTRACT VIOLATION: %s (ptr %p, %llu vs %llu)\n", what, p, (unsigned long long)a,
            (unsigned long long)b);
    if (PyErr_Occurred()) PyErr_Print();
    abort();
}

#define CHECK(cond, ...)                         \
    do {                                         \
        if (!(cond)) Fail(#cond, ##__VA_ARGS__); \
    } while (0)

bool trace = false;

// Fill() and Matches(): tests/fuzz/fill_pattern.h.

enum Domain { kObj = 0, kMem = 1 };

struct Block {
    size_t size;
    uint64_t seed;
    Domain domain;
    uint64_t origin;  // arena id of the arena that made it; 0: foreign
};

enum class State { kNone, kNew, kActive, kExited };

struct ScopeSlot {
    objarena_scope_t *s = nullptr;
    State state = State::kNone;
    bool touched = false;  // Python code may have allocated into (or freed from) its arena
    int pool = -1;
};

struct PauseSlot {
    objarena_frame_t *f = nullptr;  // calloc'd, state FRAME_NEW/ACTIVE/EXITED
};

struct PoolSlot {
    arena_pool_t *pool = nullptr;
    size_t chunk_size = 0, max_warm = 0;
};

struct Model {
    ScopeSlot scopes[kScopes];
    PauseSlot pauses[kPauses];
    PoolSlot pools[kPools];
    std::vector<objarena_frame_t *> stack;  // bottom first: the model of this thread's stack
    std::map<uintptr_t, Block> live;
    size_t live_bytes = 0;
    uint64_t next_seed = 1;
    bool injected = false;    // a commit failure was armed this input
    bool python_ran = false;  // this input ran Python code inside a scope
    bool tracing = false;     // tracemalloc started by this input
    arena_global_stats_t base;
};

bool poison_allowed = true;
PyObject *g_globals;          // the snippets' module dict (strong, never freed)
PyObject *g_tracemalloc_start, *g_tracemalloc_stop;

// Quarantined address space is never reused, and its ASan shadow stays
// resident where the harness touched it. With arena_fuzzer.cc's 8 GiB a
// 10-minute run stopped poisoning after ~8,600 of its 32,000 inputs (peak
// RSS 688 MB, ~30 MB per quarantined GiB): 32 GiB keeps poison on for most
// of such a run and RSS under libFuzzer's 4 GiB limit, and leaves half of
// the default 64 GiB region to live and retained chunks.
uint64_t QuarantineCap(uint64_t reserve) {
    uint64_t cap = uint64_t{32} << 30;
    return reserve / 2 < cap ? reserve / 2 : cap;
}

ScopeSlot *SlotOfFrame(Model &m, const objarena_frame_t *f) {
    for (auto &s : m.scopes)
        if (s.s && &s.s->frame == f) return &s;
    return nullptr;
}

// The scope whose arena a request of `domain` and `size` is captured into
// now, per hook.h: the innermost frame, if it is a scope (MEM: with
// capture_mem, up to 512 bytes).
objarena_scope_t *Capturing(Model &m, Domain domain, size_t size) {
    if (m.stack.empty() || !m.stack.back()->arena) return nullptr;
    auto *s = reinterpret_cast<objarena_scope_t *>(m.stack.back());
    if (domain == kMem && (!s->options.capture_mem || size > kMemCaptureMax)) return nullptr;
    return s;
}

// A limited scope (its own or an enclosing limit) may refuse Python's
// allocations: MemoryError is the only acceptable failure there.
bool UnderLimit(Model &m) {
    objarena_scope_t *cap = Capturing(m, kObj, 0);
    return cap && cap->effective_limit;
}

// Takes the pending exception: true if it is `type`, or MemoryError where a
// limited scope captures (the exception object itself could not be made).
bool TakeError(Model &m, PyObject *type) {
    bool matches = PyErr_Occurred() &&
                   (PyErr_ExceptionMatches(type) || (UnderLimit(m) && PyErr_ExceptionMatches(PyExc_MemoryError)));
    PyErr_Clear();
    return matches;
}

// Python code is about to run or just ran: whatever scope is capturing may
// get (or lose) blocks the model does not know.
void Touch(Model &m) {
    if (m.stack.empty() || !m.stack.back()->arena) return;
    ScopeSlot *slot = SlotOfFrame(m, m.stack.back());
    CHECK(slot != nullptr, m.stack.back());
    slot->touched = true;
    m.python_ran = true;
}


uint64_t HarnessLive(Model &m, uint64_t arena) {
    uint64_t n = 0;
    for (auto &kv : m.live) n += kv.second.origin == arena;
    return n;
}

void CheckBlock(uintptr_t u, const Block &b, bool full) {
    const unsigned char *p = reinterpret_cast<const unsigned char *>(u);
    if (b.origin) {
        CHECK(arena_owns(p), p);
        CHECK(arena_block_arena_id(p) == b.origin, p, arena_block_arena_id(p), b.origin);
        size_t readable = arena_block_readable_size(p);
        CHECK(readable >= b.size, p, readable, b.size);
    } else {
        CHECK(!arena_owns(p), p);
    }
    size_t step = full ? 1 : (b.size / 8 / 64 > 61 ? b.size / 8 / 64 : 61);
    CHECK(Matches(p, b.size, b.seed, step), p, b.size);
}

void CheckAll(Model &m, bool full) {
    for (auto &kv : m.live) CheckBlock(kv.first, kv.second, full);
    // The thread's stack is the model's.
    objarena_frame_t *top = m.stack.empty() ? nullptr : m.stack.back();
    CHECK(objarena_thread_top() == top, objarena_thread_top(), (uint64_t)(uintptr_t)top);
    objarena_frame_t *want_capture = top && top->arena ? top : nullptr;
    CHECK(objarena_thread_capture() == want_capture, objarena_thread_capture());
    for (size_t i = 0; i < m.stack.size(); i++) {
        CHECK(m.stack[i]->state == FRAME_ACTIVE, m.stack[i]);
        CHECK(m.stack[i]->parent == (i ? m.stack[i - 1] : nullptr), m.stack[i]);
    }
    uint64_t active = 0;
    for (auto &slot : m.scopes) {
        if (!slot.s) continue;
        objarena_scope_t *s = slot.s;
        switch (slot.state) {
        case State::kNew: CHECK(s->frame.state == FRAME_NEW && !s->frame.arena, s); break;
        case State::kExited: CHECK(s->frame.state == FRAME_EXITED && !s->frame.arena, s); break;
        case State::kActive: {
            active++;
            CHECK(s->frame.state == FRAME_ACTIVE && s->frame.arena, s);
            CHECK(arena_id(s->frame.arena) == s->arena_id, s);
            arena_stats_t st;
            arena_get_stats(s->frame.arena, &st);
            CHECK(!st.released, s);
            if (s->effective_limit) CHECK(st.peak_mapped <= s->effective_limit, s, st.peak_mapped, s->effective_limit);
            // No Python code ran into it: its live blocks are exactly the
            // model's (a free routed elsewhere, or a block counted twice,
            // shows here).
            uint64_t mine = HarnessLive(m, s->arena_id), blocks = arena_live_blocks(s->frame.arena);
            CHECK(slot.touched || blocks == mine, s, blocks, mine);
            break;
        }
        default: Fail("scope slot state");
        }
    }
    for (auto &p : m.pauses)
        if (p.f) CHECK(p.f->arena == nullptr, p.f);
    objarena_hook_stats_t hs;
    objarena_hook_get_stats(&hs);
    CHECK(hs.installed && hs.mem_installed);
    if (active) CHECK(hs.full_face);
    if (!m.tracing) CHECK(hs.hook_on_top);
    arena_global_stats_t g;
    arena_global_stats(&g);
    CHECK(g.arenas_live == m.base.arenas_live + active, nullptr, g.arenas_live, active);
    for (auto &p : m.pools) {
        if (!p.pool) continue;
        arena_pool_stats_t ps;
        arena_pool_get_stats(p.pool, &ps);
        CHECK(ps.warm_bytes <= p.max_warm, nullptr, ps.warm_bytes, p.max_warm);
    }
    const char *problem = arena_testing_check_lists();
    if (problem) Fail(problem);
    CHECK(!PyErr_Occurred());
}

size_t PickSize(FuzzedDataProvider &in) {
    switch (in.ConsumeIntegral<uint8_t>() % 8) {
    case 0: return 0;
    case 1: case 2: return in.ConsumeIntegralInRange<size_t>(1, 64);
    case 3: return in.ConsumeIntegralInRange<size_t>(65, 512);  // up to MEM capture's bound
    case 4: return in.ConsumeIntegralInRange<size_t>(513, 4096);
    case 5: return in.ConsumeIntegralInRange<size_t>(4097, 64 << 10);
    case 6: return in.ConsumeIntegralInRange<size_t>(64 << 10, 300 << 10);  // large in small chunks
    default: return in.ConsumeIntegralInRange<size_t>(300 << 10, 3 << 20);  // large in every arena
    }
}

std::map<uintptr_t, Block>::iterator PickBlock(Model &m, FuzzedDataProvider &in) {
    if (m.live.empty()) return m.live.end();
    size_t k = in.ConsumeIntegral<uint8_t>() % m.live.size();
    auto it = m.live.begin();
    std::advance(it, k);
    return it;
}

void AddBlock(Model &m, unsigned char *p, size_t size, Domain d, uint64_t origin) {
    uintptr_t u = reinterpret_cast<uintptr_t>(p);
    CHECK(u % 16 == 0 || !origin, p);
    size_t span = size ? size : 1;
    auto next = m.live.lower_bound(u);
    CHECK(next == m.live.end() || next->first >= u + span, p, next->first);
    if (next != m.live.begin()) {
        auto prev = std::prev(next);
        CHECK(prev->first + (prev->second.size ? prev->second.size : 1) <= u, p, prev->first);
    }
    uint64_t seed = m.next_seed++;
    Fill(p, size, seed);
    m.live[u] = Block{size, seed, d, origin};
    m.live_bytes += size;
}

// The innermost frame, if it is a scope: the one whose limit a refusal
// counts against.
objarena_scope_t *Innermost(Model &m) { return Capturing(m, kObj, 0); }

// The innermost scope's counters before a request: what the request may
// move; and every scope's refusals on the stack (a realloc's growth is
// checked against the limit of the scope that owns the block's charge).
struct Counters {
    uint64_t limit_hits = 0, grace_allocs = 0, fallbacks = 0;
    std::vector<std::pair<objarena_scope_t *, uint64_t>> stack_hits;
};
Counters Before(Model &m) {
    Counters c;
    if (objarena_scope_t *top = Innermost(m)) {
        c.limit_hits = top->frame.limit_hits;
        c.grace_allocs = top->frame.limit_grace_allocs;
        c.fallbacks = top->frame.alloc_fallbacks;
    }
    for (objarena_frame_t *f : m.stack)
        if (f->arena) c.stack_hits.emplace_back(reinterpret_cast<objarena_scope_t *>(f), f->limit_hits);
    return c;
}

// A NULL from the hook: only the innermost scope's byte limit refuses, and
// the refusal is counted there.
void CheckRefused(Model &m, const void *p, const Counters &before) {
    objarena_scope_t *top = Innermost(m);
    CHECK(top && top->effective_limit, p);
    CHECK(top->frame.limit_hits == before.limit_hits + 1, p, top->frame.limit_hits, before.limit_hits);
}

// A NULL from a realloc of a live block: refused by the limit of one scope
// on the stack, the innermost or the one that owns the block's charge
// (hook.c, charged_realloc: a charge stays with its owner, issue 24), and
// counted there alone.
void CheckReallocRefused(const void *p, const Counters &before) {
    uint64_t counted = 0;
    for (const auto &[s, hits] : before.stack_hits) {
        if (s->frame.limit_hits == hits) continue;
        CHECK(s->frame.limit_hits == hits + 1 && (s->frame.limit || s->effective_limit), p, s->frame.limit_hits, hits);
        counted++;
    }
    CHECK(counted == 1, p, counted, before.stack_hits.size());
}

// What an allocation the hook served tells: returns the origin to record.
// NULL: only under a byte limit (counted); a foreign block in a capturing
// scope only after an injected commit failure (counted as a fallback) or
// past a limit, in the grace window a refusal opens (hook.c: counted in
// limit_grace_allocs).
uint64_t CheckServed(Model &m, objarena_scope_t *cap, void *p, const Counters &before) {
    if (!p) {
        CheckRefused(m, p, before);
        return 0;
    }
    bool owned = arena_owns(p);
    if (!cap) {
        CHECK(!owned, p);
        return 0;
    }
    if (!owned) {
        bool fell_back = m.injected && cap->frame.alloc_fallbacks == before.fallbacks + 1;
        bool grace = cap->effective_limit && cap->frame.limit_grace_allocs == before.grace_allocs + 1;
        CHECK(fell_back || grace, p, cap->frame.alloc_fallbacks, cap->frame.limit_grace_allocs);
        return 0;
    }
    CHECK(arena_block_arena_id(p) == cap->arena_id, p, arena_block_arena_id(p), cap->arena_id);
    return cap->arena_id;
}

void Alloc(Model &m, FuzzedDataProvider &in, Domain d) {
    size_t size = PickSize(in);
    bool zero = in.ConsumeBool();
    if (m.live.size() >= kMaxLive || m.live_bytes + size > kMaxLiveBytes) return;
    objarena_scope_t *cap = Capturing(m, d, size);
    Counters before = Before(m);
    void *p;
    if (zero) {
        p = d == kObj ? PyObject_Calloc(1, size) : PyMem_Calloc(1, size);
        if (p)
            for (size_t i = 0; i < size; i++) CHECK(static_cast<unsigned char *>(p)[i] == 0, p, i);
    } else {
        p = d == kObj ? PyObject_Malloc(size) : PyMem_Malloc(size);
    }
    uint64_t origin = CheckServed(m, cap, p, before);
    if (p) AddBlock(m, static_cast<unsigned char *>(p), size, d, origin);
}

void BulkAlloc(Model &m, FuzzedDataProvider &in) {
    Domain d = in.ConsumeBool() ? kMem : kObj;
    size_t size = PickSize(in);
    int count = in.ConsumeIntegralInRange<int>(1, 64);
    for (int i = 0; i < count && m.live.size() < kMaxLive && m.live_bytes + size <= kMaxLiveBytes; i++) {
        objarena_scope_t *cap = Capturing(m, d, size);
        Counters before = Before(m);
        void *p = d == kObj ? PyObject_Malloc(size) : PyMem_Malloc(size);
        uint64_t origin = CheckServed(m, cap, p, before);
        if (!p) return;
        AddBlock(m, static_cast<unsigned char *>(p), size, d, origin);
    }
}

void FreeRaw(uintptr_t u, Domain d) {
    if (d == kObj) PyObject_Free(reinterpret_cast<void *>(u));
    else PyMem_Free(reinterpret_cast<void *>(u));
}

void DropBlock(Model &m, std::map<uintptr_t, Block>::iterator it) {
    m.live_bytes -= it->second.size;
    m.live.erase(it);
}

void FreeBlock(Model &m, FuzzedDataProvider &in) {
    auto it = PickBlock(m, in);
    if (it == m.live.end()) {
        PyObject_Free(nullptr);
        PyMem_Free(nullptr);
        return;
    }
    CheckBlock(it->first, it->second, true);
    FreeRaw(it->first, it->second.domain);
    DropBlock(m, it);
}

// Frees all but one in `keep` of the live blocks (address order): survivors
// spread over pages and chunks of several arenas.
void BulkFree(Model &m, FuzzedDataProvider &in) {
    size_t keep = in.ConsumeIntegralInRange<size_t>(2, 64);
    size_t offset = in.ConsumeIntegral<uint8_t>() % keep;
    size_t k = 0;
    for (auto it = m.live.begin(); it != m.live.end(); k++) {
        auto cur = it++;
        if (k % keep == offset) continue;
        CheckBlock(cur->first, cur->second, false);
        FreeRaw(cur->first, cur->second.domain);
        DropBlock(m, cur);
    }
}

void Realloc(Model &m, FuzzedDataProvider &in) {
    bool from_null = in.ConsumeIntegral<uint8_t>() % 8 == 0;
    auto it = from_null ? m.live.end() : PickBlock(m, in);
    size_t size = PickSize(in);
    Domain d = it != m.live.end() ? it->second.domain : (in.ConsumeBool() ? kMem : kObj);
    if (it == m.live.end()) {  // realloc(NULL): an allocation
        if (m.live.size() >= kMaxLive || m.live_bytes + size > kMaxLiveBytes) return;
        objarena_scope_t *cap = Capturing(m, d, size);
        Counters before = Before(m);
        void *p = d == kObj ? PyObject_Realloc(nullptr, size) : PyMem_Realloc(nullptr, size);
        uint64_t origin = CheckServed(m, cap, p, before);
        if (p) AddBlock(m, static_cast<unsigned char *>(p), size, d, origin);
        return;
    }
    if (size > it->second.size && m.live_bytes + size - it->second.size > kMaxLiveBytes) return;
    uintptr_t old = it->first;
    Block b = it->second;
    CheckBlock(old, b, true);
    objarena_scope_t *cap = b.origin ? Capturing(m, d, size) : nullptr;
    Counters before = Before(m);
    void *ptr = reinterpret_cast<void *>(old);
    unsigned char *q = static_cast<unsigned char *>(d == kObj ? PyObject_Realloc(ptr, size) : PyMem_Realloc(ptr, size));
    if (!q) {
        // Only a limit refuses; the block is untouched and live.
        CheckReallocRefused(ptr, before);
        CheckBlock(old, b, true);
        return;
    }
    size_t kept = b.size < size ? b.size : size;
    CHECK(Matches(q, kept, b.seed), q, kept);
    uint64_t origin;
    if (!b.origin) {
        CHECK(!arena_owns(q), q);  // a foreign block stays with the saved allocator
        origin = 0;
    } else if (!cap) {
        CHECK(!arena_owns(q), q);  // moved out of the arena
        origin = 0;
    } else if (reinterpret_cast<uintptr_t>(q) == old) {
        origin = b.origin;  // in place: still the block of the arena that made it
    } else {
        origin = CheckServed(m, cap, q, before);
    }
    m.live_bytes -= b.size;
    m.live.erase(old);
    AddBlock(m, q, size, d, origin);
}

// ---- scopes and pauses ----

void NewScope(Model &m, FuzzedDataProvider &in) {
    int slot = in.ConsumeIntegral<uint8_t>() % kScopes;
    uint8_t flags = in.ConsumeIntegral<uint8_t>();
    uint8_t more = in.ConsumeIntegral<uint8_t>();
    uint8_t limit_pick = in.ConsumeIntegral<uint8_t>();
    ScopeSlot &ss = m.scopes[slot];
    if (ss.state == State::kActive) return;  // in use: free it with its own op
    if (ss.s) objarena_scope_free(ss.s);
    ss = ScopeSlot();
    objarena_scope_options_t o;
    objarena_scope_options_init(&o);
    static const size_t limits[] = {0, 0, 0, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20};
    static const size_t chunks[] = {0, 0, 64 << 10, 128 << 10, 1 << 20, 2 << 20, 96 << 10, 32 << 10};
    o.limit = limits[limit_pick % 8];
    o.chunk_size = chunks[(limit_pick >> 3) % 8];
    o.poison = (flags & 1) && poison_allowed;
    o.reuse = flags & 2;
    o.capture_mem = flags & 4;
    o.adopt = !(flags & 8);
    o.strict = flags & 16;
    o.huge_pages = (flags & 0xe0) == 0xe0;
    o.collect = more % 4;
    o.trim_malloc = more & 4;
    int pool = (more & 8) ? (more >> 4) % kPools : -1;
    if (pool >= 0 && !m.pools[pool].pool) pool = -1;
    if (pool >= 0) {
        o.pool = m.pools[pool].pool;
        o.chunk_size = 0;
    }
    // scope.h's validation: chunk size a power of two in range (huge pages:
    // at least one huge page), and a limit of at least one chunk.
    size_t c = o.chunk_size;
    bool valid = !c || (c >= ARENA_MIN_CHUNK_SIZE && c <= ARENA_MAX_CHUNK_SIZE && !(c & (c - 1)));
    if (o.huge_pages && !o.pool && c && c < ARENA_HUGE_PAGE_SIZE) valid = false;
    if (o.limit && c && !o.pool && o.limit < c) valid = false;
    // Without a chunk_size, a limit under the smallest chunk the scope can
    // map (one huge page with huge_pages) is refused too (issue 24).
    if (o.limit && !c && !o.pool && o.limit < (o.huge_pages ? ARENA_HUGE_PAGE_SIZE : ARENA_MIN_CHUNK_SIZE))
        valid = false;
    if (!valid) Touch(m);  // a ValueError is a Python object
    objarena_scope_t *s = objarena_scope_new(&o);
    if (!valid) {
        CHECK(s == nullptr && TakeError(m, PyExc_ValueError), s);
        return;
    }
    CHECK(s != nullptr);
    CHECK(s->frame.state == FRAME_NEW);
    ss.s = s;
    ss.state = State::kNew;
    ss.pool = pool;
}

void EnterScope(Model &m, ScopeSlot &ss) {
    objarena_scope_t *s = ss.s;
    Touch(m);  // gc.get_stats() at entry allocates into the enclosing scope
    int r = objarena_scope_enter(s);
    if (ss.state != State::kNew) {
        CHECK(r == -1 && TakeError(m, PyExc_RuntimeError), s);
        return;
    }
    // A pool scope's chunks are the pool's: huge pages need huge chunks.
    if (ss.pool >= 0 && s->options.huge_pages && m.pools[ss.pool].chunk_size < ARENA_HUGE_PAGE_SIZE) {
        CHECK(r == -1 && TakeError(m, PyExc_ValueError), s);
        return;
    }
    if (r != 0) Fail("scope enter failed", s);
    CHECK(s->frame.arena && s->arena_id == arena_id(s->frame.arena), s);
    // Its limit is the tightest of its own and what the enclosing ones have left.
    if (s->options.limit) CHECK(s->effective_limit && s->effective_limit <= s->options.limit, s);
    ss.state = State::kActive;
    ss.touched = false;
    m.stack.push_back(&s->frame);
}

void RemoveFromStack(Model &m, objarena_frame_t *f) {
    for (size_t i = 0; i < m.stack.size(); i++)
        if (m.stack[i] == f) {
            m.stack.erase(m.stack.begin() + i);
            return;
        }
    Fail("frame not on the model's stack", f);
}

void ExitScope(Model &m, ScopeSlot &ss) {
    objarena_scope_t *s = ss.s;
    bool innermost = !m.stack.empty() && m.stack.back() == &s->frame;
    uint64_t harness = ss.state == State::kActive ? HarnessLive(m, s->arena_id) : 0;
    // (Active: nothing runs before the unlink; the exit collection and an
    // out-of-order error run with the frame that captures afterwards.)
    if (ss.state != State::kActive) Touch(m);  // the RuntimeError
    int r = objarena_scope_exit(s);
    if (ss.state != State::kActive) {
        CHECK(r == -1 && TakeError(m, PyExc_RuntimeError), s);
        return;
    }
    // Out of order: RuntimeError, but the scope is unlinked and released all
    // the same (scope.h).
    if (innermost) CHECK(r == 0 && !PyErr_Occurred(), s);
    else CHECK(r == -1 && TakeError(m, PyExc_RuntimeError), s);
    RemoveFromStack(m, &s->frame);
    ss.state = State::kExited;
    Touch(m);  // the exit collection ran with the enclosing scope capturing
    CHECK(s->exit_stats.released, s);
    if (!ss.touched)
        CHECK(s->exit_stats.live_blocks_at_release == harness, s, s->exit_stats.live_blocks_at_release, harness);
    CHECK(s->exit_stats.live_blocks_at_release == 0 || s->exit_stats.chunks_retained > 0, s);
}

void FreeScope(Model &m, ScopeSlot &ss) {
    if (ss.state == State::kActive) {
        Touch(m);
        RemoveFromStack(m, &ss.s->frame);  // freed while active: exited first, in or out of order
        objarena_scope_free(ss.s);
        Touch(m);
        CHECK(!PyErr_Occurred());
    } else {
        objarena_scope_free(ss.s);
    }
    ss = ScopeSlot();
}

void PauseOp(Model &m, PauseSlot &p, bool enter) {
    if (!p.f) {
        p.f = static_cast<objarena_frame_t *>(calloc(1, sizeof *p.f));
        CHECK(p.f != nullptr);
    }
    objarena_frame_t *f = p.f;
    int before = f->state;
    bool innermost = !m.stack.empty() && m.stack.back() == f;
    // A RuntimeError is a Python object, made in whatever captures then.
    if ((enter && before != FRAME_NEW) || (!enter && before != FRAME_ACTIVE)) Touch(m);
    if (enter) {
        int r = objarena_pause_enter(f);
        if (before != FRAME_NEW) {
            CHECK(r == -1 && TakeError(m, PyExc_RuntimeError), f);
            if (before == FRAME_EXITED) {  // a fresh one next time
                free(f);
                p.f = nullptr;
            }
            return;
        }
        CHECK(r == 0, f);
        m.stack.push_back(f);
        return;
    }
    int r = objarena_pause_exit(f);
    if (before != FRAME_ACTIVE) {
        CHECK(r == -1 && TakeError(m, PyExc_RuntimeError), f);
        return;
    }
    if (!innermost) Touch(m);
    if (innermost) CHECK(r == 0 && !PyErr_Occurred(), f);
    else CHECK(r == -1 && TakeError(m, PyExc_RuntimeError), f);
    RemoveFromStack(m, f);
    CHECK(f->state == FRAME_EXITED, f);
}

void ExitInnermost(Model &m) {
    if (m.stack.empty()) return;
    objarena_frame_t *top = m.stack.back();
    if (top->arena) {
        ExitScope(m, *SlotOfFrame(m, top));
        return;
    }
    for (auto &p : m.pauses)
        if (p.f == top) {
            PauseOp(m, p, false);
            return;
        }
    Fail("innermost frame unknown", top);
}

// ---- Python ----

// The snippets, compiled once at start-up (n: a global set per run), so a
// limited scope's refusals reach the evaluation loop, not the compiler: on
// 3.11.7 a compile() whose object allocations fail can return NULL without
// an exception set (and crash under _testcapi.set_nomemory), on 3.13.0 it
// can crash (instruction_sequence.c) -- CPython's defects, not the hook's.
// Only snippet 7 compiles inside a scope, and never under a limit.
const char *const kSnippets[] = {
    // 0: temporaries only
    "r = sum(len(str(i)) for i in range(n))",
    // 1: escapes the scope: kept in a global list
    "_keep.append([str(i) * 3 for i in range(n)]); r = len(_keep[-1])",
    // 2: the kept objects die, in whatever scope (or none) is active now
    "_keep.clear(); r = 0",
    // 3: garbage cycles, left to the gc (or the exit collection)
    "a = [[] for _ in range(n)]\n[x.append(a) for x in a]\ndel a\nr = 0",
    // 4: a big buffer: PYMEM_DOMAIN_MEM / malloc
    "b = bytearray(n * 4096 + 1); b[-1] = 7; r = len(b) + b[-1]; del b",
    // 5: a dict that grows, then dies
    "d = {str(i): i for i in range(n)}; r = sum(d.values()); del d",
    // 6: escapes with a tuple, a long string, a float
    "_keep.append({'k': tuple(range(n)), 's': 'x' * (n * 100), 'f': n + 0.5}); r = len(_keep)",
    // 7: code compiled in the scope, a function kept in globals
    "exec(compile('def f%d(x): return x + %d' % (n, n), '<fuzz>', 'exec'), globals()); r = globals()['f%d' % n](1)",
    // 8 (Collect): a young collection from Python
    "r = gc.collect(0) * 0",
};
constexpr int kSnippetCount = sizeof kSnippets / sizeof kSnippets[0];
PyObject *g_snippet_code[kSnippetCount];
PyObject *g_key_n, *g_key_r;  // interned "n" and "r": setting them allocates nothing

// Runs snippet `which` with n (0..255: a cached small int) in whatever frame
// is innermost; returns its r, or -1 after a MemoryError under a limit.
long Run(Model &m, int which, int n) {
    bool limited = UnderLimit(m);
    PyObject *pn = PyLong_FromLong(n);
    CHECK(pn && PyDict_SetItem(g_globals, g_key_n, pn) == 0);
    Py_DECREF(pn);
    Touch(m);
    PyObject *result = PyEval_EvalCode(g_snippet_code[which], g_globals, g_globals);
    Touch(m);
    if (!result) {
        if (limited && PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_MemoryError)) {
            PyErr_Clear();
            return -1;
        }
        fprintf(stderr, "hook_fuzzer: snippet %d (n=%d) failed%s: %s\n", which, n,
                PyErr_Occurred() ? "" : " with no exception set", kSnippets[which]);
        Fail("snippet raised");
    }
    Py_DECREF(result);
    PyObject *r = PyDict_GetItem(g_globals, g_key_r);  // borrowed
    CHECK(r && PyLong_Check(r));
    return PyLong_AsLong(r);
}

void RunSnippet(Model &m, FuzzedDataProvider &in) {
    int which = in.ConsumeIntegral<uint8_t>() % 8;
    int n = in.ConsumeIntegral<uint8_t>();
    if (which == 7 && UnderLimit(m)) return;  // the compiler under a limit: see kSnippets
    long expect = -1;
    switch (which) {
    case 0:
        expect = 0;
        for (int i = 0; i < n; i++) expect += i < 10 ? 1 : i < 100 ? 2 : 3;
        break;
    case 1: expect = n; break;
    case 2: case 3: expect = 0; break;
    case 4: expect = n * 4096L + 1 + 7; break;
    case 5: expect = n * (n - 1L) / 2; break;
    case 7: expect = n + 1; break;
    default: break;  // 6: the list's length depends on earlier inputs
    }
    long got = Run(m, which, n);
    if (got != -1 && expect >= 0 && got != expect) {
        fprintf(stderr, "hook_fuzzer: snippet %d (n=%d) computed %ld, expected %ld\n", which, n, got, expect);
        Fail("snippet result");
    }
}

void Collect(Model &m, FuzzedDataProvider &in) {
    int how = in.ConsumeIntegral<uint8_t>() % 3;
    Touch(m);
    if (how == 0) {
        CHECK(PyGC_Collect() >= 0);
    } else if (how == 1) {
        objarena_collect_caches();
    } else {
        long got = Run(m, 8, 0);
        CHECK(got == 0 || got == -1, nullptr, (uint64_t)got);
    }
    Touch(m);
    CHECK(!PyErr_Occurred());
}

// tracemalloc.start() / stop() as the objarena package guards them: the full
// face before start (tracemalloc wraps what is installed), the chain
// verified after stop.
void Tracemalloc(Model &m) {
    Touch(m);
    if (!m.tracing) {
        objarena_hook_prepare_for_wrapper();
        PyObject *r = PyObject_CallFunction(g_tracemalloc_start, "i", 4);
        if (!r && UnderLimit(m) && PyErr_ExceptionMatches(PyExc_MemoryError)) {
            PyErr_Clear();
        } else {
            CHECK(r != nullptr);
            m.tracing = true;
        }
        Py_XDECREF(r);
    } else {
        PyObject *r = PyObject_CallNoArgs(g_tracemalloc_stop);
        CHECK(r != nullptr);
        Py_DECREF(r);
        objarena_hook_verify_chain();
        m.tracing = false;
    }
    Touch(m);
}

void PoolOp(Model &m, FuzzedDataProvider &in) {
    int slot = in.ConsumeIntegral<uint8_t>() % kPools;
    uint8_t flags = in.ConsumeIntegral<uint8_t>();
    PoolSlot &p = m.pools[slot];
    if (p.pool) {
        static const size_t keep[] = {0, 64 << 10, 1 << 20, SIZE_MAX};
        arena_pool_trim(p.pool, keep[flags % 4]);
        return;
    }
    static const size_t chunk[] = {64 << 10, 256 << 10, 1 << 20, 2 << 20};
    static const size_t warm[] = {0, 64 << 10, 256 << 10, 4 << 20};
    arena_pool_config_t config{};
    config.chunk_size = chunk[flags % 4];
    config.max_warm_bytes = warm[(flags >> 2) % 4];
    CHECK(arena_pool_create(&config, &p.pool) == ARENA_OK && p.pool);
    p.chunk_size = config.chunk_size;
    p.max_warm = config.max_warm_bytes ? config.max_warm_bytes : (256u << 20);
}

// ---- the end of an input: back to where it started ----

void Cleanup(Model &m) {
    arena_testing_fail_commit_after(-1);
    CheckAll(m, true);
    if (m.tracing) Tracemalloc(m);
    while (!m.stack.empty()) {
        objarena_frame_t *top = m.stack.back();
        ExitInnermost(m);
        CHECK(m.stack.empty() || m.stack.back() != top, top);
    }
    CheckAll(m, true);
    while (!m.live.empty()) {
        auto it = m.live.begin();
        FreeRaw(it->first, it->second.domain);
        DropBlock(m, it);
    }
    for (auto &ss : m.scopes)
        if (ss.s) FreeScope(m, ss);
    for (auto &p : m.pauses) {
        CHECK(!p.f || p.f->state != FRAME_ACTIVE, p.f);
        free(p.f);
        p.f = nullptr;
    }
    PyObject *r = PyRun_String("_keep.clear(); r = sum(range(100))", Py_file_input, g_globals, g_globals);
    CHECK(r != nullptr);  // the interpreter still works
    Py_DECREF(r);
    CHECK(PyLong_AsLong(PyDict_GetItemString(g_globals, "r")) == 4950);
    if (m.python_ran) objarena_collect_caches();
    for (auto &p : m.pools) {
        if (!p.pool) continue;
        CHECK(arena_pool_destroy(p.pool) == ARENA_OK);  // no scope uses it any more
        p = PoolSlot();
    }
    // The process's default pool keeps an empty chunk warm for the next
    // scope: the next input starts without it.
    if (arena_pool_t *dp = arena_default_pool()) arena_pool_trim(dp, 0);
    CheckAll(m, true);
    arena_global_stats_t g;
    arena_global_stats(&g);
    CHECK(g.arenas_live == m.base.arenas_live, nullptr, g.arenas_live, m.base.arenas_live);
    CHECK(g.warm_bytes == m.base.warm_bytes, nullptr, g.warm_bytes, m.base.warm_bytes);
    // Chunks not retained by anyone are an open arena's or a pool's: none.
    CHECK(g.chunks_live + g.large_live - g.chunks_retained == m.base.chunks_live + m.base.large_live - m.base.chunks_retained,
          nullptr, g.chunks_live + g.large_live - g.chunks_retained,
          m.base.chunks_live + m.base.large_live - m.base.chunks_retained);
    // Every block the harness made is freed: without Python code in a
    // scope, nothing new may stay retained (the exit collections may have
    // freed older survivors of Python's).
    if (!m.python_ran)
        CHECK(g.blocks_retained <= m.base.blocks_retained, nullptr, g.blocks_retained, m.base.blocks_retained);
    CHECK(g.bytes_retained < kRetainedCap, nullptr, g.bytes_retained, kRetainedCap);
}

void InitPython() {
    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    // PYTHONMALLOC=malloc: every foreign block is then ASan's, so a foreign
    // block freed as an arena block (or an arena block handed to the saved
    // allocator) is caught where it happens. OBJARENA_FUZZ_PYMALLOC=1 keeps
    // pymalloc (CPython's default) instead.
    const char *pym = getenv("OBJARENA_FUZZ_PYMALLOC");
    pre.allocator = (pym && *pym == '1') ? PYMEM_ALLOCATOR_PYMALLOC : PYMEM_ALLOCATOR_MALLOC;
    PyStatus st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st)) Py_ExitStatusException(st);
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;  // libFuzzer's stay
    config.site_import = 0;
    st = PyConfig_SetBytesString(&config, &config.program_name, OBJARENA_FUZZ_PYTHON);
    if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) Py_ExitStatusException(st);
    PyObject *main = PyImport_AddModule("__main__");  // borrowed
    CHECK(main != nullptr);
    g_globals = PyModule_GetDict(main);
    Py_INCREF(g_globals);
    PyObject *r = PyRun_String("import gc, tracemalloc\n_keep = []\nn = r = 0\n", Py_file_input, g_globals, g_globals);
    CHECK(r != nullptr);
    Py_DECREF(r);
    for (int i = 0; i < kSnippetCount; i++) {
        g_snippet_code[i] = Py_CompileString(kSnippets[i], "<hook_fuzzer>", Py_file_input);
        CHECK(g_snippet_code[i] != nullptr);
    }
    g_key_n = PyUnicode_InternFromString("n");
    g_key_r = PyUnicode_InternFromString("r");
    CHECK(g_key_n && g_key_r);
    PyObject *tm = PyImport_ImportModule("tracemalloc");
    CHECK(tm != nullptr);
    g_tracemalloc_start = PyObject_GetAttrString(tm, "start");
    g_tracemalloc_stop = PyObject_GetAttrString(tm, "stop");
    CHECK(g_tracemalloc_start && g_tracemalloc_stop);
    Py_DECREF(tm);
    // Install both hooks now, so that every input starts from the same chain
    // (a first scope under tracemalloc would install differently).
    objarena_scope_options_t o;
    objarena_scope_options_init(&o);
    o.capture_mem = true;
    objarena_scope_t *s = objarena_scope_new(&o);
    CHECK(s && objarena_scope_enter(s) == 0 && objarena_scope_exit(s) == 0);
    objarena_scope_free(s);
    CHECK(objarena_hook_installed());
    if (arena_pool_t *dp = arena_default_pool()) arena_pool_trim(dp, 0);  // as at every input's end
    fprintf(stderr, "hook_fuzzer: Python %s, %s\n", Py_GetVersion(),
            pre.allocator == PYMEM_ALLOCATOR_MALLOC ? "PYTHONMALLOC=malloc" : "pymalloc");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    trace = getenv("HOOK_FUZZ_TRACE") != nullptr;
    if (getenv("OBJARENA_POISON") || getenv("OBJARENA_RESERVE_BYTES"))
        fprintf(stderr, "hook_fuzzer: OBJARENA_POISON/OBJARENA_RESERVE_BYTES are set: scopes read them\n");
    InitPython();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzedDataProvider in(data, size);
    Model m;
    arena_global_stats(&m.base);
    if (poison_allowed && m.base.reserve_bytes && m.base.quarantined_bytes > QuarantineCap(m.base.reserve_bytes)) {
        poison_allowed = false;
        fprintf(stderr, "hook_fuzzer: quarantine at %llu of %llu reserved bytes: poison requests ignored from now on\n",
                (unsigned long long)m.base.quarantined_bytes, (unsigned long long)m.base.reserve_bytes);
    }
    for (int ops = 0; ops < kMaxOps && in.remaining_bytes() > 0; ops++) {
        uint8_t op = in.ConsumeIntegral<uint8_t>();
        if (trace)
            fprintf(stderr, "hook_fuzzer: op %d (%u), %zu frames, %zu live blocks\n", op % 20, op, m.stack.size(),
                    m.live.size());
        switch (op % 20) {
        case 0: NewScope(m, in); break;
        case 1: case 2: {
            ScopeSlot &ss = m.scopes[in.ConsumeIntegral<uint8_t>() % kScopes];
            if (ss.s) EnterScope(m, ss);
            break;
        }
        case 3: {
            ScopeSlot &ss = m.scopes[in.ConsumeIntegral<uint8_t>() % kScopes];
            if (ss.s) ExitScope(m, ss);
            break;
        }
        case 4: ExitInnermost(m); break;
        case 5: PauseOp(m, m.pauses[in.ConsumeIntegral<uint8_t>() % kPauses], in.ConsumeBool()); break;
        case 6: case 7: Alloc(m, in, kObj); break;
        case 8: Alloc(m, in, kMem); break;
        case 9: case 10: Realloc(m, in); break;
        case 11: case 12: FreeBlock(m, in); break;
        case 13: BulkAlloc(m, in); break;
        case 14: BulkFree(m, in); break;
        case 15: RunSnippet(m, in); break;
        case 16: Collect(m, in); break;
        case 17: {
            uint8_t what = in.ConsumeIntegral<uint8_t>();
            if (what % 4 == 0) Tracemalloc(m);
            else if (what % 4 == 1) {
                long n = in.ConsumeIntegralInRange<long>(-1, 6);
                arena_testing_fail_commit_after(n);
                m.injected |= n >= 0;
            } else if (what % 4 == 2) {
                PoolOp(m, in);
            } else if (arena_pool_t *dp = arena_default_pool()) {  // the default pool gives back its chunks
                arena_pool_trim(dp, in.ConsumeBool() ? 0 : SIZE_MAX);
            }
            break;
        }
        case 18: {
            ScopeSlot &ss = m.scopes[in.ConsumeIntegral<uint8_t>() % kScopes];
            if (ss.s) FreeScope(m, ss);
            break;
        }
        case 19: {  // enter a fresh default scope in one step (nesting is cheap to reach)
            for (auto &ss : m.scopes) {
                if (ss.s) continue;
                objarena_scope_options_t o;
                objarena_scope_options_init(&o);
                o.poison = poison_allowed;
                ss.s = objarena_scope_new(&o);
                CHECK(ss.s != nullptr);
                ss.state = State::kNew;
                EnterScope(m, ss);
                break;
            }
            break;
        }
        }
        CheckAll(m, false);
    }
    Cleanup(m);
    return 0;
}
