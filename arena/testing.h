/* Test-only hooks into the arena library. Not for production callers. */
#ifndef OBJARENA_ARENA_TESTING_H
#define OBJARENA_ARENA_TESTING_H

#ifdef __cplusplus
extern "C" {
#endif

/* After `successful_commits` more successful chunk commits, the next one
 * fails as if the OS refused memory. -1 turns injection off. */
void arena_testing_fail_commit_after(long successful_commits);

#ifdef __cplusplus
}
#endif
#endif
