"""Concurrency stress, with poison on (OBJARENA_POISON=1: any use of memory
objarena gave back faults at once).

- 8 threads enter and leave scopes (bare, nested, pool, paused inside a
  scope) for a bounded time, hand objects to each other through queues and
  free them on other threads (in and out of their own scopes), keep some
  across scopes and drop them later; the main thread's SIGALRM handler
  allocates and frees while whatever scope it interrupted is open.
- os.fork() inside a scope: children allocate, free, check the parent's
  objects and exit (os._exit, and SystemExit unwinding the scope).
- multiprocessing with fork and with spawn, started from inside a scope.

Every object carries what it must contain and is checked by whoever frees it.
OBJARENA_STRESS_SECONDS sets the threads' run time (default 3 s; the long
mode, e.g. 600, is by hand: docs/concurrency.md).
"""
import os

from conftest import run_child

SECONDS = float(os.environ.get("OBJARENA_STRESS_SECONDS", "3"))

THREADS = r"""
import gc, os, queue, random, signal, sys, threading, time
import objarena

SECONDS = float(sys.argv[1])
N = 8
queues = [queue.Queue() for _ in range(N)]
pool = objarena.Pool(chunk_size=65536)
deadline = time.monotonic() + SECONDS
errors = []
counts = [0] * N
received = [0] * N

def make(seed):
    return {"seed": seed, "words": [f"{seed}-{k}" for k in range(seed % 13)],
            "pair": (seed, float(seed) / 3), "blob": str(seed).encode() * (seed % 7)}

def check(obj):
    s = obj["seed"]
    if obj != make(s):
        errors.append(f"corrupted object {s}: {obj!r}"[:300])

def drain(idx):
    q = queues[idx]
    while True:
        try:
            obj = q.get_nowait()
        except queue.Empty:
            return
        check(obj)
        received[idx] += 1
        del obj                        # freed here: another thread's arena, open or not

def phase(idx, rng, keep):
    seeds = [rng.randrange(1 << 30) for _ in range(rng.randrange(20, 200))]
    items = [make(s) for s in seeds]
    for obj in items[::5]:
        queues[rng.randrange(N)].put(obj)
    if rng.random() < 0.1:
        keep.append(items[0])          # escapes the scope, dropped later
    drain(idx)
    counts[idx] += len(items)
    for obj in items[::17]:
        check(obj)

def worker(idx):
    rng = random.Random(idx)
    keep = []
    try:
        while time.monotonic() < deadline:
            kind = rng.randrange(4)
            if kind == 0:
                with objarena.scope():
                    phase(idx, rng, keep)
            elif kind == 1:
                with objarena.scope(chunk_size=65536):
                    phase(idx, rng, keep)
                    with objarena.scope(reuse=False):
                        phase(idx, rng, keep)
                    phase(idx, rng, keep)
            elif kind == 2:
                with pool.scope():
                    phase(idx, rng, keep)
            else:
                with objarena.scope():
                    with objarena.paused():
                        phase(idx, rng, keep)
                    phase(idx, rng, keep)
            drain(idx)
            if len(keep) > 20:
                for obj in keep:
                    check(obj)
                del keep[:10]
        for obj in keep:
            check(obj)
    except BaseException as e:
        errors.append(f"thread {idx}: {type(e).__name__}: {e}")

# The main thread is worker 0, interrupted by SIGALRM every 2 ms; the handler
# allocates (in whatever scope is open) and frees what earlier handlers made.
signal_objects = []
signals = [0]
def on_alarm(signum, frame):
    signals[0] += 1
    signal_objects.append(make(signals[0]))
    if len(signal_objects) > 50:
        for obj in signal_objects[:25]:
            check(obj)
        del signal_objects[:25]
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)

threads = [threading.Thread(target=worker, args=(i,)) for i in range(1, N)]
for t in threads:
    t.start()
worker(0)
for t in threads:
    t.join()
signal.setitimer(signal.ITIMER_REAL, 0, 0)
for i in range(N):
    drain(i)
for obj in signal_objects:
    check(obj)
assert not errors, errors[:5]
sent = sum(counts)
info = objarena.info()
assert info["scope_depth"] == 0 and not info["capturing"], info
del signal_objects
pool.close()
gc.collect()
print("DONE", sent, sum(received), signals[0], objarena.info()["quarantined_bytes"] > 0)
"""


def test_threads_queues_signals_with_poison():
    out = run_child(THREADS, poison=True, timeout=SECONDS * 20 + 120, args=[str(SECONDS)]).check()
    line = [l for l in out.stdout.splitlines() if l.startswith("DONE")][0]
    _, made, received, signals, quarantined = line.split()
    assert int(made) > 1000 and int(received) > 100, line
    assert int(signals) > 0, line      # the handler did run inside scopes
    assert quarantined == "True", line  # poison was on


FORK = r"""
import gc, os, sys
import objarena

def fresh(i):
    return f"{i}-{'x' * (i % 40)}"

made_before = [fresh(i) for i in range(2000)]
statuses = []
with objarena.scope() as phase:
    data = [fresh(i) for i in range(5000)]
    for round in range(6):
        pid = os.fork()
        if pid == 0:
            # The child inherits the open scope: allocate, free, check, exit.
            more = [fresh(i) for i in range(20000)]
            del more[::2]
            ok = all(d == fresh(i) for i, d in enumerate(data[:5000]))
            ok = ok and all(m == fresh(i) for i, m in enumerate(made_before))
            with objarena.scope(reuse=False):
                inner = {i: fresh(i) for i in range(3000)}
                ok = ok and inner[2999] == fresh(2999)
            if round % 2:
                os._exit(0 if ok else 3)
            # SystemExit unwinds the scope, then the interpreter finalizes
            # with the arena's survivors around.
            raise SystemExit(0 if ok else 4)
        statuses.append(os.waitpid(pid, 0)[1])
        data.extend(fresh(i) for i in range(100))
assert all(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses), statuses
assert data[:5000] == [fresh(i) for i in range(5000)]
print("DONE", len(statuses))
"""


def test_fork_inside_a_scope_children_allocate_free_and_exit():
    out = run_child(FORK, poison=True, timeout=180).check()
    assert "DONE 6" in out.stdout, out.stdout


MULTIPROCESSING = r"""
import multiprocessing as mp, sys, zlib
import objarena

def blobs(n):
    return [bytes([i % 251]) * (100 + i) for i in range(n)]

expected = [zlib.crc32(b) for b in blobs(400)]
results = {}
with objarena.scope() as phase:
    for method in ("fork", "spawn"):
        data = blobs(400)
        with mp.get_context(method).Pool(2) as workers:
            results[method] = workers.map(zlib.crc32, data, chunksize=20)
        assert data == blobs(400)
        with objarena.scope(reuse=False):
            # (a nested scope, a process started and joined inside it)
            p = mp.get_context(method).Process(target=zlib.crc32, args=(b"x" * 1000,))
            p.start()
            p.join()
            assert p.exitcode == 0, (method, p.exitcode)
assert results["fork"] == expected and results["spawn"] == expected
print("DONE", sorted(results))
"""


def test_multiprocessing_fork_and_spawn_from_inside_a_scope():
    out = run_child(MULTIPROCESSING, poison=True, timeout=300).check()
    assert "DONE ['fork', 'spawn']" in out.stdout, out.stdout
