#define _GNU_SOURCE
#include "arena/os_mem.h"

#include <stdatomic.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena/testing.h"

/* Failure injection: commits left before one fails (-1: never). */
static _Atomic long commits_before_failure = -1;

void arena_testing_fail_commit_after(long successful_commits) {
    atomic_store(&commits_before_failure, successful_commits);
}

static bool injected_failure(void) {
    long left = atomic_load(&commits_before_failure);
    while (left >= 0) {
        if (atomic_compare_exchange_weak(&commits_before_failure, &left, left - 1))
            return left == 0;
    }
    return false;
}

void *os_reserve(size_t size) {
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

bool os_commit(void *p, size_t size) {
    if (injected_failure())
        return false;
    /* MAP_FIXED over our own reservation: fresh zero pages, one syscall. */
    void *q = mmap(p, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    return q != MAP_FAILED;
}

void os_decommit(void *p, size_t size) {
    /* Replacing the mapping frees the pages and keeps the range reserved in
     * one step; PROT_NONE makes any stale access fault. If this fails (it
     * cannot for a range we own) fall back to dropping the pages. */
    void *q = mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (q == MAP_FAILED) {
        madvise(p, size, MADV_DONTNEED);
        mprotect(p, size, PROT_NONE);
    }
}

void *os_alloc_table(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void os_discard(void *p, size_t size) {
    madvise(p, size, MADV_DONTNEED);
}

void os_advise_huge(void *p, size_t size) {
#ifdef MADV_HUGEPAGE
    madvise(p, size, MADV_HUGEPAGE);
#else
    (void)p, (void)size;
#endif
}

size_t os_page_size(void) {
    static size_t cached;
    if (cached == 0)
        cached = (size_t)sysconf(_SC_PAGESIZE);
    return cached;
}
