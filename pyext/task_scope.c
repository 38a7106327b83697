/* Task segments: park and resume a task's scopes around its steps. */
#include "pyext/task_scope.h"

#include "pyext/scope.h"

#include <string.h>

static _Thread_local objarena_task_segment_t *tls_task;
static objarena_task_stats_t task_stats; /* changed with the GIL held */

objarena_task_segment_t *objarena_task_current(void) { return tls_task; }

int objarena_task_resume(objarena_task_segment_t *seg) {
    if (seg->running) {
        PyErr_SetString(PyExc_RuntimeError, "objarena: a task's step was resumed while it was running");
        return -1;
    }
    unsigned long me = PyThread_get_thread_ident();
    if (seg->top && seg->thread_id != me) {
        PyErr_SetString(PyExc_RuntimeError,
                        "objarena: a task holding a scope was resumed on another thread than the one that "
                        "entered its scope; a task scope stays on its thread");
        return -1;
    }
    seg->base = objarena_thread_top();
    objarena_thread_attach(seg->top, seg->bottom);
    seg->top = seg->bottom = NULL;
    seg->outer = tls_task;
    seg->running = true;
    tls_task = seg;
    task_stats.steps++;
    return 0;
}

void objarena_task_park(objarena_task_segment_t *seg) {
    if (!seg->running)
        return;
    objarena_frame_t *bottom;
    objarena_frame_t *top = objarena_thread_detach_above(seg->base, &bottom);
    if (bottom) {
        seg->top = top;
        seg->bottom = bottom;
        seg->thread_id = PyThread_get_thread_ident();
        task_stats.parks++;
    } else if (top != seg->base) {
        task_stats.base_lost++;
    }
    seg->base = NULL;
    seg->running = false;
    tls_task = seg->outer;
    seg->outer = NULL;
}

void objarena_task_discard(objarena_task_segment_t *seg, void (*release_owner)(void *owner)) {
    objarena_frame_t *f = seg->top;
    seg->top = seg->bottom = NULL;
    while (f) {
        objarena_frame_t *next = f->parent;
        void *owner = f->owner;
        if (f->arena)
            objarena_scope_orphan((objarena_scope_t *)f); /* a scope's frame is its first member */
        else
            objarena_thread_unlink(f); /* a parked pause: only marked exited */
        task_stats.discarded++;
        if (release_owner && owner)
            release_owner(owner);
        f = next;
    }
}

void objarena_task_get_stats(objarena_task_stats_t *out) { *out = task_stats; }
