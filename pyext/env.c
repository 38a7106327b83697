/* objarena's environment variables (env.h): the byte counts go through the
 * arena's one parser (arena_parse_bytes), the words are compared whole. */
#include "pyext/env.h"

#include <stdlib.h>
#include <string.h>

#include "arena/arena.h"

static const char *env_value(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* ValueError naming the variable, its value quoted (repr: spaces and tabs
 * show), and what it accepts. */
static int bad_value(const char *name, const char *value, const char *expected) {
    PyObject *text = PyUnicode_DecodeFSDefault(value ? value : "");
    if (!text)
        return -1;
    PyErr_Format(PyExc_ValueError, "%s=%R: expected %s", name, text, expected);
    Py_DECREF(text);
    return -1;
}

int objarena_env_check_at_entry(void) {
    static bool done;
    if (done)
        return 0;
    size_t reserve = ARENA_DEFAULT_RESERVE, warm = 0;
    const char *v;
    if (arena_env_reserve_bytes(&reserve) != ARENA_OK)
        return bad_value("OBJARENA_RESERVE_BYTES", env_value("OBJARENA_RESERVE_BYTES"),
                         "bytes or a number with K/M/G/T (powers of 1024, e.g. 4G or 2GiB) from 1 GiB to 16 TiB, "
                         "with no sign or spaces");
    if (arena_env_warm_bytes(arena_region_requested_reserve(), &warm) != ARENA_OK)
        return bad_value("OBJARENA_WARM_BYTES", env_value("OBJARENA_WARM_BYTES"),
                         "bytes or a number with K/M/G/T (e.g. 0 or 4M) from 0 to the region's size "
                         "(OBJARENA_RESERVE_BYTES, default 64 GiB), with no sign or spaces");
    if ((v = env_value("OBJARENA_PASSTHROUGH")) && strcmp(v, "thin") != 0 && strcmp(v, "full") != 0)
        return bad_value("OBJARENA_PASSTHROUGH", v, "'thin' or 'full'");
    if (env_value("OBJARENA_RESERVE_BYTES"))
        (void)arena_region_configure(reserve); /* EINVAL: the region exists already, its size stands */
    done = true;
    return 0;
}

int objarena_env_poison(bool *on) {
    const char *v = env_value("OBJARENA_POISON");
    if (v && strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
        return bad_value("OBJARENA_POISON", v, "0 or 1");
    *on = v && v[0] == '1';
    return 0;
}

bool objarena_env_passthrough_full(void) {
    const char *v = env_value("OBJARENA_PASSTHROUGH");
    return v && strcmp(v, "full") == 0;
}
