// GoogleTest harness for the PYMEM_DOMAIN_OBJ hook (pyext/hook.h) and the
// scope machinery (pyext/scope.h), driven through the C API of an embedded
// interpreter. Built once per interpreter of the matrix
// (cc_embed_test_matrix). Every test checks a behaviour that a broken hook
// (one that captured too much or too little, handed arena blocks to the saved
// allocator or vice versa, or fell out of the allocator chain) would get wrong.
//
// Python is initialized once for the whole binary (HookEnvironment) and
// finalized at the end, with arena blocks and arena-allocated Python objects
// still alive: finalization frees them through the hook and must not crash.
//
// The tests share one process: once the hook is installed it stays installed
// (by design), so the "tracemalloc started before the hook" order runs in a
// fresh child process (fork + exec of this binary, see RunChild).
#include <Python.h>  // first, outside extern "C" (it includes C++-aware headers)

extern "C" {
// pyext/hook.h and pyext/scope.h have no extern "C" guards of their own.
#include "pyext/hook.h"
#include "pyext/scope.h"
}

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "arena/arena.h"
#include "arena/testing.h"

#ifndef OBJARENA_PYTHON_EXECUTABLE
#error "OBJARENA_PYTHON_EXECUTABLE must be defined by cc_embed_test_matrix"
#endif

// (LeakSanitizer suppressions for libpython come with @pythons//:<tag>_embed.)

namespace {

constexpr size_t kMiB = size_t(1) << 20;

// The OBJ-domain allocator as it was before any scope was entered (recorded by
// the environment, i.e. before the hook could be installed).
PyMemAllocatorEx g_before_install;
bool g_installed_at_setup = true;

// Set when this process is a child started by RunChild.
const char *ChildMode() { return std::getenv("OBJARENA_HOOK_TEST_CHILD"); }

PyMemAllocatorEx ObjAllocator() {
    PyMemAllocatorEx a;
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &a);
    return a;
}

objarena_hook_stats_t HookStats() {
    objarena_hook_stats_t s;
    objarena_hook_get_stats(&s);
    return s;
}

arena_global_stats_t Global() {
    arena_global_stats_t g;
    arena_global_stats(&g);
    return g;
}

bool Aligned16(const void *p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

void Fill(void *p, size_t n, unsigned char seed) {
    auto *b = static_cast<unsigned char *>(p);
    for (size_t i = 0; i < n; i++)
        b[i] = static_cast<unsigned char>(seed + i * 7u);
}

bool Check(const void *p, size_t n, unsigned char seed) {
    auto *b = static_cast<const unsigned char *>(p);
    for (size_t i = 0; i < n; i++)
        if (b[i] != static_cast<unsigned char>(seed + i * 7u))
            return false;
    return true;
}

// Takes the pending Python exception; true if it is a RuntimeError.
bool TakeRuntimeError() {
    bool matches = PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_RuntimeError);
    PyErr_Clear();
    return matches;
}

// A scope owned by a test; freed (exited first if needed) at the end.
class Scope {
  public:
    explicit Scope(size_t limit = 0, size_t chunk = 0) {
        objarena_scope_options_t o;
        objarena_scope_options_init(&o);
        o.limit = limit;
        o.chunk_size = chunk;
        s_ = objarena_scope_new(&o);
        if (!s_)
            PyErr_Print();
    }
    explicit Scope(const objarena_scope_options_t &o) {
        s_ = objarena_scope_new(&o);
        if (!s_)
            PyErr_Print();
    }
    ~Scope() {
        if (s_ && s_->frame.state == FRAME_ACTIVE && objarena_thread_top() == &s_->frame) {
            if (objarena_scope_exit(s_) < 0)
                PyErr_Clear();
        }
        objarena_scope_free(s_);
        PyErr_Clear();
    }
    Scope(const Scope &) = delete;
    Scope &operator=(const Scope &) = delete;

    int Enter() { return objarena_scope_enter(s_); }
    int Exit() { return objarena_scope_exit(s_); }
    objarena_scope_t *get() const { return s_; }
    objarena_scope_t *operator->() const { return s_; }
    uint64_t id() const { return s_->arena_id; }

  private:
    objarena_scope_t *s_ = nullptr;
};

// Installs the hook (first scope entry) if a test needs it installed.
void EnsureHookInstalled() {
    if (objarena_hook_installed())
        return;
    Scope s;
    ASSERT_EQ(s.Enter(), 0);
    ASSERT_EQ(s.Exit(), 0);
}

class HookEnvironment : public ::testing::Environment {
  public:
    void SetUp() override {
        PyConfig config;
        PyConfig_InitPythonConfig(&config);
        PyStatus st = PyConfig_SetBytesString(&config, &config.program_name, OBJARENA_PYTHON_EXECUTABLE);
        if (!PyStatus_Exception(st))
            st = Py_InitializeFromConfig(&config);
        PyConfig_Clear(&config);
        if (PyStatus_Exception(st)) {
            FAIL() << "Py_InitializeFromConfig failed: " << (st.func ? st.func : "") << ": "
                   << (st.err_msg ? st.err_msg : "");
        }
        ASSERT_TRUE(Py_IsInitialized());
        g_installed_at_setup = objarena_hook_installed();
        PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &g_before_install);
    }

    void TearDown() override {
        if (!Py_IsInitialized())
            return;
        const char *mode = ChildMode();
        if (mode && std::strcmp(mode, "naive") == 0) {
            // A naive child that survived its test: finalizing would only
            // repeat the crash; the parent reports the failure.
            return;
        }
        // Leave arena blocks alive into finalization: a raw block in a
        // retained chunk and Python objects (gc-tracked objects, dicts,
        // strings, list storage) allocated in a scope and still referenced
        // from __main__.
        void *raw = nullptr;
        {
            Scope s;
            ASSERT_EQ(s.Enter(), 0);
            raw = PyObject_Malloc(200);
            ASSERT_NE(raw, nullptr);
            Fill(raw, 200, 9);
            ASSERT_EQ(
                PyRun_SimpleString("survivors = [[object(), {'k': 'v' * 40}, str(i) * 3] for i in range(500)]\n"),
                0);
            ASSERT_EQ(s.Exit(), 0);
            EXPECT_GE(s->exit_stats.live_blocks_at_release, 1000u);
            EXPECT_GE(s->exit_stats.chunks_retained, 1u);
        }
        EXPECT_TRUE(arena_owns(raw));
        PyObject *main = PyImport_AddModule("__main__");  // borrowed
        ASSERT_NE(main, nullptr);
        PyObject *surv = PyObject_GetAttrString(main, "survivors");
        ASSERT_NE(surv, nullptr);
        ASSERT_TRUE(PyList_Check(surv));
        // (Free lists may serve a few of them; the fresh ones are arena blocks.)
        Py_ssize_t owned = 0;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(surv); i++)
            owned += arena_owns(PyList_GET_ITEM(PyList_GET_ITEM(surv, i), 0));
        EXPECT_GE(owned, 400);
        Py_DECREF(surv);

        arena_global_stats_t before = Global();
        EXPECT_GE(before.blocks_retained, 2u);
        // Finalization frees the survivors through the hook (which stays
        // installed): it must not crash nor hand arena blocks to pymalloc.
        EXPECT_EQ(Py_FinalizeEx(), 0);
        arena_global_stats_t after = Global();
        EXPECT_LT(after.blocks_retained, before.blocks_retained);
        // The raw block was never freed: its chunk stays mapped and intact.
        EXPECT_TRUE(arena_owns(raw));
        EXPECT_TRUE(Check(raw, 200, 9));
    }
};

