"""The hand-made seeds of hook_fuzzer.cc, one scenario each (printed as hex,
one per line, the format of hook.seeds).

    python3 tests/fuzz/make_hook_seeds.py >> tests/fuzz/hook.seeds

Each method appends one operation of hook_fuzzer.cc's decoder (its switch in
LLVMFuzzerTestOneInput and the functions it calls), with the bytes that
operation consumes. FuzzedDataProvider takes integers from the END of the
input, so the bytes are reversed at the end. Keep this in step with the
decoder: a changed op table makes these scenarios decode as something else.
"""

class S:
    def __init__(s): s.b = []
    def u8(s, v): s.b.append(v & 255); return s
    def rng(s, lo, hi, v):
        r = hi - lo; v -= lo; n = 0
        while n < 8 and (r >> (8 * n)) > 0: n += 1
        for i in reversed(range(n)): s.b.append((v >> (8 * i)) & 255)
        return s
    def size(s, n):
        if n == 0: return s.u8(0)
        for kind, lo, hi in [(1, 1, 64), (3, 65, 512), (4, 513, 4096), (5, 4097, 65536),
                             (6, 65536, 307200), (7, 307200, 3145728)]:
            if lo <= n <= hi: s.u8(kind); return s.rng(lo, hi, n)
        raise ValueError(n)
    # ops
    def new(s, slot, poison=1, reuse=1, mem=0, noadopt=0, strict=0, huge=0, collect=1, trim=0, pool=-1, limit=0, chunk=0):
        flags = poison | reuse << 1 | mem << 2 | noadopt << 3 | strict << 4 | (0xe0 if huge else 0)
        more = collect | trim << 2 | ((8 | pool << 4) if pool >= 0 else 0)
        return s.u8(0).u8(slot).u8(flags).u8(more).u8(limit | chunk << 3)
    def enter(s, slot): return s.u8(1).u8(slot)
    def exit(s, slot): return s.u8(3).u8(slot)
    def exit_top(s): return s.u8(4)
    def pause(s, slot, enter): return s.u8(5).u8(slot).u8(1 if enter else 0)
    def alloc(s, n, mem=False, zero=False):
        s.u8(8 if mem else 6).size(n); return s.u8(1 if zero else 0)
    def realloc(s, block, n, live=True):  # block index into the live map (address order)
        s.u8(9).u8(1)
        if live: s.u8(block)
        return s.size(n)
    def free(s, block): return s.u8(11).u8(block)
    def bulk(s, n, count, mem=False): return s.u8(13).u8(1 if mem else 0).size(n).rng(1, 64, count)
    def bulkfree(s, keep, off): return s.u8(14).rng(2, 64, keep).u8(off)
    def py(s, which, n): return s.u8(15).u8(which).u8(n)
    def gc(s, how): return s.u8(16).u8(how)
    def tracemalloc(s): return s.u8(17).u8(0)
    def failcommit(s, n): return s.u8(17).u8(1).rng(-1, 6, n)
    def pool(s, slot, flags): return s.u8(17).u8(2).u8(slot).u8(flags)
    def freescope(s, slot): return s.u8(18).u8(slot)
    def fresh(s): return s.u8(19)
    def hex(s): return bytes(reversed(s.b)).hex()

seeds = []
def add(s): seeds.append(s.hex())

# 1. one poisoned scope: small and large blocks of both domains, freed after exit
add(S().new(0, mem=1).enter(0).alloc(40).alloc(300, mem=True).alloc(5000).alloc(400000).alloc(700, mem=True)
    .exit_top().free(0).free(0).free(0).free(0).free(0))
# 2. nested scopes exited out of order, blocks of each freed in the other
add(S().new(0).new(1, limit=5).enter(0).alloc(100).enter(1).alloc(200).alloc(100000)
    .exit(0).alloc(50).realloc(0, 3000).exit(1).exit(1).exit(0).free(1).free(0))
# 3. pauses: foreign blocks inside a scope, pause exited out of order
add(S().fresh().alloc(64).pause(0, True).alloc(64).alloc(600, mem=True).fresh().alloc(32)
    .pause(0, False).realloc(0, 128).realloc(1, 10).exit_top().exit_top().pause(0, True).free(0).free(0))
# 4. Python objects escaping, dropped after the exit; cycles; gc
add(S().new(2, collect=0).enter(2).py(1, 200).py(3, 50).py(6, 30).exit_top().py(0, 99).gc(0)
    .py(2, 0).gc(1).py(7, 5).gc(2))
# 5. limits: refused allocations and reallocations, Python under a limit
add(S().new(0, limit=3).enter(0).bulk(20000, 20).alloc(500000).realloc(0, 200000).py(4, 100)
    .py(5, 200).exit_top().bulkfree(2, 0))
# 6. pools: create, scopes of a pool, trim
add(S().pool(0, 1).pool(1, 2).new(0, pool=0).new(1, pool=1, poison=0).enter(0).bulk(3000, 30)
    .exit_top().enter(1).bulk(3000, 30).bulkfree(3, 1).exit_top().pool(0, 0).bulkfree(2, 0))
# 7. tracemalloc started in a scope, stopped outside; blocks across it
add(S().fresh().alloc(100).tracemalloc().alloc(200).py(1, 10).exit_top().realloc(0, 300)
    .py(2, 0).tracemalloc().free(0).free(0))
# 8. injected commit failures: the saved allocator serves the scope
add(S().new(0, chunk=2).failcommit(1).enter(0).bulk(30000, 10).alloc(100000).py(0, 50).exit_top()
    .failcommit(-1).bulkfree(2, 1))
# 9. repeated enter/exit, free of an active scope, invalid options
add(S().new(0).enter(0).enter(0).exit(0).exit(0).enter(0).new(1, chunk=6).new(2, chunk=7)
    .new(3, limit=3, chunk=4).new(4, huge=1).enter(4).alloc(100).freescope(4).free(0).exit(5))
# 10. adoption: survivors across scopes, later scopes allocate around them
add(S().new(0, poison=0).enter(0).bulk(2000, 60).bulkfree(8, 0).exit_top().new(1, poison=0)
    .enter(1).bulk(2000, 60).exit_top().bulkfree(2, 0).bulkfree(2, 0))
# 11. deep nesting and a free-for-all exit order
add(S().fresh().alloc(10).fresh().alloc(20).new(5, mem=1, limit=6).enter(5).alloc(30, mem=True).fresh()
    .alloc(40).pause(1, True).alloc(50).exit(0).exit(2).pause(1, False).exit_top().exit_top()
    .free(2).free(1))
# 12. reuse off and on, realloc chains in place and across arenas
add(S().new(0, reuse=0).new(1, reuse=1).enter(0).alloc(100).realloc(0, 200).realloc(0, 80).enter(1)
    .realloc(0, 400000).realloc(0, 600000).realloc(0, 64).exit_top().realloc(0, 100).exit_top().free(0))
# 13. MEM-domain capture: small captured, big forwarded, realloc across the bound
add(S().new(0, mem=1).enter(0).alloc(500, mem=True).alloc(513, mem=True).realloc(0, 600).realloc(0, 100)
    .alloc(0, mem=True, zero=True).exit_top().realloc(0, 20).bulkfree(2, 0))
if __name__ == "__main__":
    for h in seeds:
        print(h)
