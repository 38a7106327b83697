/* The running interpreter's layout against the compiled one (layout_check.h).
 *
 * What is compared, and why those fields: on 3.14+ CPython publishes, in
 * _PyRuntime.debug_offsets (for out-of-process debuggers), the offsets of a
 * few PyInterpreterState fields and the size of its gc state. The gc state
 * and the fields right after it (sysdict, builtins, imports.modules,
 * _code_object_generation) are the ones an incremental-collector 3.14
 * (3.14.0-3.14.4: a 24 bytes shorter gc state) moves, and object_state (the
 * freelists) lies after them; 3.15 adds the pointer to its ring of
 * collection statistics. sizeof(PyInterpreterState) is not compared: it
 * depends on the core's JIT defines, which an extension does not see
 * (research note: 226232 compiled vs 226240 running on 3.15.2, with every
 * field we read at the same offset). Before any of that, Py_Version: a 3.14
 * older than 3.14.5 is refused by version, since its debug_offsets struct
 * itself may be laid out differently.
 *
 * 3.10-3.13 publish no such offsets for these fields (3.13's table has no gc
 * entries); their layouts are fixed per minor version, so the check there
 * is the minor version and, as on every version, the freelists' chain
 * lengths (freelists.c) before the first walk. */
#define Py_BUILD_CORE 1
#include <Python.h>

#include <stdio.h>
#include <string.h>

#if PY_VERSION_HEX >= 0x030E0000 && PY_VERSION_HEX < 0x03100000 && !defined(Py_GIL_DISABLED)
#define OBJARENA_HAVE_DEBUG_OFFSETS 1
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"
#endif

#include "pyext/freelists.h"
#include "pyext/layout_check.h"

static objarena_layout_t state;
static bool warned;

/* The module runs the check at import; a C API user that never imported
 * it (the embedding tests) gets it at the first question, with any pending
 * exception kept aside and a warning turned error reported as unraisable. */
static void ensure_checked(void) {
    if (state.checked)
        return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (objarena_layout_check(0, NULL) < 0)
        PyErr_WriteUnraisable(NULL);
    PyErr_Restore(type, value, tb);
}

bool objarena_layout_freelists_ok(void) {
    ensure_checked();
    return state.freelists;
}
bool objarena_layout_gc_counts_ok(void) {
    ensure_checked();
    return state.gc_counts;
}
bool objarena_layout_young_collections_ok(void) {
    ensure_checked();
    return state.young_collections;
}
void objarena_layout_count_skipped_walk(void) { state.freelist_walks_skipped++; }
void objarena_layout_get(objarena_layout_t *out) {
    ensure_checked();
    *out = state;
}

static void version_str(unsigned long v, char *out, size_t n) {
    snprintf(out, n, "%lu.%lu.%lu", (v >> 24) & 0xff, (v >> 16) & 0xff, (v >> 8) & 0xff);
}

#ifdef OBJARENA_HAVE_DEBUG_OFFSETS
typedef struct compared {
    const char *name;
    uint64_t running, compiled;
} compared_t;

