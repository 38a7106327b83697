/* An open arena's list of chunks: attaching a fresh or warm chunk, linking
 * an adopted one, detaching one at release. The contract is in
 * arena_state.h. */
#include "arena/arena_state.h"

void arena_chunk_link(struct arena *a, chunk_t *c) {
    c->prev = NULL;
    c->next = a->chunks;
    if (a->chunks)
        a->chunks->prev = c;
    a->chunks = c;
    a->bytes_mapped += c->size;
    if (a->bytes_mapped > a->peak_mapped)
        a->peak_mapped = a->bytes_mapped;
}

void arena_chunk_attach(struct arena *a, chunk_t *c) {
    c->live_blocks = 0;
    c->slow_free = c->kind == CHUNK_LARGE;
    c->retained = false;
    c->warm = false;
    c->arena = a;
    __atomic_store_n(&c->arena_id, a->id, __ATOMIC_RELEASE); /* read lock-free by arena_block_arena_id */
    c->poison = a->poison;
    c->reuse = a->reuse && c->kind == CHUNK_SMALL;
    c->adopted = false;
    if (c->kind == CHUNK_SMALL)
        chunk_reset_tables(c);
    arena_chunk_link(a, c);
    chunk_publish(c, c);
}

void arena_chunk_detach(chunk_t *c) {
    struct arena *a = c->arena;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->chunks = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->bytes_mapped -= c->size;
    c->arena = NULL;
    c->prev = c->next = NULL;
}
