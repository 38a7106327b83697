/* Assertions in levels, compiled out of release builds.
 *   ARENA_DEBUG=0 (default): none.
 *   ARENA_DEBUG>=1: arena_assert_internal -- cheap invariants on every path.
 *   ARENA_DEBUG>=2: arena_assert_expensive -- walks of lists and tables. */
#ifndef OBJARENA_ARENA_ASSERT_H
#define OBJARENA_ARENA_ASSERT_H

#ifndef ARENA_DEBUG
#define ARENA_DEBUG 0
#endif

void arena_assert_fail(const char *expr, const char *file, int line, const char *func);

#if ARENA_DEBUG >= 1
#define arena_assert_internal(expr) \
    ((expr) ? (void)0 : arena_assert_fail(#expr, __FILE__, __LINE__, __func__))
#else
#define arena_assert_internal(expr) ((void)0)
#endif

#if ARENA_DEBUG >= 2
#define arena_assert_expensive(expr) arena_assert_internal(expr)
#else
#define arena_assert_expensive(expr) ((void)0)
#endif

#endif
