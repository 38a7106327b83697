/* Layer 2 of the arena library (arena/README.md): pages and their tables.
 *
 * What the region's side tables say about a range of pages, and the two
 * things done to ranges: handing free pages back to the OS, and zeroing a
 * range's tables (for a chunk going away or coming back). Knows addresses
 * and page indexes, not chunks: the layers above pass ranges.
 *
 * Meaning of the page tables
 * - page_live[k]: live blocks starting in page k (exact: +1 per block
 *   handed out, -1 per free).
 * - page_cross[k]: 1 + the page where the block crossing into page k
 *   starts (0: none); page_cross_live[j]: the block crossing out of page j
 *   may be live (set whenever one is handed out, cleared only by a free
 *   that knows the freed block is that one: a clear flag means dead).
 * - page_state[k]: PAGE_RELEASED once handed back, until taken again.
 * A page is pinned while a live block starts in it or the block crossing
 * into it may be live; only unpinned pages are ever handed back, so nothing
 * reachable is ever discarded.
 *
 * Ownership: the tables belong to the region; callers own the ranges they
 * pass. Thread safety: the caller's one lock (arena.h). Failure: none (the
 * OS calls here do not fail in ways the library can act on).
 *
 * Includes only layer 1 (region.h) and layer 0. */
#ifndef OBJARENA_ARENA_PAGES_H
#define OBJARENA_ARENA_PAGES_H

#include "arena/region.h"

/* Side-table entries read by releases (arena_testing_sieve_reads). Under
 * the caller's one lock. */
extern unsigned long long arena_sieve_reads;

static inline void page_live_inc_index(size_t page) { arena_region.page_live[page]++; }

/* The sum of the live counts of pages [first, first + count). */
uint64_t pages_sum_live(size_t first, size_t count);

/* Records that a bump block [p, p+size) crosses page boundaries. */
void pages_mark_crossing(char *p, size_t size);

/* Hands back the pages of [first, first + count) that are in use and not
 * pinned, in runs (MADV_DONTNEED; PROT_NONE with `poison`): they read back
 * as zeros (or fault) and cost no memory. Returns the bytes handed back.
 * Only pages below marked_end (a page index: the chunk's tables_end) are
 * marked PAGE_RELEASED: past it no block was ever placed, its side tables
 * are all zero and stay so; such pages are discarded unmarked (a warm chunk
 * may hold resident pages of an earlier arena there), so a later release
 * discards them again (a syscall, no memory). Marking them wrote a 1 MiB
 * chunk's page states, and made the unmap zero ~18 KiB of never-touched
 * tables (issue 24: +45 MiB of RSS while 5,000 retained chunks were given
 * back). */
size_t pages_release_free(size_t first, size_t count, size_t marked_end, bool poison);

/* The pages whose side tables must be cleared when a free in page `page`
 * empties it: the page itself and the pages its blocks crossed into
 * (before `end`, exclusive). Returns the count. */
size_t pages_emptied_run(size_t page, size_t end);

/* Zeroes the block bits of granules [first, end). */
void block_bits_clear(size_t first, size_t end);

/* Zeroes the page tables and block bits of [start, start + bytes): what a
 * range that holds no block expects (PAGE_IN_USE is 0, no start, no dead
 * bit). Whole OS pages of big ranges are handed back instead of written. */
void tables_zero(char *start, size_t bytes);

/* Zeroes the line owners of lines [first, first + count) (read lock-free:
 * relaxed atomic stores, or whole pages handed back). */
void line_owners_zero(size_t first, size_t count);

/* Block-bit scans (used to find free lines around survivors). */

/* The live starts of a block bits word: starts whose dead bit is clear. */
static inline uint64_t live_starts(uint64_t word) { return word & BLOCK_START_BITS & ~(word >> 1); }

/* The first live block start at or after granule g, or end. */
size_t next_live_start(size_t g, size_t end);

/* The first block start (live or dead) after granule g, or end: where the
 * block at g ends. */
size_t next_start_after(size_t g, size_t end);

#endif
