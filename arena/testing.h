/* Test-only hooks into the arena library. Not for production callers. */
#ifndef OBJARENA_ARENA_TESTING_H
#define OBJARENA_ARENA_TESTING_H

#ifdef __cplusplus
extern "C" {
#endif

/* After `successful_commits` more successful chunk commits, the next one
 * fails as if the OS refused memory. -1 turns injection off. */
void arena_testing_fail_commit_after(long successful_commits);

/* Walks the region's retained and adoptable lists and checks their links
 * (prev/next agree, no cycle, every member flagged as such) and their
 * lengths against the global stats. Returns NULL when all holds, else a
 * static description of the first violation. */
const char *arena_testing_check_lists(void);

/* Side-table entries (per-page live counts and states, block-bit words)
 * that arena releases have read, since the process started, to count their
 * live blocks and find the pages to hand back: the release's sieve, whose
 * cost a test bounds by pages, whatever the phase's block count. */
unsigned long long arena_testing_sieve_reads(void);

/* Words of the slot bitmap that chunk placements (first-fit searches,
 * arena/slots.h) have read since the process started: a test bounds a
 * placement's cost by the holes it looks at, whatever the chunks held. */
unsigned long long arena_testing_slot_reads(void);

#ifdef __cplusplus
}
#endif
#endif
