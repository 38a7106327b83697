/* The size-class table of reuse mode (see size_class.h). */
#include "arena/size_class.h"

uint32_t arena_class_size[ARENA_CLASSES];

void arena_size_classes_init(void) {
    if (arena_class_size[1])
        return;
    for (unsigned c = 1; c <= ARENA_LINEAR_CLASSES; c++)
        arena_class_size[c] = c * 16;
    /* ratio^(255-192) = ARENA_CLASS_MAX / ARENA_LINEAR_MAX; no libm needed:
     * grow by the ratio and round up to 16 bytes, then pin the last class. */
    double size = (double)ARENA_LINEAR_MAX;
    const double ratio = 1.07307; /* (262144 / 3072) ** (1 / 63) */
    for (unsigned c = ARENA_LINEAR_CLASSES + 1; c < ARENA_CLASSES; c++) {
        size *= ratio;
        uint32_t bytes = ((uint32_t)size + 15u) & ~15u;
        arena_class_size[c] = bytes > ARENA_CLASS_MAX ? (uint32_t)ARENA_CLASS_MAX : bytes;
    }
    arena_class_size[ARENA_CLASSES - 1] = (uint32_t)ARENA_CLASS_MAX;
}

unsigned arena_size_class_geometric(size_t rounded) {
    unsigned lo = ARENA_LINEAR_CLASSES + 1, hi = ARENA_CLASSES - 1;
    while (lo < hi) { /* smallest class with size >= rounded */
        unsigned mid = (lo + hi) / 2;
        if (arena_class_size[mid] >= rounded)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}
