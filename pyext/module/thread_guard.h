/* The thread guard: what releases a thread's open scopes and pauses when the
 * thread ends inside them (see thread_guard.c). */
#ifndef OBJARENA_MODULE_THREAD_GUARD_H
#define OBJARENA_MODULE_THREAD_GUARD_H

#include <Python.h>
#include <stdint.h>

/* Readies the guard's type (module init). 0 or -1 with an exception. */
int objarena_thread_guard_ready(void);

/* Puts this thread's guard in place (once per main-interpreter thread
 * state; nothing in a sub-interpreter). Called right after a push;
 * allocates paused, so the dict entry and guard come from the saved
 * allocator. Never fails (an error is cleared: the thread then has no
 * guard, as before it entered a scope). A guard deallocated on a thread
 * other than its own (a fork child, finalization) releases nothing. */
void objarena_ensure_thread_guard(void);

/* Frames released because their thread ended with them open (info()). */
uint64_t objarena_frames_orphaned(void);

/* Guards deallocated on another thread than theirs (fork child, Py_Finalize
 * clearing daemon threads), which released nothing (info()). */
uint64_t objarena_thread_guards_foreign(void);

#endif
