/* Size classes of reuse mode (the free lists of an arena). A block's class
 * follows from its size, which the region's block-start bitmap gives; there
 * are 255 classes:
 *   1..192    16-byte steps, 16 to 3072 bytes (exact for CPython's objects)
 *   193..255  geometric steps of ~7.3%, up to 256 KiB (a block is rounded up
 *             to its class size so any freed block of the class fits any
 *             request of the class)
 * Requests above ARENA_CLASS_MAX, or above an arena's large threshold, have
 * no class: they are never recycled inside the scope. */
#ifndef OBJARENA_ARENA_SIZE_CLASS_H
#define OBJARENA_ARENA_SIZE_CLASS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ARENA_CLASSES 256
#define ARENA_LINEAR_CLASSES 192
#define ARENA_LINEAR_MAX ((size_t)ARENA_LINEAR_CLASSES * 16)
#define ARENA_CLASS_MAX ((size_t)256 << 10)

/* Bytes of each class (index 0 unused). Filled by arena_size_classes_init. */
extern uint32_t arena_class_size[ARENA_CLASSES];

/* Fills the table; idempotent, called once before the first arena. */
void arena_size_classes_init(void);

/* The class of a geometric-range request (rounded > ARENA_LINEAR_MAX,
 * <= ARENA_CLASS_MAX): the smallest class whose size holds it. */
unsigned arena_size_class_geometric(size_t rounded);

/* The class of a request already rounded to 16 bytes, <= ARENA_CLASS_MAX. */
static inline unsigned arena_size_class(size_t rounded) {
    return rounded <= ARENA_LINEAR_MAX ? (unsigned)(rounded >> 4) : arena_size_class_geometric(rounded);
}

#ifdef __cplusplus
}
#endif
#endif
