/* Argument parsing shared by the module's types: sizes, flags, domains and
 * the collect mode. Each returns 0, or -1 with TypeError/ValueError set and
 * *out untouched. */
#ifndef OBJARENA_MODULE_ARGS_H
#define OBJARENA_MODULE_ARGS_H

#include <Python.h>
#include <stdbool.h>

/* A positive int of bytes, or None/absent (0). */
int parse_size(PyObject *value, const char *name, size_t *out);

/* domains: an iterable of "obj" / "mem" ("obj" required; a plain string
 * names one domain). */
int parse_domains(PyObject *value, bool *capture_mem);

/* True or False; absent keeps *out. */
int parse_flag(PyObject *value, const char *name, bool *out);

/* collect=: True ("auto", the default), False (none), "auto", "young",
 * "full" (objarena_collect_mode_t); absent keeps *out. */
int parse_collect(PyObject *value, int *out);

/* The collect modes' names, indexed by objarena_collect_mode_t. */
extern const char *const collect_mode_names[];

#endif