::testing::Environment *const g_env = ::testing::AddGlobalTestEnvironment(new HookEnvironment);

// ------------------------------------------------------------- install

TEST(HookInstall, PassThroughBeforeAndAfterScopes) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    // Outside any scope the OBJ domain is never captured, installed or not.
    void *p = PyObject_Malloc(64);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(arena_owns(p));
    Fill(p, 64, 1);
    p = PyObject_Realloc(p, 4096);
    ASSERT_NE(p, nullptr);
    EXPECT_FALSE(arena_owns(p));
    EXPECT_TRUE(Check(p, 64, 1));
    PyObject_Free(p);

    // Nothing installs the hook before the first scope entry.
    EXPECT_FALSE(g_installed_at_setup);

    {
        Scope s;
        ASSERT_EQ(s.Enter(), 0);
        EXPECT_TRUE(objarena_hook_installed());
        EXPECT_TRUE(HookStats().hook_on_top);
        // Inside a scope the full face is installed: our malloc and free.
        EXPECT_TRUE(HookStats().full_face);
        EXPECT_NE(ObjAllocator().malloc, g_before_install.malloc);
        EXPECT_NE(ObjAllocator().free, g_before_install.free);
        ASSERT_EQ(s.Exit(), 0);
    }
    // Outside scopes the thin face: the saved allocator's own malloc, calloc
    // and ctx (allocation costs nothing extra), our free and realloc.
    PyMemAllocatorEx installed = ObjAllocator();
    EXPECT_FALSE(HookStats().full_face);
    EXPECT_EQ(installed.malloc, g_before_install.malloc);
    EXPECT_EQ(installed.calloc, g_before_install.calloc);
    EXPECT_EQ(installed.ctx, g_before_install.ctx);
    EXPECT_NE(installed.free, g_before_install.free);
    EXPECT_NE(installed.realloc, g_before_install.realloc);

    // The hook stays installed (a pass-through) after the scope exited.
    EXPECT_TRUE(objarena_hook_installed());
    EXPECT_TRUE(HookStats().hook_on_top);
    void *q = PyObject_Malloc(64);
    ASSERT_NE(q, nullptr);
    EXPECT_FALSE(arena_owns(q));
    q = PyObject_Realloc(q, 100000);
    ASSERT_NE(q, nullptr);
    EXPECT_FALSE(arena_owns(q));
    PyObject_Free(q);
    void *z = PyObject_Calloc(10, 10);
    ASSERT_NE(z, nullptr);
    EXPECT_FALSE(arena_owns(z));
    PyObject_Free(z);

    // A second scope does not re-install: same function pointers.
    {
        Scope s;
        ASSERT_EQ(s.Enter(), 0);
        ASSERT_EQ(s.Exit(), 0);
    }
    EXPECT_EQ(ObjAllocator().malloc, installed.malloc);
    EXPECT_EQ(ObjAllocator().free, installed.free);
}

// ------------------------------------------------------------ in scope

TEST(InScope, MallocIsOwnedAlignedAndZeroSizeUnique) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    Scope s;
    ASSERT_EQ(s.Enter(), 0);
    ASSERT_EQ(objarena_thread_capture(), &s->frame);
    std::vector<void *> blocks;
    for (size_t size : {1, 7, 15, 16, 17, 24, 100, 511, 512, 4000, 70000, 300000}) {
        void *p = PyObject_Malloc(size);
        ASSERT_NE(p, nullptr) << size;
        EXPECT_TRUE(arena_owns(p)) << size;
        EXPECT_TRUE(Aligned16(p)) << size;
        EXPECT_EQ(arena_block_arena_id(p), s.id());
        std::memset(p, 0x5a, size);
        blocks.push_back(p);
    }
    std::set<void *> zero;
    for (int i = 0; i < 16; i++) {
        void *p = PyObject_Malloc(0);
        ASSERT_NE(p, nullptr);
        EXPECT_TRUE(arena_owns(p));
        EXPECT_TRUE(Aligned16(p));
        EXPECT_TRUE(zero.insert(p).second) << "size-0 blocks must be unique";
        blocks.push_back(p);
    }
    for (void *p : blocks)
        PyObject_Free(p);
    ASSERT_EQ(s.Exit(), 0);
    EXPECT_EQ(s->exit_stats.live_blocks_at_release, 0u);
    EXPECT_EQ(s->exit_stats.chunks_retained, 0u);
    for (void *p : blocks)
        EXPECT_FALSE(arena_owns(p));  // every chunk went back at exit
}

TEST(InScope, CallocZeroesAndRejectsOverflow) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    Scope s;
    ASSERT_EQ(s.Enter(), 0);
    auto *z = static_cast<unsigned char *>(PyObject_Calloc(33, 17));
    ASSERT_NE(z, nullptr);
    EXPECT_TRUE(arena_owns(z));
    EXPECT_TRUE(Aligned16(z));
    for (size_t i = 0; i < 33 * 17; i++)
        ASSERT_EQ(z[i], 0) << i;
    // PyObject_Calloc itself refuses products above PY_SSIZE_T_MAX.
    EXPECT_EQ(PyObject_Calloc(SIZE_MAX / 2, 4), nullptr);
    // The hook's own check: call the installed allocator directly with a
    // count*size that wraps around to 16 bytes.
    PyMemAllocatorEx a = ObjAllocator();
    ASSERT_TRUE(HookStats().hook_on_top);
    uint64_t failures = s->frame.alloc_failures;
    void *wrapped = a.calloc(a.ctx, SIZE_MAX / 16 + 2, 16);
    EXPECT_EQ(wrapped, nullptr) << "count*size overflow must fail, not wrap";
    EXPECT_EQ(s->frame.alloc_failures, failures + 1);
    if (wrapped)
        PyObject_Free(wrapped);
    // Still usable afterwards.
    void *ok = PyObject_Calloc(4, 4);
    ASSERT_NE(ok, nullptr);
    EXPECT_TRUE(arena_owns(ok));
    PyObject_Free(ok);
    PyObject_Free(z);
    ASSERT_EQ(s.Exit(), 0);
}

