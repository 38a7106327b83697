"""fork() while other threads exist (issue 24, item 3).

In the child CPython clears the other threads' thread states on the forking
thread; their objarena thread guards are deallocated there. The forking
thread's scopes must keep capturing and exit cleanly in the child: a guard
deallocated on a thread other than its own releases nothing.

Real os.fork(), real threads; each case runs in a child interpreter (which
forks a grandchild), bounded in time."""
import os
import subprocess
import sys

import pytest

from conftest import run_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

# The other thread: once ran `with paused(): pass` (so it has a thread guard)
# or is parked inside an open scope; it waits on an event across the fork.
FORK_CASE = """
import os, sys, threading, warnings
import objarena

warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
OTHER = sys.argv[1]
ready, done = threading.Event(), threading.Event()

def other():
    if OTHER == "paused_once":
        with objarena.paused():
            pass
        ready.set()
        done.wait()
    else:  # "in_scope": open at the fork
        with objarena.scope():
            junk = [(i,) for i in range(100)]
            ready.set()
            done.wait()

t = threading.Thread(target=other)
t.start()
ready.wait()
with objarena.scope() as s:
    before = [(i,) for i in range(100)]
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            n0 = s.stats["blocks_allocated"]
            with objarena.paused():
                pass
            made = [(i,) for i in range(1000)]
            n1 = s.stats["blocks_allocated"]
            if n1 - n0 < 1000:
                print("child: not capturing", n0, n1, flush=True)
                code = 3
            s.__exit__(None, None, None)
            info = objarena.info()
            print("child: exited, orphaned", info["frames_orphaned"], "foreign",
                  info["thread_guards_foreign"], flush=True)
        except BaseException as e:
            print("child:", type(e).__name__, e, flush=True)
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
done.set()
t.join()
print("status", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize("other", ["paused_once", "in_scope"])
@pytest.mark.parametrize("poison", [True, False], ids=["poison", "no_poison"])
def test_fork_with_other_thread_keeps_forking_threads_scope(other, poison):
    # On the old code the other thread's guard, deallocated on the forking
    # thread in the child, released the forking thread's scope: nothing was
    # captured any more and its exit raised RuntimeError ("scope has already
    # exited").
    try:
        child = run_child(FORK_CASE, poison=poison, timeout=120, args=(other,)).check()
    except subprocess.TimeoutExpired:
        pytest.fail("the child hung")
    lines = child.stdout.splitlines()
    assert lines[-1] == "status 0", child.stdout
    assert lines[0] == "child: exited, orphaned 0 foreign 1", child.stdout
