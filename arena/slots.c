/* First-fit slot placement, a word at a time (contract: slots.h). */
#include "arena/slots.h"

#include <string.h>

void slot_map_init(slot_map_t *m, uint64_t *words, size_t count) {
    memset(m, 0, sizeof *m);
    m->used = words;
    m->count = count;
}

/* The first free (want_free) or taken slot at or after i, or `end` if none
 * below it. Reads one word per 64 slots crossed. */
static size_t next_slot(slot_map_t *m, size_t i, size_t end, bool want_free) {
    while (i < end) {
        m->reads++;
        uint64_t word = m->used[i / 64];
        if (want_free)
            word = ~word;
        word >>= i % 64;
        if (word) {
            i += (size_t)__builtin_ctzll(word);
            return i < end ? i : end;
        }
        i = (i / 64 + 1) * 64;
    }
    return end;
}

/* The first slot of the run of free slots that ends just before `i` (or i
 * if slot i - 1 is taken): where a run through i can begin. */
static size_t free_run_start(const slot_map_t *m, size_t i) {
    while (i > 0) {
        size_t bit = (i - 1) % 64;
        uint64_t word = m->used[(i - 1) / 64] << (63 - bit); /* slots below i in this word, top-aligned */
        if (word)
            return i - (size_t)__builtin_clzll(word);
        i -= bit + 1;
    }
    return 0;
}

static size_t round_up(size_t i, size_t align) { return (i + align - 1) & ~(align - 1); }

static slot_fit_hint_t *hint_for(slot_map_t *m, size_t count, size_t align) {
    for (unsigned k = 0; k < SLOT_FIT_HINTS; k++)
        if (m->hints[k].count == count && m->hints[k].align == align)
            return &m->hints[k];
    slot_fit_hint_t *h = &m->hints[m->next_hint];
    m->next_hint = (m->next_hint + 1) % SLOT_FIT_HINTS;
    *h = (slot_fit_hint_t){.count = count, .align = align, .below = 0};
    return h;
}

size_t slot_map_find(slot_map_t *m, size_t count, size_t align) {
    m->first_free = next_slot(m, m->first_free, m->count, true);
    slot_fit_hint_t *h = hint_for(m, count, align);
    size_t i = h->below > m->first_free ? h->below : m->first_free;
    for (;;) {
        i = round_up(next_slot(m, i, m->count, true), align);
        if (count > m->count || i > m->count - count) {
            h->below = m->count;
            return SIZE_MAX;
        }
        size_t taken = next_slot(m, i, i + count, false);
        if (taken == i + count) {
            h->below = i; /* (the caller takes it next: then nothing fits below i + count) */
            return i;
        }
        i = taken + 1;
    }
}

static void mark(slot_map_t *m, size_t first, size_t count, bool taken) {
    for (size_t i = first; i < first + count;) {
        size_t bit = i % 64;
        size_t n = 64 - bit < first + count - i ? 64 - bit : first + count - i;
        uint64_t bits = (n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1)) << bit;
        if (taken)
            m->used[i / 64] |= bits;
        else
            m->used[i / 64] &= ~bits;
        i += n;
    }
}

void slot_map_take(slot_map_t *m, size_t first, size_t count) {
    mark(m, first, count, true);
    if (first == m->first_free)
        m->first_free = first + count; /* (the next search moves it past taken slots) */
    for (unsigned k = 0; k < SLOT_FIT_HINTS; k++) {
        slot_fit_hint_t *h = &m->hints[k];
        /* A hint inside the taken run stays true at its end: no fit
         * starts below the hint, nor on a taken slot. */
        if (h->count && h->below >= first && h->below < first + count)
            h->below = first + count;
    }
}

void slot_map_give(slot_map_t *m, size_t first, size_t count) {
    mark(m, first, count, false);
    if (first < m->first_free)
        m->first_free = first;
    /* A run through the freed slots may now fit, starting as low as the
     * free run they join. */
    size_t start = free_run_start(m, first);
    for (unsigned k = 0; k < SLOT_FIT_HINTS; k++) {
        slot_fit_hint_t *h = &m->hints[k];
        size_t lowest = start & ~(h->align - 1);
        if (h->count && lowest < h->below)
            h->below = lowest;
    }
}
