/* The byte counts objarena reads from the environment, parsed strictly
 * (arena.h). One parser for all of them: the region and the default pool
 * read their variables with it, and the extension validates the same values
 * at scope entry, so what is accepted never depends on who read it first.
 * Before (issue 24) each reader had its own strtoull: it skipped leading
 * whitespace and wrapped negative numbers (" -1" reserved 64 TiB, a warm
 * budget of -1 meant unlimited) and took 0x hex. */
#include <stdlib.h>

#include "arena/arena.h"

#include <stdint.h>

arena_error_t arena_parse_bytes(const char *text, uint64_t *out) {
    if (!text || *text < '0' || *text > '9')
        return ARENA_EINVAL; /* empty, whitespace, a sign */
    uint64_t v = 0;
    const char *p = text;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return ARENA_EINVAL; /* overflow */
        v = v * 10 + digit;
    }
    int shift = 0;
    switch (*p) {
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    default: break;
    }
    if (shift) {
        p++;
        if (*p == 'i' || *p == 'I') /* KiB, GiB... */
            p++;
        if (*p == 'B' || *p == 'b')
            p++;
    }
    if (*p != '\0' || (shift && v > (UINT64_MAX >> shift)))
        return ARENA_EINVAL;
    *out = v << shift;
    return ARENA_OK;
}

/* A variable's value in [lo, hi]: ARENA_OK (unset or empty: *out untouched),
 * ARENA_EINVAL for anything else. */
static arena_error_t env_bytes(const char *name, uint64_t lo, uint64_t hi, size_t *out) {
    const char *text = getenv(name);
    if (!text || !*text)
        return ARENA_OK;
    uint64_t v;
    if (arena_parse_bytes(text, &v) != ARENA_OK || v < lo || v > hi)
        return ARENA_EINVAL;
    *out = (size_t)v;
    return ARENA_OK;
}

arena_error_t arena_env_reserve_bytes(size_t *out) {
    return env_bytes("OBJARENA_RESERVE_BYTES", ARENA_MIN_RESERVE, ARENA_MAX_RESERVE, out);
}

arena_error_t arena_env_warm_bytes(size_t reserve, size_t *out) {
    return env_bytes("OBJARENA_WARM_BYTES", 0, reserve, out);
}
