/* Slot maps: where chunks go in the region. A bitmap of 64 KiB slots (set:
 * mapped or quarantined) with first-fit placement that reads it a word at a
 * time and remembers, per request shape, where the last search stopped.
 *
 * Cost: a search reads the words it crosses (64 slots each) plus a few per
 * hole it looks at, from the higher of the lowest free slot and the shape's
 * hint; a take or a give is in proportion to its slots (a give also reads
 * back to the start of the hole it joins). So placing a chunk costs in
 * proportion to the holes below it that are too small for it, once per
 * shape, not to the chunks the process holds: before, the search started
 * at the lowest free slot and read one bit at a time, and 10,000 open task
 * scopes made every later chunk read 10,000 slots (tests/c/arena_test.cc,
 * ArenaChunks.PlacingAChunkReadsWordsNotEverySlotHeld).
 *
 * Placement is exactly first fit (the lowest start aligned to `align` with
 * `count` free slots): the hints only skip ranges known to hold no fit.
 * Layer 0: no other internal header. Not thread-safe: the region's lock
 * guards its map (region.h). */
#ifndef OBJARENA_ARENA_SLOTS_H
#define OBJARENA_ARENA_SLOTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "No run of `count` free slots starting at a multiple of `align` begins
 * below `below`." A few shapes are asked for (a chunk size, a first chunk
 * size, large mappings of a few sizes), so a few entries, replaced in turn. */
typedef struct slot_fit_hint {
    size_t count, align, below; /* count 0: unused */
} slot_fit_hint_t;

#define SLOT_FIT_HINTS 8

typedef struct slot_map {
    uint64_t *used;    /* bit i: slot i is taken; (count + 63) / 64 words, zero at first */
    size_t count;      /* slots */
    size_t first_free; /* no free slot below it */
    slot_fit_hint_t hints[SLOT_FIT_HINTS];
    unsigned next_hint; /* the entry a new shape replaces */
    unsigned long long reads; /* bitmap words read by searches (a test's bound) */
} slot_map_t;

/* Points `m` at a zeroed bitmap of `count` slots (all free). */
void slot_map_init(slot_map_t *m, uint64_t *words, size_t count);

/* The first slot of the lowest run of `count` (>= 1) free slots that starts
 * at a multiple of `align` (a power of two >= 1), or SIZE_MAX if none. */
size_t slot_map_find(slot_map_t *m, size_t count, size_t align);

/* Marks slots [first, first + count) taken / free (they were free / taken). */
void slot_map_take(slot_map_t *m, size_t first, size_t count);
void slot_map_give(slot_map_t *m, size_t first, size_t count);

#ifdef __cplusplus
}
#endif
#endif
