/* objarena's environment variables, validated strictly (issue 24).
 *
 * | variable                 | accepted                                        |
 * |--------------------------|-------------------------------------------------|
 * | OBJARENA_RESERVE_BYTES   | bytes or K/M/G/T (arena_parse_bytes), 1 GiB..16 TiB |
 * | OBJARENA_WARM_BYTES      | the same syntax, 0..the region's size           |
 * | OBJARENA_POISON          | 0 or 1                                          |
 * | OBJARENA_PASSTHROUGH     | thin or full                                    |
 *
 * Unset or empty means the default. Anything else (whitespace, a sign, hex,
 * an overflow, a value out of range, another word) is a ValueError naming
 * the variable: OBJARENA_POISON when a scope is made, the others at every
 * scope entry until fixed, never a silent default. All need the GIL.
 */
#ifndef OBJARENA_ENV_H
#define OBJARENA_ENV_H

#include <Python.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Validates OBJARENA_RESERVE_BYTES, OBJARENA_WARM_BYTES and
 * OBJARENA_PASSTHROUGH and configures the region's size from the first
 * (once: the region's size cannot change after). 0, or -1 with ValueError.
 * Once it has succeeded it is not read again (the values are read once, at
 * the first scope). */
int objarena_env_check_at_entry(void);

/* OBJARENA_POISON: 0 and *on, or -1 with ValueError. */
int objarena_env_poison(bool *on);

/* OBJARENA_PASSTHROUGH=full (validated by objarena_env_check_at_entry). */
bool objarena_env_passthrough_full(void);

#ifdef __cplusplus
}
#endif
#endif
