/* Task scopes: scopes that belong to an asyncio task, not to a thread.
 *
 * One thread interleaves many tasks, so a scope entered in a task and held
 * across an `await` would capture what the loop and the other tasks
 * allocate until the task resumes. A task segment fixes that: each step of
 * the task runs between objarena_task_resume and objarena_task_park. Every
 * frame (scope or pause) the task pushed and has not popped when the step
 * ends is parked with the segment (taken off the thread's stack as a unit,
 * hook.h) and put back on top of the thread's stack when the next step
 * starts. So a task's scopes capture only its own steps, many are open at
 * once on one thread, and they exit in any order relative to each other
 * (each exits inside a step of its own task, where it is on top).
 *
 * The segment is owned by the step driver (the ScopedCoroutine wrapper of
 * objarena.asyncio); nothing here calls Python or allocates. GIL held.
 */
#ifndef OBJARENA_TASK_SCOPE_H
#define OBJARENA_TASK_SCOPE_H

#include "pyext/hook.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct objarena_task_segment {
    objarena_frame_t *top;        /* parked frames, innermost first (NULL: none) */
    objarena_frame_t *bottom;     /* the outermost parked frame */
    objarena_frame_t *base;       /* while a step runs: the thread's top when it began */
    struct objarena_task_segment *outer; /* the segment whose step was running when this one resumed */
    unsigned long thread_id;      /* thread of the parked frames (0: none parked) */
    bool running;
} objarena_task_segment_t;

/* Starts a step: puts the parked frames back on top of this thread's stack
 * and makes the segment current. RuntimeError (-1) if the step is already
 * running (re-entered) or its frames were parked on another thread: then
 * nothing changes. Budget: ~10 loads/stores plus one per parked frame. */
int objarena_task_resume(objarena_task_segment_t *seg);

/* Ends a step: parks the frames pushed above the step's base (none: the
 * task holds no scope). Budget as resume. If the base frame was unlinked
 * during the step (an outer scope exited out of order inside it), the
 * frames stay where they are and the event is counted. */
void objarena_task_park(objarena_task_segment_t *seg);

/* The segment whose step runs on this thread (NULL: none). */
objarena_task_segment_t *objarena_task_current(void);

/* The task will never run again (its coroutine was dropped unfinished, or
 * its thread is gone): releases its parked scopes without the exit
 * collection (survivors retained as usual) and drops pauses. Calls
 * `release_owner` on each frame's owner (the stack's reference). Any
 * thread; the frames are on no stack. */
void objarena_task_discard(objarena_task_segment_t *seg, void (*release_owner)(void *owner));

typedef struct objarena_task_stats {
    uint64_t steps;           /* resume/park pairs */
    uint64_t parks;           /* steps that parked at least one frame */
    uint64_t discarded;       /* frames released by objarena_task_discard */
    uint64_t base_lost;       /* parks that found their base unlinked */
} objarena_task_stats_t;

void objarena_task_get_stats(objarena_task_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
