#ifndef OBJARENA_TOOLS_SMOKE_ADD_H
#define OBJARENA_TOOLS_SMOKE_ADD_H
#ifdef __cplusplus
extern "C" {
#endif
long smoke_add(long a, long b);
#ifdef __cplusplus
}
#endif
#endif