/* The first differing field, described in `detail`; false if none. */
static bool offsets_differ(const char *perturb, char *detail, size_t n) {
    const _Py_DebugOffsets *d = &_PyRuntime.debug_offsets;
    if (memcmp(d->cookie, _Py_Debug_Cookie, sizeof d->cookie) != 0) {
        snprintf(detail, n, "_PyRuntime.debug_offsets has no debug cookie");
        return true;
    }
    compared_t fields[] = {
        {"version (minor)", d->version >> 16, PY_VERSION_HEX >> 16},
        {"free_threaded", d->free_threaded, 0},
        {"interpreter_state.gc", d->interpreter_state.gc, offsetof(PyInterpreterState, gc)},
        {"interpreter_state.imports_modules", d->interpreter_state.imports_modules,
         offsetof(PyInterpreterState, imports.modules)},
        {"interpreter_state.sysdict", d->interpreter_state.sysdict, offsetof(PyInterpreterState, sysdict)},
        {"interpreter_state.builtins", d->interpreter_state.builtins, offsetof(PyInterpreterState, builtins)},
        {"interpreter_state.code_object_generation", d->interpreter_state.code_object_generation,
         offsetof(PyInterpreterState, _code_object_generation)},
        {"gc.size", d->gc.size, sizeof(struct _gc_runtime_state)},
        {"gc.collecting", d->gc.collecting, offsetof(struct _gc_runtime_state, collecting)},
#if PY_VERSION_HEX >= 0x030F0000
        {"gc.generation_stats", d->gc.generation_stats, offsetof(struct _gc_runtime_state, generation_stats)},
        {"gc.generation_stats_size", d->gc.generation_stats_size, sizeof(struct gc_stats)},
#endif
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        uint64_t running = fields[i].running + (perturb && strcmp(perturb, fields[i].name) == 0 ? 8 : 0);
        if (running != fields[i].compiled) {
            snprintf(detail, n, "_PyRuntime.debug_offsets %s is %llu, compiled %llu", fields[i].name,
                     (unsigned long long)running, (unsigned long long)fields[i].compiled);
            return true;
        }
    }
    return false;
}
#endif

int objarena_layout_check(unsigned long pretend_version, const char *perturb) {
    uint64_t mismatches = state.mismatches, skipped = state.freelist_walks_skipped;
    memset(&state, 0, sizeof state);
    state.mismatches = mismatches;
    state.freelist_walks_skipped = skipped;
    state.checked = true;
    state.compiled_version = PY_VERSION_HEX;
#if PY_VERSION_HEX >= 0x030B0000
    state.running_version = pretend_version ? pretend_version : Py_Version;
#else
    state.running_version = pretend_version ? pretend_version : PY_VERSION_HEX;
#endif
    state.reason = "";
    bool supported = objarena_freelists_supported();
    char running[24], compiled[24];
    version_str(state.running_version, running, sizeof running);
    version_str(state.compiled_version, compiled, sizeof compiled);

    if ((state.running_version >> 16) != (state.compiled_version >> 16)) {
        snprintf(state.detail, sizeof state.detail, "running CPython %s, compiled for %s", running, compiled);
        state.reason = "the running CPython is another minor version than the one compiled for";
    }
#if PY_VERSION_HEX >= 0x030E0000 && PY_VERSION_HEX < 0x030F0000
    else if (state.running_version < 0x030E0500 || state.compiled_version < 0x030E0500) {
        snprintf(state.detail, sizeof state.detail, "running CPython %s, compiled for %s", running, compiled);
        state.reason = "CPython 3.14.0-3.14.4 run the incremental collector, whose gc state (and every "
                       "interpreter field after it) is laid out differently from 3.14.5+";
    }
#endif
#ifdef OBJARENA_HAVE_DEBUG_OFFSETS
    else if (offsets_differ(perturb, state.detail, sizeof state.detail)) {
        state.reason = "the running interpreter's field offsets (_PyRuntime.debug_offsets) differ from "
                       "the compiled ones";
    }
#else
    (void)perturb;
#endif
    if (!*state.detail) {
        state.layout_ok = true;
        state.gc_counts = supported;
        state.young_collections = true;
        state.freelists = supported;
        if (supported) {
            /* Offsets agree; the chains must agree with their counters too
             * (a link field this file gets wrong shows up here, at import,
             * rather than as a bad free at the first exit). */
            char what[160];
            state.freelist_lists = objarena_freelists_check_layout(what, sizeof what);
            if (state.freelist_lists < 0) {
                state.freelists = false;
                state.layout_ok = false;
                snprintf(state.detail, sizeof state.detail, "%s", what);
                state.reason = "a freelist's chain does not match its counter";
            }
        } else {
            state.reason = "this build reads no CPython internals for this version or build";
        }
    }
    if (state.layout_ok)
        return 0;
    state.mismatches++;
    if (warned)
        return 0;
    warned = true;
    return PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                            "objarena: %s (%s); falling back to what is safe: no freelist walk, collection "
                            "counts from gc.get_stats()%s. See objarena.version_support().",
                            state.reason, state.detail,
                            state.young_collections ? "" : ", full collections at scope exit");
}
