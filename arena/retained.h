/* The free space of retained chunks: one owner (retained.c) for how memory
 * around survivors is found, handed back and reused. Internal to the arena
 * library (included by internal.h).
 *
 * What a retained chunk is
 * ------------------------
 * A small chunk that still held live blocks when its arena was released.
 * It belongs to no arena: it sits on the region's retained list until the
 * free of its last live block unmaps it (chunk_free_slow), whenever that
 * happens. Nothing live in it is ever unmapped, moved or written.
 *
 * What is known about its blocks
 * -------------------------------
 * Every small chunk records block starts (block_bits, a start bit per
 * 16-byte granule, set by every bump allocation in every mode) for its
 * whole life.
 * A block ends where the next start is. An arena leaving a chunk or span
 * (arena_leave_current) sets a start with a dead bit at its bump pointer,
 * so the unused rest is a dead block and the last block ends there.
 * Liveness is the dead bit beside each start bit: a start whose dead bit is
 * clear is a live block. Every free sets it (one or, in the word the free
 * reads the block's size from); a free list handing the block out again
 * clears it. A released arena's chunks therefore say exactly which of
 * their blocks live, with no walk at release.
 *
 * What is handed back, and when
 * -----------------------------
 * Pages: at the release, every 4 KiB page of a retained chunk that no live
 * block touches is handed back to the OS (MADV_DONTNEED; PROT_NONE when
 * poisoning), and later frees hand back pages as they empty. page_live
 * (live blocks starting in a page) and page_cross (the block crossing into
 * a page) say which pages are touched; they are conservative where sizes
 * were not known (never less than the truth).
 *
 * What is reused, and when (adoption; never with poison)
 * -----------------------------------------------------
 * A free line is a 128-byte line that no live block touches. A retained
 * chunk whose free lines may be worth taking is on the adoptable list
 * (listed at release and by any later free in it; taken off when a search
 * finds no free line). An adopting arena whose bump pointer runs out takes,
 * before mapping a fresh chunk, a listed chunk of its chunk size and
 * bump-allocates through its runs of free lines ("spans") in address
 * order: holes around survivors as well as handed-back pages, which fault
 * back in as they are written. Rules that keep every survivor intact:
 * - a span is a run of whole free lines: no live block starts or ends in
 *   it; its start and dead bits are cleared when it is taken and a start
 *   is set at its first byte and, with a dead bit, at its end, so blocks on
 *   either side keep their exact ends;
 * - page_live counts stay exact (a span's blocks add to the counts of the
 *   pages they start in); page_cross entries of blocks that crossed into a
 *   span's pages are dropped (those blocks are dead);
 * - ownership is per line (line_owner, filled at a chunk's first adoption
 *   with its arena's id): a span's lines take the adopting arena's id, the
 *   survivors' lines keep theirs. A free asks the line whose block it is:
 *   the open arena's own go to its free lists as in any of its chunks, a
 *   survivor's is marked dead and drops its page's count.
 * - at release only the arena's own lines' live blocks count as its
 *   escapes: the chunk's page counts less its earlier survivors still
 *   live (foreign_live: its live_blocks when adopted, less each
 *   adopted_survivor_free since), so counting costs a sum over pages,
 *   not a walk of the block bits; the chunk is then an ordinary retained
 *   chunk again.
 * Spans are whole lines, so a survivor pins at most the lines it touches
 * (a 100-byte survivor, one or two lines of 128 bytes), not its page or its chunk: a
 * worker whose tasks each keep a little refills the same pages, as
 * pymalloc refills its pools.
 *
 * Locking: everything here runs under the caller's one lock (arena.h); the
 * retained and adoptable lists and the global counters also take the
 * region mutex.
 */
#ifndef OBJARENA_ARENA_RETAINED_H
#define OBJARENA_ARENA_RETAINED_H

/* Detaches a chunk that still holds live blocks from its released arena,
 * moves it to the retained list, hands back its untouched pages and lists
 * it as adoptable. Returns the bytes of pages handed back. With `pool`
 * (the arena's, the default pool included) and room in it (max_warm_bytes, the chunk's whole size
 * counted), the pages stay resident instead and the chunk is the pool's
 * warm retained chunk, adopted first by the pool's next arenas, until an
 * adoption, its unmap or arena_pool_trim (which hands the pages back). */
size_t retained_take(chunk_t *c, struct arena_pool *pool);

/* A pool arena's refill: adopts one of its pool's warm retained chunks
 * with a span of at least `block` bytes. false: none. */
bool adopt_pool_retained(struct arena *a, size_t block);

/* arena_pool_trim's half for warm retained chunks: hands their free pages
 * back and lets them go (they stay retained) until the pool's warm bytes
 * are at most keep_bytes. */
void retained_pool_trim(struct arena_pool *pool, size_t keep_bytes);

/* Takes a retained chunk off the retained (and adoptable) list and out of
 * the retained stats. Region lock held. */
void retained_unlink(chunk_t *c);

/* free of a live block of retained chunk c (small or large): marks it dead,
 * unmaps c with its last block, else hands back the pages that emptied. */
void retained_free(chunk_t *c, void *ptr);

/* At the release of adopted chunk c (whose page counts chunk_count_live
 * just summed into live_blocks): the live blocks of its arena's own lines,
 * its escapes there. Exact, at no cost beyond that sum: the survivors it
 * held when adopted were counted then (foreign_live) and every free of one
 * since came through adopted_survivor_free. */
static inline uint64_t adopted_own_live(const chunk_t *c) {
    arena_assert_internal(c->live_blocks >= c->foreign_live);
    return c->live_blocks > c->foreign_live ? c->live_blocks - c->foreign_live : 0; /* (never wraps) */
}

/* Takes a listed retained chunk with a span of at least `block` bytes into
 * arena a and makes the span current. false: none (a is unchanged). */
bool adopt_retained_chunk(struct arena *a, size_t block);

/* Makes the next span (>= block bytes) of a's current, adopted chunk
 * current. false: none left (a is unchanged). */
bool adopt_next_span(struct arena *a, size_t block);

/* Before the arena's current chunk changes: marks a dead block at its
 * bump pointer (the end of its last block) and at its overflow span's,
 * and how far its side tables were touched (tables_end). */
void arena_leave_current(struct arena *a);

/* A block of more than a line that does not fit what is left of the
 * current span of adopted chunk a->current: bump-allocated from an
 * overflow span of that chunk (the next run of free lines that fits it)
 * instead of abandoning the current span's lines (Immix's overflow
 * allocation). NULL when the chunk has no such run (a is unchanged). */
void *adopt_overflow_alloc(struct arena *a, size_t size, size_t block);

/* free of an earlier phase's survivor in an adopted chunk (arena_free frees
 * the adopting arena's own blocks itself). */
void adopted_survivor_free(chunk_t *c, void *ptr);

/* Takes c off the adoptable list, if on it. Region lock held. */
void adoptable_unlink(chunk_t *c);

#endif
