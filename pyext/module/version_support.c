/* objarena.version_support() (version_support.h). */
#define PY_SSIZE_T_CLEAN
#include "pyext/module/version_support.h"

#include <stdio.h>

#include "pyext/layout_check.h"
#include "pyext/module/dict_set.h"

static int set_bool(PyObject *d, const char *key, bool value) {
    return PyDict_SetItemString(d, key, value ? Py_True : Py_False);
}

static int set_version(PyObject *d, const char *key, unsigned long v) {
    char s[24];
    snprintf(s, sizeof s, "%lu.%lu.%lu", (v >> 24) & 0xff, (v >> 16) & 0xff, (v >> 8) & 0xff);
    return set_str(d, key, s);
}

PyObject *objarena_version_support(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    objarena_layout_t l;
    objarena_layout_get(&l);
    unsigned long minor = (l.running_version >> 16) & 0xff;
    bool tested = (l.running_version >> 24) == 3 && minor >= 10 && minor <= 15;
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    if (set_version(d, "python", l.running_version) < 0 || set_version(d, "compiled_for", l.compiled_version) < 0 ||
        set_bool(d, "tested_version", tested) < 0 || set_bool(d, "free_threaded", false) < 0 ||
        set_str(d, "layout", l.layout_ok ? "ok" : "mismatch") < 0 || set_str(d, "layout_detail", l.detail) < 0 ||
        set_bool(d, "freelists", l.freelists) < 0 ||
        set_u64(d, "freelist_lists", l.freelist_lists > 0 ? (uint64_t)l.freelist_lists : 0) < 0 ||
        set_bool(d, "gc_counts", l.gc_counts) < 0 || set_bool(d, "young_exit_collections", l.young_collections) < 0 ||
        set_str(d, "reason", l.reason) < 0 || set_u64(d, "layout_mismatches", l.mismatches) < 0 ||
        set_u64(d, "freelist_walks_skipped", l.freelist_walks_skipped) < 0) {
        Py_DECREF(d);
        return NULL;
    }
    return d;
}

PyObject *objarena_layout_recheck(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"pretend_version", "perturb", NULL};
    unsigned long pretend = 0;
    const char *perturb = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|kz:_layout_recheck", keywords, &pretend, &perturb))
        return NULL;
    if (objarena_layout_check(pretend, perturb) < 0)
        return NULL;
    return objarena_version_support(module, NULL);
}