TEST(InScope, ForeignBlocksGoToTheSavedAllocator) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    void *foreign_free = PyObject_Malloc(48);
    void *foreign_realloc = PyObject_Malloc(48);
    ASSERT_NE(foreign_free, nullptr);
    ASSERT_NE(foreign_realloc, nullptr);
    ASSERT_FALSE(arena_owns(foreign_free));
    Fill(foreign_realloc, 48, 3);

    Scope s;
    ASSERT_EQ(s.Enter(), 0);
    EXPECT_EQ(s->frame.frees_forwarded, 0u);
    PyObject_Free(foreign_free);
    EXPECT_EQ(s->frame.frees_forwarded, 1u);

    void *moved = PyObject_Realloc(foreign_realloc, 5000);
    ASSERT_NE(moved, nullptr);
    EXPECT_FALSE(arena_owns(moved)) << "a foreign block must stay with its allocator";
    EXPECT_TRUE(Check(moved, 48, 3));
    moved = PyObject_Realloc(moved, 16);
    ASSERT_NE(moved, nullptr);
    EXPECT_FALSE(arena_owns(moved));
    EXPECT_TRUE(Check(moved, 16, 3));
    PyObject_Free(moved);
    EXPECT_EQ(s->frame.frees_forwarded, 2u);

    // Arena blocks freed in the scope are not forwarded.
    void *own = PyObject_Malloc(32);
    ASSERT_TRUE(arena_owns(own));
    PyObject_Free(own);
    EXPECT_EQ(s->frame.frees_forwarded, 2u);
    // Realloc(NULL) inside the scope allocates from the arena.
    void *fromnull = PyObject_Realloc(nullptr, 40);
    ASSERT_NE(fromnull, nullptr);
    EXPECT_TRUE(arena_owns(fromnull));
    PyObject_Free(fromnull);
    ASSERT_EQ(s.Exit(), 0);
    EXPECT_EQ(s->exit_stats.live_blocks_at_release, 0u);
}

// ------------------------------------------------- realloc over scopes

// MEM capture takes requests of up to 512 bytes (pymalloc's small blocks);
// larger ones, and captured blocks grown past 512, go to the saved allocator.
TEST(MemCapture, SmallRequestsOnlyAndGrowthMovesOut) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    objarena_scope_options_t o;
    objarena_scope_options_init(&o);
    o.capture_mem = true;
    Scope s(o);
    ASSERT_EQ(s.Enter(), 0);
    void *small = PyMem_Malloc(512), *big = PyMem_Malloc(513);
    ASSERT_NE(small, nullptr);
    ASSERT_NE(big, nullptr);
    EXPECT_TRUE(arena_owns(small));
    EXPECT_FALSE(arena_owns(big));
    auto *cz_small = static_cast<unsigned char *>(PyMem_Calloc(16, 32));
    auto *cz_big = static_cast<unsigned char *>(PyMem_Calloc(17, 32));
    ASSERT_NE(cz_small, nullptr);
    ASSERT_NE(cz_big, nullptr);
    EXPECT_TRUE(arena_owns(cz_small));
    EXPECT_FALSE(arena_owns(cz_big));
    for (size_t i = 0; i < 17 * 32; i++)
        ASSERT_EQ(cz_big[i], 0) << i;
    auto *grow = static_cast<unsigned char *>(PyMem_Malloc(100));
    ASSERT_NE(grow, nullptr);
    for (int i = 0; i < 100; i++)
        grow[i] = static_cast<unsigned char>(i);
    grow = static_cast<unsigned char *>(PyMem_Realloc(grow, 400));
    ASSERT_NE(grow, nullptr);
    EXPECT_TRUE(arena_owns(grow));
    grow = static_cast<unsigned char *>(PyMem_Realloc(grow, 4000));
    ASSERT_NE(grow, nullptr);
    EXPECT_FALSE(arena_owns(grow)) << "grown past 512: moved to the saved allocator";
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(grow[i], i) << i;
    void *fresh_big = PyMem_Realloc(nullptr, 600), *fresh_small = PyMem_Realloc(nullptr, 64);
    EXPECT_FALSE(arena_owns(fresh_big));
    EXPECT_TRUE(arena_owns(fresh_small));
    void *obj = PyObject_Malloc(4000); // the OBJ domain has no such bound
    EXPECT_TRUE(arena_owns(obj));
    for (void *p : {small, big, static_cast<void *>(cz_small), static_cast<void *>(cz_big),
                    static_cast<void *>(grow), fresh_big, fresh_small})
        PyMem_Free(p);
    PyObject_Free(obj);
    ASSERT_EQ(s.Exit(), 0);
    EXPECT_EQ(s->exit_stats.live_blocks_at_release, 0u);
}

TEST(ReallocAcrossScopes, AfterExitMovesToTheSavedAllocator) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    arena_global_stats_t g0 = Global();
    uint64_t moved0 = HookStats().moved_out;
    void *p = nullptr;
    {
        Scope s;
        ASSERT_EQ(s.Enter(), 0);
        p = PyObject_Malloc(300);
        ASSERT_NE(p, nullptr);
        ASSERT_TRUE(arena_owns(p));
        Fill(p, 300, 11);
        ASSERT_EQ(s.Exit(), 0);
        EXPECT_EQ(s->exit_stats.chunks_retained, 1u);
    }
    ASSERT_TRUE(arena_owns(p));  // retained after exit
    void *q = PyObject_Realloc(p, 1000);
    ASSERT_NE(q, nullptr);
    EXPECT_FALSE(arena_owns(q)) << "no scope: the block must leave the arena";
    EXPECT_TRUE(Check(q, 300, 11));
    EXPECT_EQ(HookStats().moved_out, moved0 + 1);
    // Moving out freed the last block of the retained chunk: it is unmapped.
    EXPECT_FALSE(arena_owns(p));
    EXPECT_EQ(Global().chunks_retained, g0.chunks_retained);
    // Shrinking outside a scope moves out too (and keeps the prefix).
    {
        Scope s;
        ASSERT_EQ(s.Enter(), 0);
        p = PyObject_Malloc(300);
        Fill(p, 300, 12);
        ASSERT_EQ(s.Exit(), 0);
    }
    void *r = PyObject_Realloc(p, 10);
    ASSERT_NE(r, nullptr);
    EXPECT_FALSE(arena_owns(r));
    EXPECT_TRUE(Check(r, 10, 12));
    PyObject_Free(q);
    PyObject_Free(r);
    EXPECT_EQ(Global().chunks_retained, g0.chunks_retained);
}

