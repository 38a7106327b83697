/* How many collections of each generation the collector has run: read
 * straight from the interpreter's gc state where its layout is known
 * (3.10-3.13 default builds), instead of calling gc.get_stats(), which
 * builds a list of three dicts at every scope entry and exit. */
#ifndef OBJARENA_GC_COUNTS_H
#define OBJARENA_GC_COUNTS_H

#include <stdbool.h>

/* Fills out[0..2] with the main interpreter's collection counts per
 * generation (gc.get_stats()[g]["collections"]); false when this build
 * cannot read them (the caller falls back to gc.get_stats()). GIL held. */
bool objarena_gc_read_collections(long out[3]);

#endif
