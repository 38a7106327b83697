/* Tells AddressSanitizer which bytes of a chunk are handed out. Compiled to
 * nothing in ordinary builds. Only the unallocated tail of a chunk is
 * poisoned: freed blocks stay addressable because realloc may copy past the
 * end of a block into its neighbours (arena_block_readable_size). */
#ifndef OBJARENA_ARENA_TRACK_H
#define OBJARENA_ARENA_TRACK_H

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/lsan_interface.h>
#define track_mem_noaccess(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define track_mem_undefined(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
/* Chunk metadata is a process-lifetime pool, partly reachable only through
 * the slot table (an mmap LeakSanitizer does not scan): not a leak. */
#define track_immortal(p) __lsan_ignore_object(p)
#else
#define track_mem_noaccess(p, n) ((void)(p), (void)(n))
#define track_mem_undefined(p, n) ((void)(p), (void)(n))
#define track_immortal(p) ((void)(p))
#endif

#endif
