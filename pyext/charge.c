/* Limit charges for blocks from the saved allocator (charge.h): an
 * open-addressing table keyed by pointer, with tombstones, grown by doubling.
 * Its memory comes from libc (never a Python domain: the hooks use it). */
#include "pyext/charge.h"

#include <stdlib.h>

typedef struct charge {
    void *ptr; /* NULL: empty; TOMBSTONE: removed */
    size_t size;
    struct objarena_frame *frame;
} charge_t;

#define TOMBSTONE ((void *)1)

static charge_t *table;
static size_t capacity; /* power of two, or 0 */
static size_t used;     /* live entries + tombstones */
size_t objarena_charged_blocks;

static size_t slot_of(const void *p) {
    uintptr_t h = (uintptr_t)p >> 4;
    h ^= h >> 17;
    h *= 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 7);
}

static bool grow(void) {
    size_t new_capacity = capacity ? capacity * 2 : 64;
    /* Mostly tombstones: rehash at the same size. */
    if (capacity && objarena_charged_blocks < capacity / 4)
        new_capacity = capacity;
    charge_t *fresh = calloc(new_capacity, sizeof *fresh);
    if (!fresh)
        return false;
    for (size_t i = 0; i < capacity; i++) {
        charge_t *c = &table[i];
        if (c->ptr && c->ptr != TOMBSTONE) {
            size_t j = slot_of(c->ptr) & (new_capacity - 1);
            while (fresh[j].ptr)
                j = (j + 1) & (new_capacity - 1);
            fresh[j] = *c;
        }
    }
    free(table);
    table = fresh;
    capacity = new_capacity;
    used = objarena_charged_blocks;
    return true;
}

bool objarena_charge_add(struct objarena_frame *f, void *p, size_t size) {
    if ((used + 1) * 4 > capacity * 3 && !grow())
        return false;
    size_t i = slot_of(p) & (capacity - 1);
    while (table[i].ptr && table[i].ptr != TOMBSTONE)
        i = (i + 1) & (capacity - 1);
    if (!table[i].ptr)
        used++;
    table[i] = (charge_t){p, size, f};
    objarena_charged_blocks++;
    return true;
}

size_t objarena_charge_remove(void *p, struct objarena_frame **frame) {
    if (!objarena_charged_blocks || !p)
        return 0;
    for (size_t i = slot_of(p) & (capacity - 1); table[i].ptr; i = (i + 1) & (capacity - 1)) {
        if (table[i].ptr == p) {
            size_t size = table[i].size;
            *frame = table[i].frame;
            table[i].ptr = TOMBSTONE;
            objarena_charged_blocks--;
            return size;
        }
    }
    return 0;
}

void objarena_charge_drop_frame(struct objarena_frame *f) {
    if (!objarena_charged_blocks)
        return;
    for (size_t i = 0; i < capacity; i++) {
        if (table[i].ptr && table[i].ptr != TOMBSTONE && table[i].frame == f) {
            table[i].ptr = TOMBSTONE;
            objarena_charged_blocks--;
        }
    }
}
