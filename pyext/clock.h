/* Monotonic seconds, for pacing exit work (trim, full collections). */
#ifndef OBJARENA_CLOCK_H
#define OBJARENA_CLOCK_H

#include <stdbool.h>
#include <time.h>

static inline double objarena_monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Work paced to a share of wall time (the heap trim, the full collection
 * at exit): allowed again once `pace` times its last duration has passed
 * since it last ended. */
typedef struct objarena_pace {
    double last_end, last_cost; /* monotonic seconds */
} objarena_pace_t;

static inline bool objarena_pace_allows(const objarena_pace_t *p, double now, double pace) {
    return now - p->last_end >= pace * p->last_cost;
}

/* Records a run of the paced work that started at `start` and ends now. */
static inline void objarena_pace_record(objarena_pace_t *p, double start) {
    p->last_end = objarena_monotonic_seconds();
    p->last_cost = p->last_end - start;
}

#endif
