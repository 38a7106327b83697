# Type stub for the `objarena` package (pyext/objarena/__init__.py) and the
# types it re-exports from the `objarena._objarena` extension module.
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Generic, Literal, ParamSpec, TypeVar, final, overload

_P = ParamSpec("_P")
_R = TypeVar("_R")

__all__ = [
    "EscapeError",
    "Pool",
    "Scope",
    "Scoped",
    "arena_id_of",
    "collect",
    "detach",
    "info",
    "owns",
    "paused",
    "run",
    "scope",
    "scoped",
]
__version__: str

@final
class scope:
    """A phase whose object allocations on this thread come from a fresh arena."""

    def __new__(
        cls,
        *,
        limit: int | None = None,
        chunk_size: int | None = None,
        strict: bool = False,
        collect: bool = True,
        poison: bool = False,
        reuse: bool = True,
        domains: tuple[Literal["obj", "mem"], ...] | list[Literal["obj", "mem"]] | None = None,
        pool: Pool | None = None,
        huge_pages: bool = False,
        adopt: bool = True,
        trim_malloc: bool | None = None,
    ) -> scope: ...
    def __enter__(self) -> scope: ...
    # Never swallows the exception; raises EscapeError for a strict scope
    # whose blocks outlived it (when no exception is pending).
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...
    @property
    def stats(self) -> Mapping[str, int | bool]: ...
    @property
    def state(self) -> Literal["new", "active", "exited"]: ...
    @property
    def arena_id(self) -> int: ...
    @property
    def domains(self) -> tuple[Literal["obj", "mem"], ...]: ...
    def escaped(self) -> dict[type, list[object]]: ...

@final
class Pool:
    """Warm chunks with an explicit lifetime: scopes of the pool reuse them."""

    def __new__(
        cls, *, max_warm_bytes: int | None = None, chunk_size: int | None = None, huge_pages: bool = False
    ) -> Pool: ...
    def scope(
        self,
        *,
        limit: int | None = None,
        chunk_size: int | None = None,
        strict: bool = False,
        collect: bool = True,
        poison: bool = False,
        reuse: bool = True,
        domains: tuple[Literal["obj", "mem"], ...] | list[Literal["obj", "mem"]] | None = None,
        huge_pages: bool = False,
        adopt: bool = True,
        trim_malloc: bool | None = None,
    ) -> scope: ...
    def trim(self, keep_bytes: int | None = 0) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Pool: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...
    @property
    def stats(self) -> Mapping[str, int | bool]: ...

@final
class paused:
    """Inside a scope: allocate from the normal allocator until the block ends."""

    def __new__(cls) -> paused: ...
    def __enter__(self) -> paused: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> Literal[False]: ...

Scope = scope
Paused = paused

class EscapeError(RuntimeError):
    """Raised by a strict scope whose blocks outlived it."""

    blocks: int
    bytes_retained: int
    types: dict[type, int]

def run(fn: Callable[_P, _R], /, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...

class Scoped(Generic[_P, _R]):
    """A function wrapped by `scoped`: picklable when the function is (unless pool= is set)."""

    __wrapped__: Callable[_P, _R]
    __name__: str
    __qualname__: str
    def __init__(self, fn: Callable[_P, _R], options: Mapping[str, Any]) -> None: ...
    @property
    def options(self) -> dict[str, Any]: ...
    def make_scope(self, options: Mapping[str, Any] | None = None) -> scope: ...
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R: ...

@overload
def scoped(
    fn: Callable[_P, _R],
    /,
    *,
    limit: int | None = None,
    chunk_size: int | None = None,
    strict: bool = False,
    collect: bool = True,
    poison: bool = False,
    reuse: bool = True,
    domains: tuple[Literal["obj", "mem"], ...] | list[Literal["obj", "mem"]] | None = None,
    pool: Pool | None = None,
    huge_pages: bool = False,
) -> Scoped[_P, _R]: ...
@overload
def scoped(
    fn: None = None,
    /,
    *,
    limit: int | None = None,
    chunk_size: int | None = None,
    strict: bool = False,
    collect: bool = True,
    poison: bool = False,
    reuse: bool = True,
    domains: tuple[Literal["obj", "mem"], ...] | list[Literal["obj", "mem"]] | None = None,
    pool: Pool | None = None,
    huge_pages: bool = False,
) -> Callable[[Callable[_P, _R]], Scoped[_P, _R]]: ...
def info() -> dict[str, int | bool | str]: ...
def owns(obj: object, /) -> bool: ...
def arena_id_of(obj: object, /) -> int: ...
def collect() -> None: ...
def version_support() -> dict[str, int | bool | str]: ...

_T = TypeVar("_T")

def detach(obj: _T, /) -> _T:
    """A deep copy of obj allocated outside every arena: containers new, shared
    substructure and cycles kept, other objects copied as pickle would;
    TypeError for what cannot be copied."""