TEST(ReallocAcrossScopes, BlockOfScopeAMovesIntoScopeB) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    // A exited before B.
    void *p = nullptr;
    Scope a;
    ASSERT_EQ(a.Enter(), 0);
    p = PyObject_Malloc(128);
    ASSERT_EQ(arena_block_arena_id(p), a.id());
    Fill(p, 128, 21);
    ASSERT_EQ(a.Exit(), 0);

    Scope b;
    ASSERT_EQ(b.Enter(), 0);
    ASSERT_NE(a.id(), b.id());
    void *q = PyObject_Realloc(p, 256);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(arena_block_arena_id(q), b.id());
    EXPECT_TRUE(Check(q, 128, 21));

    // A still active (outer), B inner: the realloc goes to the innermost.
    Scope outer;
    ASSERT_EQ(outer.Enter(), 0);
    void *o = PyObject_Malloc(64);
    Fill(o, 64, 22);
    ASSERT_EQ(arena_block_arena_id(o), outer.id());
    Scope inner;
    ASSERT_EQ(inner.Enter(), 0);
    void *o2 = PyObject_Realloc(o, 640);
    ASSERT_NE(o2, nullptr);
    EXPECT_EQ(arena_block_arena_id(o2), inner.id());
    EXPECT_TRUE(Check(o2, 64, 22));
    PyObject_Free(o2);
    ASSERT_EQ(inner.Exit(), 0);
    EXPECT_EQ(inner->exit_stats.live_blocks_at_release, 0u);
    ASSERT_EQ(outer.Exit(), 0);
    // o was freed by the realloc: nothing of the outer arena is alive.
    EXPECT_EQ(outer->exit_stats.live_blocks_at_release, 0u);

    PyObject_Free(q);
    ASSERT_EQ(b.Exit(), 0);
    EXPECT_EQ(b->exit_stats.live_blocks_at_release, 0u);
    EXPECT_FALSE(arena_owns(p));  // A's retained chunk was freed by the move
}

// ------------------------------------------------------------- nesting

TEST(Nesting, InnerHasItsOwnArenaThenOuterAgainThenNothing) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    Scope outer, inner;
    ASSERT_EQ(outer.Enter(), 0);
    void *a = PyObject_Malloc(32);
    EXPECT_EQ(arena_block_arena_id(a), outer.id());
    ASSERT_EQ(inner.Enter(), 0);
    EXPECT_NE(inner.id(), outer.id());
    void *b = PyObject_Malloc(32);
    EXPECT_EQ(arena_block_arena_id(b), inner.id());
    PyObject_Free(b);
    ASSERT_EQ(inner.Exit(), 0);
    EXPECT_EQ(objarena_thread_capture(), &outer->frame);
    void *c = PyObject_Malloc(32);
    EXPECT_EQ(arena_block_arena_id(c), outer.id());
    PyObject_Free(a);
    PyObject_Free(c);
    ASSERT_EQ(outer.Exit(), 0);
    EXPECT_EQ(objarena_thread_capture(), nullptr);
    EXPECT_EQ(objarena_thread_top(), nullptr);
    void *d = PyObject_Malloc(32);
    ASSERT_NE(d, nullptr);
    EXPECT_FALSE(arena_owns(d));
    PyObject_Free(d);
}

TEST(Nesting, OutOfOrderAndRepeatedExitAndEnter) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    Scope outer, inner;
    ASSERT_EQ(outer.Enter(), 0);
    ASSERT_EQ(inner.Enter(), 0);
    // Exiting the outer first fails, but closes it.
    EXPECT_EQ(outer.Exit(), -1);
    EXPECT_TRUE(TakeRuntimeError());
    EXPECT_EQ(outer->frame.state, FRAME_EXITED);
    EXPECT_TRUE(outer->exit_stats.released);
    // The inner keeps capturing, into its own arena.
    EXPECT_EQ(objarena_thread_capture(), &inner->frame);
    void *p = PyObject_Malloc(64);
    EXPECT_EQ(arena_block_arena_id(p), inner.id());
    PyObject_Free(p);
    EXPECT_EQ(inner.Exit(), 0);
    EXPECT_FALSE(PyErr_Occurred());
    EXPECT_EQ(objarena_thread_top(), nullptr);
    void *q = PyObject_Malloc(64);
    EXPECT_FALSE(arena_owns(q));
    PyObject_Free(q);
    // Exiting twice, entering twice (exited or active).
    EXPECT_EQ(inner.Exit(), -1);
    EXPECT_TRUE(TakeRuntimeError());
    EXPECT_EQ(outer.Exit(), -1);
    EXPECT_TRUE(TakeRuntimeError());
    EXPECT_EQ(inner.Enter(), -1);
    EXPECT_TRUE(TakeRuntimeError());
    Scope s;
    ASSERT_EQ(s.Enter(), 0);
    EXPECT_EQ(s.Enter(), -1);
    EXPECT_TRUE(TakeRuntimeError());
    EXPECT_EQ(objarena_thread_capture(), &s->frame);  // still active once
    EXPECT_EQ(s.Exit(), 0);
    EXPECT_EQ(objarena_thread_top(), nullptr);
    // Exiting a scope never entered.
    Scope never;
    EXPECT_EQ(never.Exit(), -1);
    EXPECT_TRUE(TakeRuntimeError());
}

