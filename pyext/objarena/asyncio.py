"""Task scopes: a scope per asyncio task.

    import asyncio, objarena.asyncio

    async def main():
        objarena.asyncio.install(asyncio.get_running_loop())   # every new task gets its own scope
        ...

    # or only some tasks, and per-task options:
    loop.set_task_factory(objarena.asyncio.task_factory(lambda coro: coro.__name__ == "handle", strict=False))

    # or a scope inside one task (created by the factory):
    async with objarena.scope() as request:
        ...

A task scope is active only while its task runs: the task factory wraps each
task's coroutine in a ScopedCoroutine (C), which resumes the task's scopes
at every step and parks them at every suspension. What the task allocates in
its steps comes from its arena; what the event loop and the other tasks
allocate between its steps does not. The task's scope exits when its
coroutine ends (returns, raises, is cancelled), inside its last step;
survivors (the result, a cached object) are retained as usual. A task that
never finishes (its loop was closed) has its coroutine closed inside its
scope when the coroutine is dropped, and its scope released.
"""
import asyncio as _asyncio

try:  # the extension's place after the rename (objarena._objarena), or before it
    from . import _objarena
except ImportError:
    import _objarena
ScopedCoroutine = _objarena.ScopedCoroutine
_paused = _objarena.paused
_scope = _objarena.scope

__all__ = ["ScopedCoroutine", "install", "task_factory", "wrap"]

_Task = _asyncio.Task


def wrap(coro, **scope_options):
    """coro wrapped so that, run as a task, it has a scope of its own (scope_options: objarena.scope's).
    Its scope exits in the coroutine's last step (task_factory defers it to the task's done callback)."""
    with _paused():
        return ScopedCoroutine(coro, _scope(**scope_options))


def task_factory(predicate=None, **scope_options):
    """A task factory for loop.set_task_factory: every task whose coroutine
    `predicate(coro)` accepts (default: every task) runs in a scope of its
    own, made with objarena.scope(**scope_options). The other tasks are
    wrapped without a scope, so `async with objarena.scope()` works in them
    too. Coroutines wrapped already (ScopedCoroutine) are left as they are."""
    _scope(**scope_options)  # bad options fail here, not in every task

    def factory(loop, coro, **kwargs):
        # The wrapper and the Task outlive the creating task's step: made
        # outside its scope (a child task would pin the parent's arena).
        with _paused():
            if isinstance(coro, ScopedCoroutine):
                return _Task(coro, loop=loop, **kwargs)
            own = predicate is None or predicate(coro)
            wrapped = ScopedCoroutine(coro, _scope(**scope_options) if own else None, defer_exit=own)
            task = _Task(wrapped, loop=loop, **kwargs)
            if own:
                # The scope exits once the task is done, a callback after its
                # last step: the future it awaited last is gone by then.
                task.add_done_callback(wrapped.finish)
            return task

    factory.objarena_scope_options = dict(scope_options)
    factory.objarena_predicate = predicate
    return factory


def install(loop=None, predicate=None, **scope_options):
    """loop.set_task_factory(task_factory(predicate, **scope_options)); loop: the running loop by default.
    Returns the factory that was there before (None: asyncio's)."""
    if loop is None:
        loop = _asyncio.get_running_loop()
    previous = loop.get_task_factory()
    loop.set_task_factory(task_factory(predicate, **scope_options))
    return previous


def current_scope():
    """The scope the running code allocates into (in a task: its own), or None."""
    return _objarena.current_scope()
