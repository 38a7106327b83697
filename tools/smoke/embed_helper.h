#ifndef OBJARENA_TOOLS_SMOKE_EMBED_HELPER_H
#define OBJARENA_TOOLS_SMOKE_EMBED_HELPER_H
#ifdef __cplusplus
extern "C" {
#endif
/* Starts the embedded interpreter, evaluates 40 + 2 in Python, finalizes. */
long smoke_embed_eval(void);
#ifdef __cplusplus
}
#endif
#endif
