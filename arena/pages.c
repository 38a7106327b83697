/* Pages and their tables: live-count sums, page crossings, handing free
 * pages back, zeroing a range's tables, block-bit scans. The contract is
 * in pages.h. */
#include "arena/pages.h"

#include <string.h>

#include "arena/os_mem.h"
#include "arena/testing.h"
#include "arena/track.h"

unsigned long long arena_sieve_reads;

unsigned long long arena_testing_sieve_reads(void) { return arena_sieve_reads; }

uint64_t pages_sum_live(size_t first, size_t count) {
    uint64_t live = 0;
    arena_sieve_reads += count;
    for (size_t k = first; k < first + count; k++)
        live += arena_region.page_live[k];
    return live;
}

void pages_mark_crossing(char *p, size_t size) {
    size_t start = region_page_index(p), last = region_page_index(p + size - 1);
    for (size_t k = start + 1; k <= last; k++)
        arena_region.page_cross[k] = (uint32_t)(start + 1);
    arena_region.page_cross_live[start] = 1;
}

/* A page must stay while a live block starts in it, or while the block
 * crossing into it may be live: its start page has live blocks and that
 * block was not seen freed (pages.h). */
static bool page_pinned(size_t page) {
    if (arena_region.page_live[page])
        return true;
    uint32_t cross = arena_region.page_cross[page];
    return cross && arena_region.page_live[cross - 1] && arena_region.page_cross_live[cross - 1];
}

size_t pages_release_free(size_t first, size_t count, size_t marked_end, bool poison) {
    size_t released = 0, run = 0;
    arena_sieve_reads += count;
    for (size_t k = first; k <= first + count; k++) {
        bool free_page = k < first + count && arena_region.page_state[k] != PAGE_RELEASED && !page_pinned(k);
        if (free_page) {
            run++;
            continue;
        }
        if (run) {
            char *p = region_page_address(k - run);
            size_t bytes = run << ARENA_PAGE_SHIFT;
            track_mem_undefined(p, bytes);
            if (poison)
                os_decommit(p, bytes); /* PROT_NONE: a stale access faults */
            else
                os_discard(p, bytes);
            if (k - run < marked_end)
                memset(arena_region.page_state + (k - run), PAGE_RELEASED, (k < marked_end ? k : marked_end) - (k - run));
            released += bytes;
            run = 0;
        }
    }
    return released;
}

size_t pages_emptied_run(size_t page, size_t end) {
    size_t next = page + 1;
    while (next < end && arena_region.page_cross[next] == page + 1)
        next++;
    return next - page;
}

/* Zeroes [p, p + bytes) of a side table (the tables are MAP_NORESERVE
 * anonymous memory). A range with TABLE_DISCARD_MIN bytes of whole OS pages
 * (the bitmap of a chunk of 8 MiB or more, the page tables of one of 64 MiB
 * or more) hands them back: they read back as zeros and cost nothing until
 * touched, so big chunks' tables do not stay resident after the chunk is
 * gone. Smaller ranges are written: a 1 MiB chunk's map and unmap cost no
 * syscall and no fault on its 12 KiB of tables. */
#define TABLE_DISCARD_MIN ((size_t)64 << 10)

/* The whole OS pages [*first, *last) of [start, end) that table_zero hands
 * back; false (and an empty range at end) when they are too few. */
static bool table_discard_range(char *start, char *end, char **first, char **last) {
    *first = (char *)(((uintptr_t)start + ARENA_PAGE_SIZE - 1) & ~(uintptr_t)(ARENA_PAGE_SIZE - 1));
    *last = (char *)((uintptr_t)end & ~(uintptr_t)(ARENA_PAGE_SIZE - 1));
    if (*first < *last && (size_t)(*last - *first) >= TABLE_DISCARD_MIN)
        return true;
    *first = *last = end;
    return false;
}

/* memset(p, 0, bytes), but a range already zero is only read: a table
 * page no chunk ever wrote stays the kernel's shared zero page instead of
 * becoming resident (issue 24: the page tables of 5,000 retained chunks'
 * first lines, where no block crossed a page, cost 5 MiB at their unmap). */
