/* Layer 7 of the arena library (arena/README.md): adoption, the arena's
 * side of reusing retained chunks' free lines.
 *
 * An adopting arena whose bump pointer runs out takes (from its pool's
 * warm retained list, else from the region's adoptable list: retained.h
 * finds them) a chunk with a run of free lines, and bump-allocates through
 * its runs of free lines ("spans") in address order. The rules that keep
 * every survivor intact are in retained.h; this layer sets the arena's
 * bump pointer, the block bits, line owners and page tables of each span
 * it takes, and marks the end of what it leaves.
 *
 * Ownership: an adopted chunk is on its arena's list (adopted = true)
 * until the release, which hands it back to the retained layer or frees
 * it. Thread safety: the caller's one lock (arena.h). Failure: every
 * function here returns false/NULL and leaves the arena unchanged when
 * there is nothing to adopt.
 *
 * Includes only layers 6 (arena_state.h) and below. */
#ifndef OBJARENA_ARENA_ADOPT_H
#define OBJARENA_ARENA_ADOPT_H

#include "arena/arena_state.h"

/* Before the arena's current chunk changes (a refill, the release): marks
 * a dead block at its bump pointer (the end of its last block) and at its
 * overflow span's, and how far its side tables were touched (tables_end). */
void arena_leave_current(struct arena *a);

/* Makes the next span (>= block bytes) of a's current, adopted chunk
 * current. false: none left (a is unchanged). */
bool adopt_next_span(struct arena *a, size_t block);

/* A pool arena's refill: adopts one of its pool's warm retained chunks
 * with a span of at least `block` bytes. false: none. */
bool adopt_pool_retained(struct arena *a, size_t block);

/* Takes an adoptable retained chunk (of a's first chunk size while a has
 * mapped nothing and the block fits one, else of a's chunk size) with a span of at
 * least `block` bytes into arena a and makes the span current. false:
 * none (a is unchanged). */
bool adopt_retained_chunk(struct arena *a, size_t block);

/* A block of more than a line that does not fit what is left of the
 * current span of adopted chunk a->current: bump-allocated from an
 * overflow span of that chunk (the next run of free lines that fits it)
 * instead of abandoning the current span's lines (Immix's overflow
 * allocation). NULL when the chunk has no such run (a is unchanged). */
void *adopt_overflow_alloc(struct arena *a, size_t size, size_t block);

#endif