TEST(Pause, AllocatesFromTheSavedAllocator) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    Scope s;
    ASSERT_EQ(s.Enter(), 0);
    void *in = PyObject_Malloc(40);
    EXPECT_TRUE(arena_owns(in));
    objarena_frame_t pause;
    std::memset(&pause, 0, sizeof pause);
    ASSERT_EQ(objarena_pause_enter(&pause), 0);
    EXPECT_EQ(objarena_thread_capture(), nullptr);
    void *out = PyObject_Malloc(40);
    ASSERT_NE(out, nullptr);
    EXPECT_FALSE(arena_owns(out));
    // An arena block reallocated during a pause leaves the arena.
    Fill(in, 40, 61);
    in = PyObject_Realloc(in, 80);
    ASSERT_NE(in, nullptr);
    EXPECT_FALSE(arena_owns(in));
    EXPECT_TRUE(Check(in, 40, 61));
    ASSERT_EQ(objarena_pause_exit(&pause), 0);
    EXPECT_EQ(objarena_thread_capture(), &s->frame);
    void *again = PyObject_Malloc(40);
    EXPECT_TRUE(arena_owns(again));
    EXPECT_EQ(arena_block_arena_id(again), s.id());
    PyObject_Free(in);
    PyObject_Free(again);
    ASSERT_EQ(s.Exit(), 0);
    EXPECT_EQ(s->exit_stats.live_blocks_at_release, 0u);
    // The paused allocation is an ordinary block.
    EXPECT_FALSE(arena_owns(out));
    PyObject_Free(out);
    // A pause exits once.
    EXPECT_EQ(objarena_pause_exit(&pause), -1);
    EXPECT_TRUE(TakeRuntimeError());
}

// --------------------------------------------------------------- limit

TEST(Limit, AllocationsFailPastTheLimitAndTheScopeStillExits) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    Scope s(4 * kMiB, 1 * kMiB);
    ASSERT_NE(s.get(), nullptr);
    ASSERT_EQ(s.Enter(), 0);
    std::vector<void *> blocks;
    bool failed = false;
    for (int i = 0; i < 16 * 1024; i++) {  // 16 MiB worth: four times the limit
        void *p = PyObject_Malloc(1024);
        if (!p) {
            failed = true;
            break;
        }
        ASSERT_TRUE(arena_owns(p));
        blocks.push_back(p);
    }
    EXPECT_TRUE(failed) << "the 4 MiB limit was never hit";
    EXPECT_GT(s->frame.alloc_failures, 0u);
    EXPECT_LE(blocks.size() * 1024, 4 * kMiB);
    EXPECT_GE(blocks.size() * 1024, 3 * kMiB);
    arena_stats_t st;
    objarena_scope_stats(s.get(), &st);
    EXPECT_LE(st.peak_mapped, 4 * kMiB);
    for (void *p : blocks)
        PyObject_Free(p);
    ASSERT_EQ(s.Exit(), 0);
    EXPECT_FALSE(PyErr_Occurred());
    void *after = PyObject_Malloc(1024);
    ASSERT_NE(after, nullptr);
    EXPECT_FALSE(arena_owns(after));
    PyObject_Free(after);
}

// Running out of chunks (the region full, the OS refusing) is objarena's
// shortfall: the saved allocator serves the block and the scope counts it.
TEST(Fallback, RefusedChunksComeFromTheSavedAllocator) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    Scope s;
    ASSERT_NE(s.get(), nullptr);
    ASSERT_EQ(s.Enter(), 0);
    char *small = static_cast<char *>(PyObject_Malloc(64));
    ASSERT_NE(small, nullptr);
    ASSERT_TRUE(arena_owns(small));
    memset(small, 0x5A, 64);
    objarena_hook_stats_t h0;
    objarena_hook_get_stats(&h0);

    arena_testing_fail_commit_after(0);  // the next chunk commit fails
    char *big = static_cast<char *>(PyObject_Malloc(2 * kMiB));
    ASSERT_NE(big, nullptr);
    EXPECT_FALSE(arena_owns(big));
    memset(big, 1, 2 * kMiB);
    EXPECT_EQ(s->frame.alloc_fallbacks, 1u);

    arena_testing_fail_commit_after(0);
    char *zeroed = static_cast<char *>(PyObject_Calloc(1024, 1024));
    ASSERT_NE(zeroed, nullptr);
    EXPECT_FALSE(arena_owns(zeroed));
    for (size_t i = 0; i < 1024 * 1024; i += 4093) ASSERT_EQ(zeroed[i], 0);
    EXPECT_EQ(s->frame.alloc_fallbacks, 2u);

    arena_testing_fail_commit_after(0);  // realloc of an arena block: it moves out, contents and all
    char *moved = static_cast<char *>(PyObject_Realloc(small, kMiB));
    ASSERT_NE(moved, nullptr);
    EXPECT_FALSE(arena_owns(moved));
    for (int i = 0; i < 64; i++) ASSERT_EQ(moved[i], 0x5A);
    EXPECT_EQ(s->frame.alloc_fallbacks, 3u);
    objarena_hook_stats_t h1;
    objarena_hook_get_stats(&h1);
    EXPECT_EQ(h1.moved_out, h0.moved_out + 1);
    EXPECT_EQ(s->frame.alloc_failures, 3u);

    // Bad input still fails: an overflowing calloc is not the region's doing.
    EXPECT_EQ(PyObject_Calloc(SIZE_MAX / 2, 4), nullptr);
    EXPECT_EQ(s->frame.alloc_fallbacks, 3u);
    PyObject_Free(big);
    PyObject_Free(zeroed);
    PyObject_Free(moved);
    ASSERT_EQ(s.Exit(), 0);
    arena_testing_fail_commit_after(-1);
}

// ----------------------------------------------------------- survivors

TEST(Survivors, KeepTheirChunkUntilFreed) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    // Earlier tests' exits defer their full collection (collect.c): blocks
    // their phases left in CPython's freelists keep chunks that this scope
    // would adopt. Start from none.
    objarena_collect_caches();
    arena_global_stats_t g0 = Global();
    Scope s;
    ASSERT_EQ(s.Enter(), 0);
    void *dead = PyObject_Malloc(100);
    void *p = PyObject_Malloc(777);
    ASSERT_NE(p, nullptr);
    Fill(p, 777, 31);
    PyObject_Free(dead);
    ASSERT_EQ(s.Exit(), 0);
    EXPECT_EQ(s->exit_stats.chunks_retained, 1u);
    EXPECT_EQ(s->exit_stats.live_blocks_at_release, 1u);
    EXPECT_TRUE(arena_owns(p));
    EXPECT_TRUE(Check(p, 777, 31));
    arena_global_stats_t g1 = Global();
    EXPECT_EQ(g1.chunks_retained, g0.chunks_retained + 1);
    EXPECT_EQ(g1.blocks_retained, g0.blocks_retained + 1);
    PyObject_Free(p);  // outside any scope: the hook routes it to the arena
    EXPECT_FALSE(arena_owns(p));
    arena_global_stats_t g2 = Global();
    EXPECT_EQ(g2.chunks_retained, g0.chunks_retained);
    EXPECT_EQ(g2.blocks_retained, g0.blocks_retained);
    EXPECT_EQ(g2.retained_unmapped_total, g0.retained_unmapped_total + 1);
}

