/* The one thin layer between the arena library and the operating system.
 * Every mmap/madvise goes through here, which is also where tests inject
 * failures (arena/testing.h). */
#ifndef OBJARENA_OS_MEM_H
#define OBJARENA_OS_MEM_H

#include <stdbool.h>
#include <stddef.h>

/* Reserves address space: PROT_NONE, MAP_NORESERVE (costs no memory).
 * NULL on failure. */
void *os_reserve(size_t size);

/* Makes [p, p+size) of a reservation readable and writable with fresh zero
 * pages. false when the OS refuses (or a test injected a failure). */
bool os_commit(void *p, size_t size);

/* Gives the pages of [p, p+size) back to the OS and makes the range
 * PROT_NONE again, keeping it reserved. */
void os_decommit(void *p, size_t size);

/* Zero-filled, readable and writable memory that costs only the pages that
 * are touched (MAP_NORESERVE): for the region's side tables. NULL on failure. */
void *os_alloc_table(size_t size);

/* Drops the pages of [p, p+size) (MADV_DONTNEED): the range stays mapped and
 * reads back as zeros. For page-granular release inside retained chunks. */
void os_discard(void *p, size_t size);

/* Asks for transparent huge pages on [p, p+size) (MADV_HUGEPAGE). */
void os_advise_huge(void *p, size_t size);

/* System page size. */
size_t os_page_size(void);

#endif
