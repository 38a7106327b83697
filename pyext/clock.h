/* Monotonic seconds, for pacing exit work (trim, full collections). */
#ifndef OBJARENA_CLOCK_H
#define OBJARENA_CLOCK_H

#include <time.h>

static inline double objarena_monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
