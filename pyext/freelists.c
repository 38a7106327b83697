/* CPython's object freelists, emptied of arena blocks (freelists.h).
 *
 * Each walk mirrors the CPython version's own clear function
 * (_PyFloat_ClearFreeList, _PyTuple_ClearFreeList, ...): the same link
 * field and counter; an arena entry is copied to the heap in its place
 * (rehome(): the block is freed with the domain's free below, GC_Del
 * becoming PyObject_Free of the block with its GC header), or, if no copy
 * can be made, unlinked and freed with the same deallocation call as
 * CPython's; entries that are not arena blocks are skipped. Layouts per
 * version, all per interpreter (the freelists of 3.10-3.13 default builds
 * are per interpreter, not per thread):
 *   floats      linked through ob_type                       PyObject_Free
 *   tuples      one list per size, linked through ob_item[0] PyObject_GC_Del
 *   lists, dicts, async-gen values and asends: arrays        PyObject_GC_Del
 *   dict keys   array                                        PyObject_Free (3.13: PyMem_Free)
 *   contexts    linked through ctx_weakreflist               PyObject_GC_Del
 *   frames      3.10 only, linked through f_back             PyObject_GC_Del
 */
#define Py_BUILD_CORE 1
#include <Python.h>

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Entries bigger than this are freed, not copied (freelists hold objects of
 * at most a few hundred bytes; 3.10's frames are the biggest). */
#define REHOME_MAX_BYTES 4096

#if PY_VERSION_HEX >= 0x030E0000 && PY_VERSION_HEX < 0x03100000 && !defined(Py_GIL_DISABLED)
#define OBJARENA_HAVE_GENERIC_FREELISTS 1
#include "internal/pycore_freelist_state.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_object.h"
#elif PY_VERSION_HEX >= 0x030A0000 && PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define OBJARENA_HAVE_FREELISTS 1
#include "internal/pycore_context.h"
#include "internal/pycore_interp.h"
#if PY_VERSION_HEX < 0x030B0000
#include "frameobject.h"
#endif
#endif

#include "pyext/freelists.h"
#include "pyext/layout_check.h"

/* Arena entries copied to the heap, and those freed instead (rehome()). */
static struct {
    uint64_t rehomed, not_rehomed;
} rehome_stats;

void objarena_freelist_rehome_stats(uint64_t *rehomed, uint64_t *not_rehomed) {
    *rehomed = rehome_stats.rehomed;
    *not_rehomed = rehome_stats.not_rehomed;
}

#if defined(OBJARENA_HAVE_FREELISTS) || defined(OBJARENA_HAVE_GENERIC_FREELISTS)
/* One walk over CPython's freelists, either layout below. */
typedef struct walk {
    const arena_t *until; /* stop once it has no live block (NULL: never) */
    uint64_t freed;
} walk_t;

/* A kind of entry and where it lives outside the arena: the bytes before
 * the object (the GC header, 0 for non-objects and untracked types), the
 * domain's allocate/free pair its own dealloc ends in (rehome()'s copy),
 * and that dealloc, as CPython's clear function calls it (the fallback
 * when no copy can be made). */
typedef struct home {
    size_t presize;
    void *(*alloc)(size_t);
    void (*free_block)(void *);
    void (*dealloc)(void *);
} home_t;

/* An arena entry of a freelist, copied to the heap so the list keeps its
 * length: its block (header included) is copied byte for byte into a block
 * of the kind's own domain, allocated with capture off (the hook forwards
 * it to the saved allocator), and the arena block is freed with the
 * domain's free, not with the kind's dealloc: no GC_Del, so CPython's gc
 * counts (gen-0 count, 3.14's young count and heap size) see no death, as
 * they saw no birth when the entry was parked. Why (issue 22): freeing the
 * entries emptied the lists, the allocations that then missed them were
 * counted as births while the deaths that refilled them were not, and a
 * server's task exits doubled its generation-0 collections. Entries are
 * dead (unreachable but from the list), so a copy is the same entry.
 * Returns the copy's object pointer, or NULL (allocation failed, or the
 * block is not a small one): the caller frees the entry as before. */
static void *rehome(void *node, const home_t *h) {
    char *start = (char *)node - h->presize;
    size_t size = arena_block_readable_size(start);
    if (size < h->presize + sizeof(void *) || size > REHOME_MAX_BYTES) {
        rehome_stats.not_rehomed++;
        return NULL;
    }
    char *copy = h->alloc(size);
    if (copy && arena_owns(copy)) { /* capture on (never at exits or pauses): keep the old behaviour */
        h->free_block(copy);
        copy = NULL;
    }
    if (!copy) {
        rehome_stats.not_rehomed++;
        return NULL;
    }
    memcpy(copy, start, size);
    h->free_block(start);
    rehome_stats.rehomed++;
    return copy + h->presize;
}

static bool walk_done(const walk_t *w) { return w->until && arena_live_blocks(w->until) == 0; }

/* The arena entry at *link of a linked list whose link is the pointer at
 * `link_offset` in each node: rehomed in place (the copy carries the link),
 * or unlinked and freed with the kind's dealloc if that fails (*removed
 * set; the caller decrements the list's counter). Returns where the walk
 * goes on: the copy's link, or `link` itself. */
static void **take_linked_entry(void **link, size_t link_offset, const home_t *h, bool *removed, walk_t *w) {
    char *node = *link;
    char *copy = rehome(node, h);
    w->freed++;
    *removed = copy == NULL;
    if (copy) {
        *link = copy;
        return (void **)(copy + link_offset);
    }
    *link = *(void **)(node + link_offset);
    h->dealloc(node);
    return link;
}

/* False when there is nothing to do (the arena has no live block) or the
 * running interpreter is not the layout compiled in (layout_check.h): then
 * a full collection clears the freelists instead, and the skip is counted. */
static bool walk_may_start(const walk_t *w) {
    if (walk_done(w))
        return false;
    if (!objarena_layout_freelists_ok()) {
        objarena_layout_count_skipped_walk();
        return false;
    }
    return true;
}
#endif

#ifdef OBJARENA_HAVE_FREELISTS


static void gc_del(void *p) { PyObject_GC_Del(p); }
static void object_free(void *p) { PyObject_Free(p); }
#if PY_VERSION_HEX >= 0x030D0000
static void mem_free(void *p) { PyMem_Free(p); }
#endif

static const home_t GC_OBJECT = {sizeof(PyGC_Head), PyObject_Malloc, PyObject_Free, gc_del};
static const home_t PLAIN_OBJECT = {0, PyObject_Malloc, PyObject_Free, object_free};
#if PY_VERSION_HEX >= 0x030D0000
static const home_t MEM_BLOCK = {0, PyMem_Malloc, PyMem_Free, mem_free};
#endif

/* A singly linked freelist whose link is the pointer at `link_offset` in
 * each node; `head` is the newest entry (arena entries: take_linked_entry). */
static void walk_linked(void **head, int *numfree, size_t link_offset, const home_t *h, walk_t *w) {
    void **link = head;
    while (*link && !walk_done(w)) {
        char *node = *link;
        bool removed = false;
        if (arena_owns(node))
            link = take_linked_entry(link, link_offset, h, &removed, w);
        else
            link = (void **)(node + link_offset);
        if (removed)
            (*numfree)--;
    }
}

/* An array freelist: entries [0, *numfree), the newest last. At most 80
 * entries: compacted in one pass, order kept. */
static void walk_array(void **items, int *numfree, const home_t *h, walk_t *w) {
    int kept = 0, n = *numfree;
    for (int i = 0; i < n; i++) {
        void *p = items[i];
        if (arena_owns(p)) {
            void *copy = rehome(p, h);
            if (copy)
                items[kept++] = copy;
            else
                h->dealloc(p);
            w->freed++;
        } else {
            items[kept++] = p;
        }
    }
    *numfree = kept;
}

#if PY_VERSION_HEX >= 0x030D0000
#define FL (&interp->object_state.freelists)
#define FLOATS_HEAD ((void **)&FL->floats.items)
#define FLOATS_NUM (&FL->floats.numfree)
#define TUPLE_FIRST_LIST 0
#define TUPLE_LISTS PyTuple_NFREELISTS
#define TUPLE_HEAD(i) ((void **)&FL->tuples.items[i])
#define TUPLE_NUM(i) (&FL->tuples.numfree[i])
#define LISTS ((void **)FL->lists.items), (&FL->lists.numfree)
#define DICTS ((void **)FL->dicts.items), (&FL->dicts.numfree)
#define DICTKEYS ((void **)FL->dictkeys.items), (&FL->dictkeys.numfree)
#define DICTKEYS_HOME (&MEM_BLOCK)
#define CONTEXTS_HEAD ((void **)&FL->contexts.items)
#define CONTEXT_LINK offsetof(PyContext, ctx_weakreflist)
#define CONTEXTS_NUM (&FL->contexts.numfree)
#define AGEN_VALUES ((void **)FL->async_gens.items), (&FL->async_gens.numfree)
#define AGEN_ASENDS ((void **)FL->async_gen_asends.items), (&FL->async_gen_asends.numfree)
#else
#define FLOATS_HEAD ((void **)&interp->float_state.free_list)
#define FLOATS_NUM (&interp->float_state.numfree)
/* 3.10: index = size, and entry 0 holds the empty tuple singleton (not a
 * list); 3.11+: index = size - 1. */
#define TUPLE_FIRST_LIST (PY_VERSION_HEX < 0x030B0000)
#define TUPLE_LISTS PyTuple_MAXSAVESIZE
#define TUPLE_HEAD(i) ((void **)&interp->tuple.free_list[i])
#define TUPLE_NUM(i) (&interp->tuple.numfree[i])
#define LISTS ((void **)interp->list.free_list), (&interp->list.numfree)
#define DICTS ((void **)interp->dict_state.free_list), (&interp->dict_state.numfree)
#define DICTKEYS ((void **)interp->dict_state.keys_free_list), (&interp->dict_state.keys_numfree)
#define DICTKEYS_HOME (&PLAIN_OBJECT)
#define CONTEXTS_HEAD ((void **)&interp->context.freelist)
#define CONTEXT_LINK offsetof(PyContext, ctx_weakreflist)
#if PY_VERSION_HEX < 0x030B0000
#define FRAMES_HEAD ((void **)&interp->frame.free_list)
#define FRAMES_NUM (&interp->frame.numfree)
#define FRAME_LINK offsetof(PyFrameObject, f_back)
#endif
#define CONTEXTS_NUM (&interp->context.numfree)
#define AGEN_VALUES ((void **)interp->async_gen.value_freelist), (&interp->async_gen.value_numfree)
#define AGEN_ASENDS ((void **)interp->async_gen.asend_freelist), (&interp->async_gen.asend_numfree)
#endif

uint64_t objarena_free_arena_blocks_on_freelists(const arena_t *until_arena) {
    walk_t w = {until_arena, 0};
    if (!walk_may_start(&w))
        return 0;
    PyInterpreterState *interp = PyInterpreterState_Main();
    /* Most likely holders first: small tuples, lists, dicts, floats. */
    for (int i = TUPLE_FIRST_LIST; i < TUPLE_LISTS; i++)
        walk_linked(TUPLE_HEAD(i), TUPLE_NUM(i), offsetof(PyTupleObject, ob_item), &GC_OBJECT, &w);
    walk_array(LISTS, &GC_OBJECT, &w);
    walk_array(DICTS, &GC_OBJECT, &w);
    walk_array(DICTKEYS, DICTKEYS_HOME, &w);
    walk_linked(FLOATS_HEAD, FLOATS_NUM, offsetof(PyObject, ob_type), &PLAIN_OBJECT, &w);
    walk_linked(CONTEXTS_HEAD, CONTEXTS_NUM, CONTEXT_LINK, &GC_OBJECT, &w);
    walk_array(AGEN_VALUES, &GC_OBJECT, &w);
    walk_array(AGEN_ASENDS, &GC_OBJECT, &w);
#if PY_VERSION_HEX < 0x030B0000
    walk_linked(FRAMES_HEAD, FRAMES_NUM, FRAME_LINK, &GC_OBJECT, &w);
#endif
    return w.freed;
}

uint64_t objarena_free_arena_blocks_on_short_freelists(const arena_t *until_arena) {
    return objarena_free_arena_blocks_on_freelists(until_arena); /* (every list is short here) */
}

/* The link layouts above are CPython's private business: this checks them
 * against the counters (a chain must end after exactly numfree nodes), so a
 * test run on every interpreter catches a layout this file gets wrong. */
typedef struct linked_list {
    const char *name;
    void *head;
    int numfree;
    size_t link;
} linked_list_t;

static int chain_length(void *head, size_t link_offset, int limit) {
    int n = 0;
    for (char *node = head; node && n <= limit; node = *(void **)(node + link_offset))
        n++;
    return n;
}

int objarena_freelists_check_layout(char *what, size_t what_size) {
    PyInterpreterState *interp = PyInterpreterState_Main();
    linked_list_t lists[TUPLE_LISTS + 3];
    int count = 0;
    for (int i = TUPLE_FIRST_LIST; i < TUPLE_LISTS; i++)
        lists[count++] = (linked_list_t){"tuples", *TUPLE_HEAD(i), *TUPLE_NUM(i), offsetof(PyTupleObject, ob_item)};
    lists[count++] = (linked_list_t){"floats", *FLOATS_HEAD, *FLOATS_NUM, offsetof(PyObject, ob_type)};
    lists[count++] = (linked_list_t){"contexts", *CONTEXTS_HEAD, *CONTEXTS_NUM, CONTEXT_LINK};
#if PY_VERSION_HEX < 0x030B0000
    lists[count++] = (linked_list_t){"frames", *FRAMES_HEAD, *FRAMES_NUM, FRAME_LINK};
#endif
    for (int i = 0; i < count; i++) {
        int n = chain_length(lists[i].head, lists[i].link, lists[i].numfree + 1);
        if (n != lists[i].numfree) {
            snprintf(what, what_size, "%s freelist: numfree %d, chain of %d", lists[i].name, lists[i].numfree, n);
            return -1;
        }
    }
    return count;
}

bool objarena_freelists_supported(void) { return true; }

#elif defined(OBJARENA_HAVE_GENERIC_FREELISTS)

/* 3.14 and 3.15: every kind in one `struct _Py_freelists`
 * (pycore_freelist_state.h), each a `struct _Py_freelist { void *freelist;
 * Py_ssize_t size; }` linked through the entry's first word (for objects the
 * refcount word; ob_type stays intact), newest first; size -1 = disabled.
 * The default build keeps them per interpreter (object_state.freelists).
 * How CPython's _PyObject_ClearFreeLists (Objects/object.c) frees each kind:
 * objects with free_object (tp_free, then a DECREF of the type: a no-op for
 * static types, real for _asyncio's heap-type FutureIter, whose entries keep
 * their type reference), builtin-function objects with PyObject_GC_Del, the
 * non-object kinds (dict keys, writers) with PyMem_Free. object_stack_chunks
 * come from the RAW domain, never from an arena: not walked. */

static void free_object(void *p) {
    PyObject *op = p;
    PyTypeObject *tp = Py_TYPE(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}
static void gc_del(void *p) { PyObject_GC_Del(p); }
static void mem_free(void *p) { PyMem_Free(p); }

/* How CPython's clear function frees a kind's entries, which also says
 * where a copy lives (home_of()). */
typedef enum entry_kind {
    OBJECT_ENTRY,  /* free_object; the pre-header is the type's */
    BUILTIN_ENTRY, /* PyObject_GC_Del (builtin-function objects) */
    MEM_ENTRY,     /* PyMem_Free (not objects: dict keys, writers) */
} entry_kind_t;

typedef struct kind {
    const char *name;
    size_t offset; /* of its struct _Py_freelist in struct _Py_freelists */
    entry_kind_t entries;
} kind_t;

#define KIND(field, how) {#field, offsetof(struct _Py_freelists, field), how}
#define TUPLES(i) {"tuples", offsetof(struct _Py_freelists, tuples) + (i) * sizeof(struct _Py_freelist), OBJECT_ENTRY}
/* Most likely holders of a phase's dead objects first: lists, dicts, their
 * keys, floats, ints, small tuples. */
static const kind_t kinds[] = {
    KIND(lists, OBJECT_ENTRY),
    KIND(dicts, OBJECT_ENTRY),
    KIND(dictkeys, MEM_ENTRY),
    KIND(floats, OBJECT_ENTRY),
    KIND(ints, OBJECT_ENTRY),
#if PY_VERSION_HEX >= 0x030F0000
    KIND(complexes, OBJECT_ENTRY),
#endif
    TUPLES(0),  TUPLES(1),  TUPLES(2),  TUPLES(3),  TUPLES(4),  TUPLES(5),  TUPLES(6),
    TUPLES(7),  TUPLES(8),  TUPLES(9),  TUPLES(10), TUPLES(11), TUPLES(12), TUPLES(13),
    TUPLES(14), TUPLES(15), TUPLES(16), TUPLES(17), TUPLES(18), TUPLES(19),
    KIND(list_iters, OBJECT_ENTRY),
    KIND(tuple_iters, OBJECT_ENTRY),
    KIND(slices, OBJECT_ENTRY),
    KIND(ranges, OBJECT_ENTRY),
    KIND(range_iters, OBJECT_ENTRY),
    KIND(contexts, OBJECT_ENTRY),
    KIND(async_gens, OBJECT_ENTRY),
    KIND(async_gen_asends, OBJECT_ENTRY),
    KIND(futureiters, OBJECT_ENTRY),
    KIND(unicode_writers, MEM_ENTRY),
#if PY_VERSION_HEX >= 0x030F0000
    KIND(bytes_writers, MEM_ENTRY),
#endif
    KIND(pycfunctionobject, BUILTIN_ENTRY),
    KIND(pycmethodobject, BUILTIN_ENTRY),
    KIND(pymethodobjects, OBJECT_ENTRY),
};
#define N_KINDS ((int)(sizeof kinds / sizeof kinds[0]))
/* Lists up to this long are walked in the first pass (objarena_free_...). */
#define SHORT_LIST 128
_Static_assert(PyTuple_MAXSAVESIZE == 20, "tuples[] of pycore_freelist_state.h");

static struct _Py_freelists *main_freelists(void) {
    return &PyInterpreterState_Main()->object_state.freelists;
}

static struct _Py_freelist *freelist_of(struct _Py_freelists *fls, const kind_t *k) {
    return (struct _Py_freelist *)((char *)fls + k->offset);
}

/* An entry's home. An object's type is intact (the link is the refcount
 * word), so its pre-header (GC header, managed dict) is the type's. */
static home_t home_of(void *node, entry_kind_t entries) {
    if (entries == MEM_ENTRY)
        return (home_t){0, PyMem_Malloc, PyMem_Free, mem_free};
    return (home_t){_PyType_PreHeaderSize(Py_TYPE((PyObject *)node)), PyObject_Malloc, PyObject_Free,
                    entries == BUILTIN_ENTRY ? gc_del : free_object};
}

/* Linked through the entry's first word (arena entries: take_linked_entry;
 * a copy carries the link and, for _asyncio's FutureIter, the type
 * reference). */
static void walk_list(struct _Py_freelist *fl, entry_kind_t entries, walk_t *w) {
    if (fl->size <= 0)
        return;
    void **link = &fl->freelist;
    while (*link && !walk_done(w)) {
        void *node = *link;
        bool removed = false;
        if (arena_owns(node)) {
            home_t h = home_of(node, entries);
            link = take_linked_entry(link, 0, &h, &removed, w);
        } else {
            link = (void **)node;
        }
        if (removed)
            fl->size--;
    }
}

static uint64_t walk_freelists(const arena_t *until_arena, int passes) {
    walk_t w = {until_arena, 0};
    if (!walk_may_start(&w))
        return 0;
    struct _Py_freelists *fls = main_freelists();
    /* Short lists first: the walk stops as soon as the arena has no live
     * block, and on 3.14 a few lists are long with entries older than any
     * scope (after startup: 2-tuples ~690, ints ~85, the rest mostly < 80;
     * ~1,250 nodes, 6 us of cache misses to walk them all at every exit,
     * a third of a bare scope's profile around a small job). A phase's own
     * dead dicts, lists, keys and floats are then freed before the long
     * lists are touched, and those are walked only if blocks are left.
     * Budget: 2 x 39 size reads, plus the nodes walked. */
    for (int pass = 0; pass < passes && !walk_done(&w); pass++) {
        for (int i = 0; i < N_KINDS && !walk_done(&w); i++) {
            struct _Py_freelist *fl = freelist_of(fls, &kinds[i]);
            if ((fl->size > SHORT_LIST) == (pass == 1))
                walk_list(fl, kinds[i].entries, &w);
        }
    }
    return w.freed;
}

uint64_t objarena_free_arena_blocks_on_freelists(const arena_t *until_arena) { return walk_freelists(until_arena, 2); }

uint64_t objarena_free_arena_blocks_on_short_freelists(const arena_t *until_arena) {
    return walk_freelists(until_arena, 1);
}

/* Every chain must end after exactly `size` nodes (a disabled list, size
 * -1, must be empty); object_stack_chunks is checked too, though never
 * walked, so that the count is every field of the struct. */
int objarena_freelists_check_layout(char *what, size_t what_size) {
    struct _Py_freelists *fls = main_freelists();
    int count = 0;
    for (int i = 0; i <= N_KINDS; i++) {
        const kind_t stack = KIND(object_stack_chunks, MEM_ENTRY); /* (never walked) */
        const kind_t *k = i < N_KINDS ? &kinds[i] : &stack;
        struct _Py_freelist *fl = freelist_of(fls, k);
        Py_ssize_t want = fl->size < 0 ? 0 : fl->size, n = 0;
        for (void *node = fl->freelist; node && n <= want; node = *(void **)node)
            n++;
        if (n != want) {
            snprintf(what, what_size, "%s freelist: size %zd, chain of %zd", k->name, fl->size, n);
            return -1;
        }
        count++;
    }
    _Static_assert(sizeof(struct _Py_freelists) == (size_t)(N_KINDS + 1) * sizeof(struct _Py_freelist),
                   "a kind of struct _Py_freelists is not walked");
    return count;
}

bool objarena_freelists_supported(void) { return true; }

#else

uint64_t objarena_free_arena_blocks_on_freelists(const arena_t *until_arena) {
    (void)until_arena;
    return 0;
}

uint64_t objarena_free_arena_blocks_on_short_freelists(const arena_t *until_arena) {
    (void)until_arena;
    return 0;
}

int objarena_freelists_check_layout(char *what, size_t what_size) {
    snprintf(what, what_size, "freelists not read on this CPython");
    return 0;
}

bool objarena_freelists_supported(void) { return false; }

#endif

/* ---- paused(): no arena block handed out of a freelist (issue 21) ----
 * Appended apart from the per-version walkers above (3.14/3.15 get their
 * own): whatever the version, trimming is "free every arena block on the
 * freelists, keep the others", i.e. the walk above without an early stop. */
uint64_t objarena_trim_freelists(void) { return objarena_free_arena_blocks_on_freelists(NULL); }