// ---------------------------------------------------------------- faces

// A foreign hook (a profiler) stacked on whatever is installed, counting
// the calls it forwards.
struct CountingWrapper {
    PyMemAllocatorEx below;
    size_t mallocs = 0, frees = 0;
};
CountingWrapper g_wrapper;

void *WrapperMalloc(void *ctx, size_t n) {
    auto *w = static_cast<CountingWrapper *>(ctx);
    w->mallocs++;
    return w->below.malloc(w->below.ctx, n);
}
void *WrapperCalloc(void *ctx, size_t c, size_t n) {
    auto *w = static_cast<CountingWrapper *>(ctx);
    w->mallocs++;
    return w->below.calloc(w->below.ctx, c, n);
}
void *WrapperRealloc(void *ctx, void *p, size_t n) {
    auto *w = static_cast<CountingWrapper *>(ctx);
    return w->below.realloc(w->below.ctx, p, n);
}
void WrapperFree(void *ctx, void *p) {
    auto *w = static_cast<CountingWrapper *>(ctx);
    w->frees++;
    w->below.free(w->below.ctx, p);
}

void InstallWrapper() {
    g_wrapper = CountingWrapper();
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &g_wrapper.below);
    PyMemAllocatorEx a = {&g_wrapper, WrapperMalloc, WrapperCalloc, WrapperRealloc, WrapperFree};
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &a);
}

void RemoveWrapper() { PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &g_wrapper.below); }

TEST(Faces, FullWhileAnyScopeIsActiveThinAfterTheLast) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    EnsureHookInstalled();
    ASSERT_FALSE(HookStats().full_face);
    {
        Scope outer, inner;
        ASSERT_EQ(outer.Enter(), 0);
        EXPECT_TRUE(HookStats().full_face);
        ASSERT_EQ(inner.Enter(), 0);
        ASSERT_EQ(inner.Exit(), 0);
        EXPECT_TRUE(HookStats().full_face) << "the outer scope still captures";
        objarena_frame_t pause = {};
        ASSERT_EQ(objarena_pause_enter(&pause), 0);
        EXPECT_TRUE(HookStats().full_face) << "a pause does not end the scope";
        void *paused = PyObject_Malloc(40);
        EXPECT_FALSE(arena_owns(paused));
        ASSERT_EQ(objarena_pause_exit(&pause), 0);
        void *captured = PyObject_Malloc(40);
        EXPECT_EQ(arena_block_arena_id(captured), outer.id());
        PyObject_Free(captured);
        ASSERT_EQ(outer.Exit(), 0);
        EXPECT_FALSE(HookStats().full_face);
        PyObject_Free(paused);  // a pymalloc block freed through the thin face
    }
    EXPECT_EQ(ObjAllocator().malloc, g_before_install.malloc);
    // A scope that fails to enter (bad option) leaves the thin face alone.
    objarena_scope_options_t o;
    objarena_scope_options_init(&o);
    o.chunk_size = 12345;
    EXPECT_EQ(objarena_scope_new(&o), nullptr);
    PyErr_Clear();
    EXPECT_FALSE(HookStats().full_face);
}

TEST(Faces, FullPassThroughOnRequest) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    EnsureHookInstalled();
    objarena_hook_set_thin_passthrough(false);  // as OBJARENA_PASSTHROUGH=full
    EXPECT_TRUE(HookStats().full_face);
    EXPECT_NE(ObjAllocator().malloc, g_before_install.malloc);
    void *p = PyObject_Malloc(64);
    EXPECT_FALSE(arena_owns(p));
    PyObject_Free(p);
    {
        Scope s;
        ASSERT_EQ(s.Enter(), 0);
        ASSERT_EQ(s.Exit(), 0);
    }
    EXPECT_TRUE(HookStats().full_face) << "the last scope's exit must not bring the thin face back";
    objarena_hook_set_thin_passthrough(true);
    EXPECT_FALSE(HookStats().full_face);
    EXPECT_EQ(ObjAllocator().malloc, g_before_install.malloc);
}

// A hook stacked on the thin face forwards malloc straight to the saved
// allocator: scopes cannot capture under it. Entering one is refused with
// RuntimeError, nothing is pushed, and frees of arena blocks still reach
// the arena through the wrapper and the thin face.
TEST(Faces, ForeignHookOverTheThinFaceRefusesScopes) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    EnsureHookInstalled();
    objarena_collect_caches();  // no earlier phase's freelist blocks share the survivor's chunk
    void *survivor = nullptr;
    {
        Scope s;
        ASSERT_EQ(s.Enter(), 0);
        survivor = PyObject_Malloc(300);
        Fill(survivor, 300, 17);
        ASSERT_EQ(s.Exit(), 0);
    }
    ASSERT_FALSE(HookStats().full_face);
    InstallWrapper();
    EXPECT_FALSE(HookStats().hook_on_top);
    {
        Scope s;
        EXPECT_EQ(s.Enter(), -1);
        EXPECT_TRUE(TakeRuntimeError());
        EXPECT_EQ(objarena_thread_capture(), nullptr);
        EXPECT_EQ(objarena_thread_top(), nullptr);
        EXPECT_EQ(s->frame.state, FRAME_NEW);
        void *p = PyObject_Malloc(64);  // wrapper -> the saved allocator
        EXPECT_FALSE(arena_owns(p));
        PyObject_Free(p);
        EXPECT_FALSE(HookStats().full_face) << "nothing may be installed over the wrapper";
    }
    EXPECT_TRUE(Check(survivor, 300, 17));
    size_t frees = g_wrapper.frees;
    PyObject_Free(survivor);  // wrapper -> thin face -> arena
    EXPECT_EQ(g_wrapper.frees, frees + 1);
    EXPECT_FALSE(arena_owns(survivor));
    RemoveWrapper();
    ASSERT_TRUE(HookStats().hook_on_top);
    Scope again;
    ASSERT_EQ(again.Enter(), 0);
    void *q = PyObject_Malloc(64);
    EXPECT_EQ(arena_block_arena_id(q), again.id());
    PyObject_Free(q);
    ASSERT_EQ(again.Exit(), 0);
}

