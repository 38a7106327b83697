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
"""
from . import paused as _paused, scope as _scope
from .asyncio import ScopedCoroutine

__all__ = ["ScopeMiddleware"]

_SCOPED_TYPES = frozenset({"http", "websocket"})


class ScopeMiddleware:
    """ScopeMiddleware(app, *, predicate=None, **scope_options)

    predicate(asgi_scope) -> bool chooses the requests that get a scope (default:
    every HTTP request and WebSocket connection); scope_options are
    objarena.scope's (limit=, pool=, strict=...)."""

    def __init__(self, app, *, predicate=None, **scope_options):
        _scope(**scope_options)  # bad options fail at start-up, not per request
        self.app = app
        self.predicate = predicate
        self.scope_options = scope_options

    async def __call__(self, scope, receive, send):
        if scope["type"] not in _SCOPED_TYPES or (self.predicate is not None and not self.predicate(scope)):
            return await self.app(scope, receive, send)
        with _paused():  # the wrapper and the scope object outlive the request's arena
            step = ScopedCoroutine(self.app(scope, receive, send), _scope(**self.scope_options))
        return await step
