/* CPython's object freelists, emptied of arena blocks without a full
 * collection.
 *
 * A float, tuple, list, dict, dict-keys table, context, async-generator
 * helper (and, on 3.10, frame) that dies is kept on its type's freelist for
 * reuse instead of being freed. A phase's dead objects therefore pin their
 * arena chunks after exit, and CPython empties the freelists only at the end
 * of a full collection (whose cost is the whole heap's). This walks the
 * freelists of the main interpreter and moves every entry that is an arena
 * block to the heap: the entry is copied into a block of its own domain
 * from the saved allocator, the copy takes its place in the list and the
 * arena block is freed. The lists keep their length, so the allocations
 * and deaths that follow hit and refill them as they would have, and
 * CPython's gc counts move as under plain pymalloc (emptying them instead
 * doubled a server's generation-0 collections: docs/design.md). If the
 * copy cannot be allocated the entry is freed the way CPython's own clear
 * functions free entries (counted: objarena.info()). Entries that are not
 * arena blocks stay where they are. It reads CPython's internal
 * structures, compiled against the headers of the interpreter the
 * extension is built for
 * (3.10-3.15 default builds; elsewhere it does nothing, and
 * objarena.version_support() says so). On 3.14+ every kind of
 * `struct _Py_freelists` is walked (39 lists on 3.14, 41 on 3.15).
 *
 * GIL held; call with capture off (the frees go through the allocator
 * chain, which routes arena blocks to the arena, and the copies come from
 * it: a copy that still came from an arena is given back and the entry
 * freed instead).
 */
#ifndef OBJARENA_FREELISTS_H
#define OBJARENA_FREELISTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena/arena.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Frees the arena blocks on CPython's object freelists. Entries are visited
 * newest first (freelists are LIFO, so a phase's own dead objects come
 * first); the walk stops early once `until_arena` (may be NULL) has no live
 * block left, since what remains can only pin other arenas' chunks (a full
 * collection clears those). Returns the number of blocks freed. */
uint64_t objarena_free_arena_blocks_on_freelists(const arena_t *until_arena);

/* The same walk over the short lists only: on 3.14+ the lists of at most
 * 128 entries, where a phase's own dead dicts, lists, keys and floats sit
 * (the few long lists hold entries older than any scope and cost ~6 us of
 * cache misses to walk); on 3.10-3.13, whose lists are all short, the whole
 * walk. For the exit's first look (collect.c): cheap enough to run before
 * knowing whether a collection is needed. */
uint64_t objarena_free_arena_blocks_on_short_freelists(const arena_t *until_arena);

/* Frees every arena block (of any arena, retained chunks included) on the
 * freelists and keeps the other entries: after it, an allocation from a
 * freelist cannot return arena memory until an arena block is freed onto
 * one again. paused() calls it at entry. Returns the blocks freed (0 on
 * versions whose freelists are not read). */
uint64_t objarena_trim_freelists(void);

/* Arena entries the walks copied to the heap in place (so the lists keep
 * their length and CPython's gc counts see no death), and those freed
 * instead (the copy's allocation failed, the block was over 4 KiB, or
 * the copy came from an arena because capture was on): process totals, GIL
 * held. */
void objarena_freelist_rehome_stats(uint64_t *rehomed, uint64_t *not_rehomed);

/* Checks the linked freelists' layouts against their counters (tests):
 * the number of lists checked, or -1 with a description in `what`. */
int objarena_freelists_check_layout(char *what, size_t what_size);

/* Does this build read the freelists (false: unsupported CPython version)? */
bool objarena_freelists_supported(void);

#ifdef __cplusplus
}
#endif
#endif