static void zero_unless_zero(char *p, size_t bytes) {
    size_t i = 0;
    for (; i < bytes && ((uintptr_t)(p + i) & 7); i++)
        if (p[i])
            goto write;
    for (; i + 8 <= bytes; i += 8) { /* (a word at a time: the tables are 8-byte aligned) */
        uint64_t w;
        memcpy(&w, p + i, sizeof w);
        if (w)
            goto write;
    }
    for (; i < bytes; i++)
        if (p[i])
            goto write;
    return;
write:
    memset(p + i, 0, bytes - i);
}

static void table_zero(void *p, size_t bytes) {
    char *start = p, *end = start + bytes, *first, *last;
    if (!table_discard_range(start, end, &first, &last)) {
        zero_unless_zero(start, bytes);
        return;
    }
    zero_unless_zero(start, (size_t)(first - start));
    os_discard(first, (size_t)(last - first));
    zero_unless_zero(last, (size_t)(end - last));
}

void block_bits_clear(size_t first, size_t end) {
    while (first < end && (first & 31)) {
        *block_bits_word(first) &= ~((uint64_t)3 << block_bits_shift(first));
        first++;
    }
    if (end - first >= 32) {
        memset(block_bits_word(first), 0, ((end - first) >> 5) * sizeof(uint64_t));
        first += (end - first) & ~(size_t)31;
    }
    for (; first < end; first++)
        *block_bits_word(first) &= ~((uint64_t)3 << block_bits_shift(first));
}

/* line_owner is read lock-free (arena_block_arena_id, through a chunk
 * pointer that may be going stale): zeroed with relaxed atomic stores, its
 * whole pages handed back when there are enough of them (table_zero's rule;
 * the kernel's zero pages race with nothing a reader could misread: a
 * reader of a block of this chunk is racing with the block's free). */
void line_owners_zero(size_t first, size_t count) {
    char *start = (char *)(arena_region.line_owner + first), *end = start + count * sizeof(uint32_t), *lo, *hi;
    if (table_discard_range(start, end, &lo, &hi))
        os_discard(lo, (size_t)(hi - lo));
    for (size_t k = first; k < first + count; k++) {
        char *entry = (char *)(arena_region.line_owner + k);
        if (entry < lo || entry >= hi)
            line_owner_set(k, 0);
    }
}

_Static_assert(PAGE_IN_USE == 0, "zeroed page_state means in use");
void tables_zero(char *start, size_t bytes) {
    size_t first = region_page_index(start), count = (bytes + ARENA_PAGE_SIZE - 1) >> ARENA_PAGE_SHIFT;
    table_zero(arena_region.page_live + first, count * sizeof(uint16_t));
    table_zero(arena_region.page_state + first, count);
    table_zero(arena_region.page_cross + first, count * sizeof(uint32_t));
    table_zero(arena_region.page_cross_live + first, count);
    size_t words = (bytes + (32 << ARENA_GRANULE_SHIFT) - 1) >> (ARENA_GRANULE_SHIFT + 5); /* 32 granules a word */
    table_zero(block_bits_word(region_granule_index(start)), words * sizeof(uint64_t));
}

size_t next_live_start(size_t g, size_t end) {
    while (g < end) {
        uint64_t live = live_starts(*block_bits_word(g)) & (~(uint64_t)0 << block_bits_shift(g));
        if (live) {
            size_t n = (g & ~(size_t)31) + ((size_t)__builtin_ctzll(live) >> 1);
            return n < end ? n : end;
        }
        g = (g | 31) + 1;
    }
    return end;
}

size_t next_start_after(size_t g, size_t end) {
    for (g++; g < end;) {
        uint64_t starts = *block_bits_word(g) & BLOCK_START_BITS & (~(uint64_t)0 << block_bits_shift(g));
        if (starts) {
            size_t n = (g & ~(size_t)31) + ((size_t)__builtin_ctzll(starts) >> 1);
            return n < end ? n : end;
        }
        g = (g | 31) + 1;
    }
    return end;
}