// A hook stacked on the full face (installed inside a scope) forwards to
// ours: later scopes capture through it, and the face it wraps is kept
// until ours is on top again.
TEST(Faces, ForeignHookOverTheFullFaceKeepsIt) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    EnsureHookInstalled();
    {
        Scope s;
        ASSERT_EQ(s.Enter(), 0);
        InstallWrapper();
        ASSERT_EQ(s.Exit(), 0);
    }
    EXPECT_FALSE(HookStats().hook_on_top);
    EXPECT_TRUE(HookStats().full_face);
    {
        Scope s;
        ASSERT_EQ(s.Enter(), 0);
        size_t mallocs = g_wrapper.mallocs;
        void *p = PyObject_Malloc(128);  // wrapper -> full face -> arena
        EXPECT_EQ(g_wrapper.mallocs, mallocs + 1);
        EXPECT_EQ(arena_block_arena_id(p), s.id());
        PyObject_Free(p);
        ASSERT_EQ(s.Exit(), 0);
    }
    EXPECT_TRUE(HookStats().full_face);
    void *outside = PyObject_Malloc(64);
    EXPECT_FALSE(arena_owns(outside));
    PyObject_Free(outside);
    RemoveWrapper();
    EXPECT_TRUE(HookStats().hook_on_top);
    EXPECT_EQ(objarena_hook_verify_chain(), 0);
    EXPECT_FALSE(HookStats().full_face);
    EXPECT_EQ(ObjAllocator().malloc, g_before_install.malloc);
}

// --------------------------------------------------------- tracemalloc

// Order 1: hook first, tracemalloc stacked on top of it.
TEST(Tracemalloc, StartedAfterTheHook) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    EnsureHookInstalled();
    ASSERT_TRUE(HookStats().hook_on_top);
    ASSERT_FALSE(HookStats().full_face);
    // What the objarena package's guard of tracemalloc.start() does first
    // (the package is not imported here): tracemalloc must wrap the full face.
    objarena_hook_prepare_for_wrapper();
    ASSERT_TRUE(HookStats().full_face);
    ASSERT_EQ(PyRun_SimpleString("import tracemalloc; tracemalloc.start()"), 0);
    EXPECT_FALSE(HookStats().hook_on_top) << "tracemalloc should be on top of the hook";
    EXPECT_FALSE(HookStats().installed_over_tracemalloc);
    void *p = nullptr;
    {
        Scope s;
        ASSERT_EQ(s.Enter(), 0);
        p = PyObject_Malloc(256);  // tracemalloc -> hook -> arena
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(arena_block_arena_id(p), s.id());
        Fill(p, 256, 41);
        ASSERT_EQ(s.Exit(), 0);
        // Entering/exiting must not have re-installed over tracemalloc.
        EXPECT_FALSE(HookStats().hook_on_top);
        EXPECT_EQ(s->exit_stats.live_blocks_at_release, 1u);
        // With no scope left, the face in tracemalloc's saved slot is thin.
        EXPECT_FALSE(HookStats().full_face);
    }
    ASSERT_EQ(PyRun_SimpleString("import tracemalloc; tracemalloc.stop()"), 0);
    objarena_hook_stats_t hs = HookStats();
    EXPECT_TRUE(hs.hook_on_top) << "tracemalloc.stop() must restore the hook it saved";
    EXPECT_FALSE(hs.full_face) << "the face tracemalloc wrapped last";
    EXPECT_EQ(objarena_hook_verify_chain(), 0);  // nothing to repair
    EXPECT_EQ(HookStats().chain_repairs, 0u);
    EXPECT_TRUE(arena_owns(p));
    EXPECT_TRUE(Check(p, 256, 41));
    PyObject_Free(p);
    EXPECT_FALSE(arena_owns(p));
}

// Runs this binary again with only `test` (a DISABLED_ child test) and
// OBJARENA_HOOK_TEST_CHILD=mode: a fresh process whose hook is not installed
// yet (a plain fork() would inherit this process's installed hook, which is
// never removed). Returns the wait status.
int RunChild(const char *test, const char *mode) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    std::string filter = std::string("--gtest_filter=TracemallocFirstChild.") + test;
    std::vector<std::string> env;
    std::string asan = "ASAN_OPTIONS=abort_on_error=1:detect_leaks=0";
    for (char **e = environ; *e; e++) {
        std::string kv(*e);
        std::string key = kv.substr(0, kv.find('='));
        // Keep the child's gtest off the parent's output, sharding and
        // premature-exit files.
        if (key == "XML_OUTPUT_FILE" || key == "GTEST_OUTPUT" || key == "TEST_PREMATURE_EXIT_FILE" ||
            key == "TEST_SHARD_INDEX" || key == "TEST_TOTAL_SHARDS" || key == "TEST_SHARD_STATUS_FILE" ||
            key == "GTEST_SHARD_INDEX" || key == "GTEST_TOTAL_SHARDS" || key == "GTEST_SHARD_STATUS_FILE" ||
            key == "OBJARENA_HOOK_TEST_CHILD")
            continue;
        if (key == "ASAN_OPTIONS") {
            asan = kv + ":abort_on_error=1:detect_leaks=0";
            continue;
        }
        env.push_back(kv);
    }
    env.push_back(asan);
    env.push_back(std::string("OBJARENA_HOOK_TEST_CHILD=") + mode);
    std::vector<char *> envp, argv;
    for (auto &kv : env)
        envp.push_back(&kv[0]);
    envp.push_back(nullptr);
    std::string arg0 = exe, also = "--gtest_also_run_disabled_tests";
    argv = {&arg0[0], &filter[0], &also[0], nullptr};
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        execve(exe, argv.data(), envp.data());
        _exit(127);
    }
    if (pid < 0)
        return -1;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

// A pass-through hook stacked over tracemalloc's, standing for a profiler:
// with it on top, tracemalloc's saved slot cannot be recognised, so the hook
// installs over it (the repair path below) instead of into the slot.
PyMemAllocatorEx foreign_saved;
void *ForeignMalloc(void *, size_t n) { return foreign_saved.malloc(foreign_saved.ctx, n); }
void *ForeignCalloc(void *, size_t c, size_t n) { return foreign_saved.calloc(foreign_saved.ctx, c, n); }
void *ForeignRealloc(void *, void *p, size_t n) { return foreign_saved.realloc(foreign_saved.ctx, p, n); }
void ForeignFree(void *, void *p) { foreign_saved.free(foreign_saved.ctx, p); }

