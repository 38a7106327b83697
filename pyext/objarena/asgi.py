"""ASGI middleware: a scope per HTTP request and per WebSocket connection.

    import objarena.asgi
    app = objarena.asgi.ScopeMiddleware(app)          # Starlette, FastAPI or any ASGI app

(with Starlette/FastAPI also: app.add_middleware(objarena.asgi.ScopeMiddleware)).

Each HTTP request, and each WebSocket connection, runs the wrapped app in a
task scope of its own (objarena.asyncio): what its handler allocates comes
from the request's arena, parked while the handler awaits, so requests that
interleave on one event loop keep their memory apart. When the request ends
the arena goes back; what escaped it (a cache entry, a session) is retained
until it dies. Lifespan events, and any other scope type, pass through.
No loop or server setting is needed: the middleware drives the app's
coroutine itself (the server's task awaits it). Nothing here imports a web
framework.

Each request's pages go back to the OS when it ends (the default). With
warm=True the requests share a Pool of the middleware's own instead, so a
request allocates into the pages that finished requests left rather than
the kernel zeroing and mapping fresh ones (a page fault per 4 KiB: 130-312
a request in bench/asgi_service.py); the pool is trimmed, its pages and the
C heap's free memory handed back, once no HTTP request of this middleware
has been in flight for idle_seconds (open WebSocket connections do not
count, and each one's end starts the same timer). The price is peak RSS:
every request in flight then holds a whole resident chunk, not only the
pages it has touched so far (peak RSS 1.56-1.80x plain's against
1.09-1.13x with the default, 3.11-3.14; docs/benchmarks.md, "Warm pages
between requests"), which is why it is not the default.
"""
import asyncio as _asyncio
import math as _math
import threading as _threading

from . import Pool as _Pool, paused as _paused, scope as _scope
from .asyncio import ScopedCoroutine

__all__ = ["ScopeMiddleware"]

_SCOPED_TYPES = frozenset({"http", "websocket"})


class ScopeMiddleware:
    """ScopeMiddleware(app, *, predicate=None, warm=False, idle_seconds=0.1, **scope_options)

    predicate(asgi_scope) -> bool chooses the requests that get a scope (default:
    every HTTP request and WebSocket connection); scope_options are
    objarena.scope's (limit=, pool=, strict=...). warm=False: each
    request's pages go back when it ends. warm=True: share a pool of the
    middleware's own between requests, trimmed after idle_seconds with no
    HTTP request in flight (ignored when pool= is given: that pool is the
    caller's to trim)."""

    def __init__(self, app, *, predicate=None, warm=False, idle_seconds=0.1, **scope_options):
        if not isinstance(warm, bool):
            raise TypeError(f"warm must be True or False, not {type(warm).__name__}")
        if isinstance(idle_seconds, bool) or not isinstance(idle_seconds, (int, float)):
            raise TypeError(f"idle_seconds must be a number, not {type(idle_seconds).__name__}")
        if not (_math.isfinite(idle_seconds) and idle_seconds >= 0):
            raise ValueError(f"idle_seconds must be a finite number >= 0, not {idle_seconds!r}")
        _scope(**scope_options)  # bad options fail at start-up, not per request
        self.app = app
        self.predicate = predicate
        self.idle_seconds = float(idle_seconds)
        self.pool = None  # the middleware's own warm pool (warm=True, no pool= given)
        self.idle_trims = 0  # times the pool was trimmed after an idle pause
        if warm and scope_options.get("pool") is None:
            options = dict(scope_options)
            # A pool's scopes take its chunk size; chunk_size= and huge_pages= go to the pool.
            self.pool = _Pool(chunk_size=options.pop("chunk_size", None),
                              huge_pages=bool(options.get("huge_pages") or False))
            options["pool"] = self.pool
            # A bare scope's exit trims the C heap (paced); a pool's scopes leave it to the
            # pool's trim, which the idle pause runs.
            scope_options = options
            try:  # (a limit below one chunk is fine for a bare scope, not for a pool's)
                _scope(**scope_options)
            except ValueError as e:
                raise ValueError(f"{e} (ScopeMiddleware: warm=True shares a pool between "
                                 f"requests; warm=False gives each request a bare scope)") from None
        self.scope_options = scope_options
        self._lock = _threading.Lock()  # (loops on several threads may share one middleware)
        self._in_flight = 0
        self._ended = 0  # requests ended so far: a ticket for the idle timer

    async def __call__(self, scope, receive, send):
        if scope["type"] not in _SCOPED_TYPES or (self.predicate is not None and not self.predicate(scope)):
            return await self.app(scope, receive, send)
        with _paused():  # the wrapper and the scope object outlive the request's arena
            step = ScopedCoroutine(self.app(scope, receive, send), _scope(**self.scope_options))
        if self.pool is None:
            return await step
        # A WebSocket connection may stay open for hours: it uses the pool but
        # does not count as in flight, or one open connection would keep the
        # pages of every finished request resident for as long as it lasts.
        counted = scope["type"] == "http"
        if counted:
            with self._lock:
                self._in_flight += 1
        try:
            return await step
        finally:
            self._request_ended(counted)

    def _request_ended(self, counted):
        with self._lock:
            self._in_flight -= counted
            self._ended += 1
            idle, ticket = self._in_flight == 0, self._ended
        if idle:
            try:
                loop = _asyncio.get_running_loop()
            except RuntimeError:  # (no loop: nothing can call back; trim now)
                self._trim_if_idle(ticket)
                return
            loop.call_later(self.idle_seconds, self._trim_if_idle, ticket)

    def _trim_if_idle(self, ticket):
        # Only if no request started or ended since this timer was set: a
        # later end set its own timer. Under the lock, so that a request on
        # another loop's thread does not start between the check and the trim.
        with self._lock:
            if self._in_flight or self._ended != ticket:
                return
            self.pool.trim()
            self.idle_trims += 1
