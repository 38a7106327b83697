"""_objarena._call_in(scope, fn, *args, **kwargs): a call inside a scope with
no Python frame of its own (pyext/module/call_in.h), what the pytest plugin
wraps each test in. It must behave as `with scope: return fn(...)` does, and
leave fn's frames where a direct call would put them on CPython's data
stack (issue 25: a wrapper frame made pyparsing's recursive tests map and
unmap a stack chunk at every crossing of its edge)."""
import re
import sys

import pytest

import objarena
from objarena import _objarena


class Made:
    pass


def make(n, *, label):
    return [Made() for _ in range(n)], label


def test_returns_the_result_made_in_the_scope():
    phase = objarena.scope()
    objs, label = _objarena._call_in(phase, make, 3, label="x")
    assert label == "x" and len(objs) == 3
    assert phase.state == "exited"
    assert objarena.arena_id_of(objs[0]) == phase.arena_id != 0
    assert phase.stats["live_blocks_at_exit"] > 0


def test_adds_no_frame_between_the_caller_and_fn():
    def callee():
        return sys._getframe(1).f_code.co_name

    def direct():
        return callee()

    def wrapped():
        return _objarena._call_in(objarena.scope(), callee)

    assert direct() == "direct"
    assert wrapped() == "wrapped"  # a Python wrapper's frame would be named here


def test_fn_exception_propagates_unchanged_and_the_scope_exits():
    phase = objarena.scope()
    err = ValueError("from fn")

    def fail():
        raise err

    with pytest.raises(ValueError) as info:
        _objarena._call_in(phase, fail)
    assert info.value is err
    assert phase.state == "exited"
    assert info.traceback[-1].name == "fail"


class SeesHandled:
    """Part of a garbage cycle made in the phase: the exit's collection
    finalizes it, and it records the exception being handled then."""
    def __init__(self, seen):
        self.seen = seen
        self.cycle = self

    def __del__(self):
        self.seen.append(sys.exc_info()[1])


def test_fn_exception_is_the_handled_one_while_the_scope_exits():
    def body(seen):
        SeesHandled(seen)
        raise KeyError("while exiting")

    seen = {"call_in": [], "with": []}
    phase = objarena.scope()
    with pytest.raises(KeyError) as via_call_in:
        _objarena._call_in(phase, body, seen["call_in"])
    phase = objarena.scope()
    with pytest.raises(KeyError) as via_with:
        with phase:
            body(seen["with"])
    assert phase.stats["exit_collection"] != "none"
    assert seen["with"] == [via_with.value]          # what a with statement does
    assert seen["call_in"] == [via_call_in.value]


def test_a_strict_scope_raises_escape_error_after_fn_returns():
    kept = []
    phase = objarena.scope(strict=True)
    with pytest.raises(objarena.EscapeError):
        _objarena._call_in(phase, lambda: kept.append(Made()))
    assert phase.state == "exited" and len(kept) == 1
    assert isinstance(kept[0], Made)  # retained, not freed


def test_a_strict_scope_leaves_fn_exception_alone():
    kept = []

    def leak_then_fail():
        kept.append(Made())
        raise KeyError("k")

    with pytest.raises(KeyError):
        _objarena._call_in(objarena.scope(strict=True), leak_then_fail)


def exit_error_both_ways():
    """An exit that raises while fn's exception is pending (fn leaves an
    inner scope entered, so the outer exit is out of order), run through
    _call_in and through a with statement: the same exception, chained the
    same way."""
    out = []
    for how in ("call_in", "with"):
        inner = objarena.scope()

        def fn():
            inner.__enter__()
            raise LookupError("fn")

        outer = objarena.scope()
        try:
            if how == "call_in":
                _objarena._call_in(outer, fn)
            else:
                with outer:
                    fn()
        except BaseException as exc:  # noqa: BLE001 - compared below
            out.append((type(exc), type(exc.__context__)))
        finally:
            for s in (inner, outer):
                if s.state == "active":
                    s.__exit__(None, None, None)
    return out


def test_an_exit_error_is_chained_to_fn_exception_as_with_does():
    call_in, with_statement = exit_error_both_ways()
    assert call_in == with_statement
    assert call_in[1] is LookupError


def test_entry_errors_propagate_and_fn_is_not_called():
    phase = objarena.scope()
    calls = []
    with phase:
        with pytest.raises(RuntimeError):
            _objarena._call_in(phase, calls.append, 1)  # already active
    assert calls == []


def outcome(run):
    """What a run ended with: ("ok", result) or the exception's type, its
    context's type and the scope's state afterwards."""
    phase = objarena.scope()
    try:
        return ("ok", run(phase), phase.state)
    except BaseException as exc:  # noqa: BLE001 - compared below
        return (type(exc), type(exc.__context__), phase.state)
    finally:
        if phase.state == "active":
            phase.__exit__(None, None, None)


def exits_itself(phase):
    phase.__exit__(None, None, None)
    return "exited early"


def exits_itself_then_fails(phase):
    phase.__exit__(None, None, None)
    raise ValueError("after exiting")


def enters_again(phase):
    phase.__enter__()


class Interrupt(BaseException):
    pass


def interrupted(phase):
    raise Interrupt()


def c_function_fails(phase):
    return len(5)


@pytest.mark.parametrize("body", [exits_itself, exits_itself_then_fails, enters_again, interrupted,
                                  c_function_fails])
def test_odd_bodies_end_as_under_a_with_statement(body):
    def with_statement(phase):
        with phase:
            return body(phase)

    def call_in(phase):
        return _objarena._call_in(phase, body, phase)

    assert outcome(call_in) == outcome(with_statement)


@pytest.mark.parametrize("args, message", [
    ((), "needs a scope and a callable"),
    ((objarena.scope(),), "needs a scope and a callable"),
    ((object(), len), "must be an objarena.scope"),
    ((objarena.scope(), 42), "not callable"),
])
def test_bad_arguments_raise_type_error(args, message):
    with pytest.raises(TypeError, match=re.escape(message)):
        _objarena._call_in(*args)


def test_references_are_not_leaked():
    def fn(x, *, y):
        return x + y

    phase_refs, fn_refs = None, None
    for i in range(200):
        phase = objarena.scope()
        before = sys.getrefcount(phase), sys.getrefcount(fn)
        assert _objarena._call_in(phase, fn, 1, y=2) == 3
        after = sys.getrefcount(phase), sys.getrefcount(fn)
        assert after == before, (i, before, after)
        phase_refs, fn_refs = after
    assert phase_refs is not None and fn_refs is not None
