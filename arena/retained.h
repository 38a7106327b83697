/* Layer 4 of the arena library (arena/README.md): retained chunks.
 *
 * The free space of retained chunks: one owner (retained.c) for how memory
 * around survivors is kept, found and handed back; adopt.c (layer 7, the
 * arena side) takes what this layer finds. Includes only layers 3 (chunk.h)
 * and below: pools and arenas are above it, so a pool's list of warm
 * retained chunks is a retained_warm_t that the pool embeds.
 *
 * What a retained chunk is
 * ------------------------
 * A small chunk that still held live blocks when its arena was released.
 * It belongs to no arena: it sits on the region's retained list until the
 * free of its last live block unmaps it, or parks it in its pool if its
 * free pages were kept resident for one (retained_free), whenever that
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
 * before mapping a fresh chunk, a listed chunk of its chunk size (or, when
 * it is about to map its small first chunk, one of that size first: a task
 * scope's 64 KiB first chunks would otherwise never be refilled) and
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
 *   retained_survivor_free since), so counting costs a sum over pages,
 *   not a walk of the block bits; the chunk is then an ordinary retained
 *   chunk again.
 * Spans are whole lines, so a survivor pins at most the lines it touches
 * (a 100-byte survivor, one or two lines of 128 bytes), not its page or its chunk: a
 * worker whose tasks each keep a little refills the same pages, as
 * pymalloc refills its pools.
 *
 * Ownership: a retained chunk belongs to this layer (the region's retained
 * list) from retained_take until its last block's free unmaps it or an
 * adoption takes it off the lists (retained_adoptable_find,
 * retained_warm_find); a warm list belongs to its pool, its members to
 * this layer. Locking: everything here runs under the caller's one lock
 * (arena.h); the retained and adoptable lists and the global counters also
 * take the region mutex. Failure: nothing here fails; a double free is
 * ignored (asserted in debug builds), never lets a count wrap.
 */
#ifndef OBJARENA_ARENA_RETAINED_H
#define OBJARENA_ARENA_RETAINED_H

#include "arena/chunk.h"

/* A list of retained chunks whose free pages stay resident (a pool's: the
 * pool decides which chunks may join and trims the list). */
typedef struct retained_warm {
    chunk_t *head;
    uint64_t bytes, chunks;  /* their whole size and count */
} retained_warm_t;

/* Moves chunk c, which still holds live blocks and is on no list (its
 * released arena detached it), to the retained list, lists it as
 * adoptable, and hands back its untouched pages; returns their bytes.
 * With `warm` (a pool's list that has room for c: the caller checked), the
 * pages stay resident instead and c joins that list, to be adopted first
 * by the pool's next arenas, until an adoption, its unmap or a trim. */
size_t retained_take(chunk_t *c, retained_warm_t *warm);

/* Hands back the free pages of the chunks of `warm` and lets them go (they
 * stay retained), first ones first, while other_bytes + warm->bytes >
 * keep_bytes. */
void retained_warm_trim(retained_warm_t *warm, size_t other_bytes, size_t keep_bytes);

/* free of a live block of retained chunk c (small or large): marks it dead,
 * and with its last block takes c off every list and unmaps it; else hands
 * back the pages that emptied. A chunk on a warm list keeps its emptied
 * pages resident (the pool counts it whole), and with its last block it is
 * not unmapped here: the warm list it was on is returned, and the caller
 * (a layer above pools) parks c in that list's pool or unmaps it. NULL
 * otherwise. */
retained_warm_t *retained_free(chunk_t *c, void *ptr);

/* free of an earlier phase's survivor in an adopted chunk (its arena frees
 * its own blocks itself): drops its page's live count and the chunk's
 * foreign_live, marks it dead (its lines are free for a later span). */
void retained_survivor_free(chunk_t *c, void *ptr);

/* The shortest span worth taking, in lines. One: any whole line that no
 * live block touches is reused, as pymalloc reuses any free block of a
 * pool; an arena moving between spans costs a refill, and the objects of
 * a phase that runs in short spans are less contiguous (see
 * docs/benchmarks.md for the measured cost). */
#ifndef ADOPT_MIN_SPAN_LINES
#define ADOPT_MIN_SPAN_LINES 1
#endif

/* Lines a span must have to take a block of `block` bytes. */
static inline size_t retained_span_lines(size_t block) {
    size_t lines = (block + ARENA_LINE_SIZE - 1) >> ARENA_LINE_SHIFT;
    return lines > ADOPT_MIN_SPAN_LINES ? lines : ADOPT_MIN_SPAN_LINES;
}

/* The first run of at least `lines` free lines of chunk c at or after
 * `from` (which no live block covers: the chunk's base, or the end of a
 * span taken before). true and its bounds, or false. */
bool retained_span_find(const chunk_t *c, const char *from, size_t lines, char **start, char **end);

/* An adoption's search (bounded: 8 candidates): the first adoptable chunk
 * of `chunk_size` with a run of `lines` free lines, taken off every list
 * and out of the retained stats, with the run's bounds; NULL if none.
 * Candidates with no free line at all leave the adoptable list (a free in
 * them lists them again). */
chunk_t *retained_adoptable_find(size_t chunk_size, size_t lines, char **start, char **end);

/* The same search in a pool's warm list (bounded: 8 chunks). */
chunk_t *retained_warm_find(retained_warm_t *warm, size_t lines, char **start, char **end);

/* At the release of adopted chunk c (whose page counts chunk_count_live
 * just summed into live_blocks): the live blocks of its arena's own lines,
 * its escapes there. Exact, at no cost beyond that sum: the survivors it
 * held when adopted were counted then (foreign_live) and every free of one
 * since came through retained_survivor_free. */
static inline uint64_t adopted_own_live(const chunk_t *c) {
    arena_assert_internal(c->live_blocks >= c->foreign_live);
    return c->live_blocks > c->foreign_live ? c->live_blocks - c->foreign_live : 0; /* (never wraps) */
}

#endif