void StackForeignHook() {
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &foreign_saved);
    PyMemAllocatorEx foreign = {nullptr, ForeignMalloc, ForeignCalloc, ForeignRealloc, ForeignFree};
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &foreign);
}

enum class FirstChild { kUnder, kRepaired, kNaive };

// Order 2, in a child: tracemalloc started before the hook.
// kUnder: tracemalloc's hook is on top at install, so the hook goes into
// tracemalloc's saved slot; the C-level _tracemalloc.stop() (the objarena
// package, which guards it, is not imported here) restores the hook itself.
// kRepaired/kNaive: a foreign hook sits over tracemalloc, the hook installs
// over both, and _tracemalloc.stop() restores the allocator tracemalloc
// saved at start -- pymalloc -- over the hook.
void TracemallocFirstChildBody(FirstChild mode) {
    ASSERT_FALSE(objarena_hook_installed()) << "the child must start without the hook";
    ASSERT_EQ(PyRun_SimpleString("import tracemalloc; tracemalloc.start()"), 0);
    if (mode != FirstChild::kUnder)
        StackForeignHook();
    void *p = nullptr;
    {
        Scope s;
        ASSERT_EQ(s.Enter(), 0);  // first entry: installs
        objarena_hook_stats_t hs = HookStats();
        ASSERT_TRUE(hs.installed);
        ASSERT_EQ(hs.installed_under_tracemalloc, mode == FirstChild::kUnder);
        ASSERT_EQ(hs.installed_over_tracemalloc, mode != FirstChild::kUnder);
        ASSERT_EQ(hs.hook_on_top, mode != FirstChild::kUnder);
        p = PyObject_Malloc(512);
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(arena_block_arena_id(p), s.id());
        Fill(p, 512, 51);
        ASSERT_EQ(s.Exit(), 0);  // p survives in a retained chunk
    }
    ASSERT_EQ(PyRun_SimpleString("import _tracemalloc; _tracemalloc.stop()"), 0);
    if (mode == FirstChild::kUnder) {
        objarena_hook_stats_t hs = HookStats();
        EXPECT_TRUE(hs.hook_on_top) << "_tracemalloc.stop() must restore the hook from its slot";
        EXPECT_EQ(objarena_hook_verify_chain(), 0);  // nothing to repair
        EXPECT_EQ(HookStats().chain_repairs, 0u);
    } else {
        ASSERT_FALSE(HookStats().hook_on_top) << "_tracemalloc.stop() restored pymalloc over the hook";
    }
    if (mode == FirstChild::kRepaired) {
        EXPECT_EQ(objarena_hook_verify_chain(), 1);
        objarena_hook_stats_t hs = HookStats();
        EXPECT_TRUE(hs.hook_on_top);
        EXPECT_EQ(hs.chain_repairs, 1u);
        EXPECT_EQ(objarena_hook_verify_chain(), 0);  // idempotent
        ASSERT_TRUE(HookStats().hook_on_top);
    }
    // Naive case (no verify_chain): this free reaches pymalloc's free, which
    // does not know the pointer and hands it to libc free(): glibc aborts
    // ("free(): invalid pointer"), ASan reports a bad free (abort_on_error),
    // or pymalloc misreads the chunk and segfaults. The parent expects the
    // child to die by a signal: this proves that the other runs (and the
    // stacking in order 1) test something that can fail.
    EXPECT_TRUE(Check(p, 512, 51));
    PyObject_Free(p);
    EXPECT_FALSE(arena_owns(p));
    // The hook forwards to pymalloc now and captures as before.
    Scope s2;
    ASSERT_EQ(s2.Enter(), 0);
    void *q = PyObject_Malloc(64);
    EXPECT_EQ(arena_block_arena_id(q), s2.id());
    PyObject_Free(q);
    ASSERT_EQ(s2.Exit(), 0);
    void *r = PyObject_Malloc(64);
    EXPECT_FALSE(arena_owns(r));
    PyObject_Free(r);
}

TEST(TracemallocFirstChild, DISABLED_Under) {
    if (!ChildMode())
        GTEST_SKIP() << "runs only as a child of Tracemalloc.StartedBeforeTheHook*";
    TracemallocFirstChildBody(FirstChild::kUnder);
}

TEST(TracemallocFirstChild, DISABLED_Repaired) {
    if (!ChildMode())
        GTEST_SKIP() << "runs only as a child of Tracemalloc.StartedBeforeTheHook*";
    TracemallocFirstChildBody(FirstChild::kRepaired);
}

TEST(TracemallocFirstChild, DISABLED_Naive) {
    if (!ChildMode())
        GTEST_SKIP() << "runs only as a child of Tracemalloc.StartedBeforeTheHook*";
    TracemallocFirstChildBody(FirstChild::kNaive);
}

TEST(Tracemalloc, StartedBeforeTheHookInstallsIntoItsSlot) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    int status = RunChild("DISABLED_Under", "under");
    ASSERT_NE(status, -1);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child: exited=" << WIFEXITED(status) << " code=" << WEXITSTATUS(status)
        << " signaled=" << WIFSIGNALED(status) << " signal=" << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

TEST(Tracemalloc, StartedBeforeTheHookRepairedByVerifyChain) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    int status = RunChild("DISABLED_Repaired", "repair");
    ASSERT_NE(status, -1);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child: exited=" << WIFEXITED(status) << " code=" << WEXITSTATUS(status)
        << " signaled=" << WIFSIGNALED(status) << " signal=" << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

TEST(Tracemalloc, StartedBeforeTheHookNaiveFreeCrashes) {
    if (ChildMode())
        GTEST_SKIP() << "child process";
    int status = RunChild("DISABLED_Naive", "naive");
    ASSERT_NE(status, -1);
    ASSERT_TRUE(WIFSIGNALED(status)) << "without verify_chain the arena block must reach pymalloc's free and "
                                        "crash; exited="
                                     << WIFEXITED(status) << " code=" << WEXITSTATUS(status);
    int sig = WTERMSIG(status);
    EXPECT_TRUE(sig == SIGABRT || sig == SIGSEGV || sig == SIGBUS) << "signal " << sig;
}

}  // namespace
