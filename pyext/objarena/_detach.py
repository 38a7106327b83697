"""`detach(obj)`: a deep copy of an object graph in the saved allocator.

Keeping a little of a phase (a row in a module-level cache, a memo entry)
pins the arena chunk each kept block sits in. `detach` copies the graph
while the scope is paused, so the copy holds no arena block and the phase's
chunks go back at exit:

    with objarena.scope():
        rows = build(batch)
        CACHE[key] = objarena.detach(rows[0])

Copy semantics:
- identity is not kept: the result and every container in it are new
  objects (immutable leaves that are not arena blocks, e.g. small ints,
  interned or module-level strings, None, classes, functions and modules
  defined outside the scope, are shared, as copying them changes nothing);
- shared substructure and cycles are kept: an object reached twice is copied
  once, and a cycle is copied as a cycle (a memo, as copy.deepcopy's);
- exact dict, list, tuple, set, frozenset, str, bytes, int, float, complex,
  bool and None are copied directly (a dict keeps its order); any other
  object is copied as pickle would (its __reduce_ex__(4), with the parts it
  returns copied the same way), so it must pickle;
- refused with TypeError (nothing is kept from a partial copy): an object
  whose type does not pickle (a lambda, a lock, a generator, an open file),
  and a class, function or module made inside a scope (an arena block that
  pickle would only name, not copy);
- a graph nested deeper than the recursion limit raises RecursionError.

Outside any scope it copies the same way (nothing to detach from).
"""
import copyreg
import types

from ._objarena import owns, paused

__all__ = ["detach"]

# Shared by reference when not an arena block: copying them changes nothing.
_BY_REFERENCE = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    type(Ellipsis),
    type(NotImplemented),
    type(None),
    bool,
)


def detach(obj):
    """Return a deep copy of `obj` allocated outside every arena (see the module doc)."""
    with paused():
        return _Copier().copy(obj)


class _Copier:
    def __init__(self):
        self.memo = {}  # id(original) -> copy
        self.keep = []  # the originals, alive while their ids are in the memo

    def copy(self, x):
        found = self.memo.get(id(x), _MISSING)
        if found is not _MISSING:
            return found
        cls = type(x)
        copier = _EXACT.get(cls)
        if copier is not None:
            y = copier(self, x)
        elif isinstance(x, _BY_REFERENCE):
            if owns(x):
                raise TypeError(
                    f"objarena.detach: cannot copy {cls.__name__} {x!r}: it was made inside a scope, and "
                    "a copy would still refer to it; define it outside the scope"
                )
            y = x
        else:
            y = self._reconstruct(x, cls)
        self._remember(x, y)
        return y

    def _remember(self, x, y):
        self.memo[id(x)] = y
        self.keep.append(x)

    # ---- leaves: a new object only when the original is an arena block ----
    def _str(self, x):
        if not owns(x):
            return x
        return str(x.encode("utf-8", "surrogatepass"), "utf-8", "surrogatepass")

    def _bytes(self, x):
        return bytes(bytearray(x)) if owns(x) else x

    def _int(self, x):
        return -(-x) if owns(x) else x

    def _float(self, x):
        return x * 1.0 if owns(x) else x  # keeps -0.0 (x + 0.0 would not)

    def _complex(self, x):
        return complex(x.real, x.imag) if owns(x) else x

    # ---- containers: always new; registered before their items (cycles) ----
    def _list(self, x):
        y = []
        self._remember(x, y)
        y.extend([self.copy(item) for item in x])
        return y

    def _dict(self, x):
        y = {}
        self._remember(x, y)
        for k, v in list(x.items()):
            y[self.copy(k)] = self.copy(v)
        return y

    def _set(self, x):
        y = set()
        self._remember(x, y)
        y.update([self.copy(item) for item in x])
        return y

    def _tuple(self, x):
        items = [self.copy(item) for item in x]
        # A cycle back to this tuple (through a list, a dict...) copied it
        # meanwhile: the copy made first is the one its cycle refers to.
        found = self.memo.get(id(x), _MISSING)
        return found if found is not _MISSING else tuple(items)

    def _frozenset(self, x):
        items = [self.copy(item) for item in x]
        found = self.memo.get(id(x), _MISSING)
        return found if found is not _MISSING else frozenset(items)

    # ---- everything else: as pickle would ----
    def _reconstruct(self, x, cls):
        reductor = copyreg.dispatch_table.get(cls)
        try:
            rv = reductor(x) if reductor is not None else x.__reduce_ex__(4)
        except Exception as e:
            raise TypeError(f"objarena.detach: cannot copy {cls.__module__}.{cls.__qualname__} object: "
                            f"it does not pickle ({e})") from e
        if isinstance(rv, str):  # a global by name: shared, as pickle would
            if owns(x):
                raise TypeError(f"objarena.detach: cannot copy {cls.__qualname__} {rv}: it pickles by name "
                                "and was made inside a scope")
            return x
        func, args, *rest = rv
        state, listitems, dictitems, setstate = (list(rest) + [None] * 4)[:4]
        if owns(func) or owns(cls):
            raise TypeError(f"objarena.detach: cannot copy {cls.__qualname__} object: its class or "
                            "constructor was made inside a scope")
        y = func(*self.copy(args))
        self._remember(x, y)
        if state is not None:
            state = self.copy(state)
            if setstate is not None:
                setstate(y, state)
            elif hasattr(y, "__setstate__"):
                y.__setstate__(state)
            else:
                slotstate = None
                if isinstance(state, tuple) and len(state) == 2:
                    state, slotstate = state
                if state:
                    y.__dict__.update(state)
                if slotstate:
                    for key, value in slotstate.items():
                        setattr(y, key, value)
        if listitems is not None:
            for item in listitems:
                y.append(self.copy(item))
        if dictitems is not None:
            for key, value in dictitems:
                y[self.copy(key)] = self.copy(value)
        return y


_MISSING = object()
_EXACT = {
    str: _Copier._str,
    bytes: _Copier._bytes,
    int: _Copier._int,
    float: _Copier._float,
    complex: _Copier._complex,
    list: _Copier._list,
    dict: _Copier._dict,
    set: _Copier._set,
    tuple: _Copier._tuple,
    frozenset: _Copier._frozenset,
    bool: lambda self, x: x,
    type(None): lambda self, x: x,
}
