/* Limit charges for blocks a scope takes from the saved allocator.
 *
 * A scope's `limit` bounds its arena's mapped bytes. The phase's biggest
 * buffers do not come from the arena: PyMem_Malloc requests over 512 bytes
 * (list item arrays, bytearray buffers on 3.13...) go to the saved allocator,
 * as they do under pymalloc. While a scope with a limit is the thread's
 * innermost capturing frame, the MEM hook charges such blocks to it: a block
 * is recorded here (pointer, size, frame) when allocated, its size added to
 * the frame's charge and taken off the arena's budget; its free (on any
 * thread, while the scope is active) uncharges it; a realloc keeps it with
 * the same frame at the new size, whatever frame is current (a nested scope,
 * a pause); the scope's exit drops what is left (those blocks simply stop
 * being counted).
 *
 * Cost: nothing for scopes without a limit; with one, a hash insert per
 * charged allocation and, while anything is charged, a hash lookup per
 * forwarded MEM free. All calls hold the GIL (the MEM domain requires it),
 * which serializes the table.
 */
#ifndef OBJARENA_CHARGE_H
#define OBJARENA_CHARGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct objarena_frame;

/* Records block p of `size` bytes as charged to frame f. false: no memory
 * for the table (the block is then not charged). */
bool objarena_charge_add(struct objarena_frame *f, void *p, size_t size);

/* If p is charged: removes it, returns its size and stores its frame in
 * *frame; else 0. */
size_t objarena_charge_remove(void *p, struct objarena_frame **frame);

/* Is anything charged at all? (The free path's test.) */
extern size_t objarena_charged_blocks;

/* Drops every charge of frame f (its scope is leaving the stack). */
void objarena_charge_drop_frame(struct objarena_frame *f);

#ifdef __cplusplus
}
#endif
#endif
