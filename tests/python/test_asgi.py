"""objarena.asgi.ScopeMiddleware under a real server: uvicorn runs a Starlette
app on 127.0.0.1 in a subprocess (OBJARENA_POISON=1, so a survivor whose
memory went back faults), driven by httpx and websockets with bounded
request counts and timeouts."""
import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("uvicorn")
pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

APP = '''
import asyncio, gc, json, os
import objarena, objarena.asgi
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

CACHE = {}
LIFESPAN = {}

async def work(request):
    s = objarena.current_scope()
    n = int(request.query_params.get("n", "200"))
    rows = [{"id": i, "name": "row%d" % i, "tags": ["a", "b"]} for i in range(n)]
    await asyncio.sleep(0.001)                      # requests interleave here
    assert objarena.current_scope() is s
    key = request.query_params.get("cache")
    if key:
        CACHE[key] = {"row": rows[-1]}              # escapes the request
    body = json.dumps({"rows": rows, "total": sum(r["id"] for r in rows)})
    return Response(body, media_type="application/json",
                    headers={"x-arena": str(s.arena_id if s else 0), "x-owned": str(int(objarena.owns(body)))})

async def stats(request):
    scope_now = objarena.current_scope() is not None
    with objarena.paused():
        gc.collect()
        info = objarena.info()
        cached = [v["row"]["name"] for v in CACHE.values()]
        pool = app.pool.stats if app.pool is not None else None
        return JSONResponse({"arenas_live": info["arenas_live"], "lifespan_scope": LIFESPAN.get("scope"),
                             "scope_now": scope_now, "cached": cached, "idle_trims": app.idle_trims,
                             "warm": pool and pool["warm_bytes"] + pool["warm_retained_bytes"]})

async def ws(websocket):
    await websocket.accept()
    s = objarena.current_scope()
    for _ in range(3):
        text = await websocket.receive_text()
        await websocket.send_text("%s:%d:%d" % (text.upper(), s.arena_id if s else 0,
                                                objarena.current_scope() is s))
    await websocket.close()

async def lifespan(app):
    LIFESPAN["scope"] = objarena.current_scope() is not None
    yield

inner = Starlette(routes=[Route("/work", work), Route("/stats", stats), WebSocketRoute("/ws", ws)],
                  lifespan=lambda app: __import__("contextlib").asynccontextmanager(lifespan)(app))
app = objarena.asgi.ScopeMiddleware(inner, warm=os.environ.get("TEST_WARM") == "1",
                                    idle_seconds=float(os.environ.get("TEST_IDLE_SECONDS", "0.1")))
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    # Poison on: a survivor whose memory went back faults. (Poisoned chunks
    # are never kept warm, so warm=True is tested by warm_server.)
    yield from run_server(tmp_path, OBJARENA_POISON="1")


@pytest.fixture
def warm_server(tmp_path):
    # An idle pause of 1 s: the client's pauses between requests stay well below it.
    yield from run_server(tmp_path, TEST_WARM="1", TEST_IDLE_SECONDS="1.0")


def run_server(tmp_path, **env_extra):
    (tmp_path / "asgi_app.py").write_text(textwrap.dedent(APP))
    port = free_port()
    env = dict(os.environ)
    env.pop("OBJARENA_POISON", None)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *[p for p in sys.path if p]])
    env.update(env_extra)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "asgi_app:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--loop", "asyncio"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/stats", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("uvicorn did not start:\n" + proc.stdout.read())
            time.sleep(0.1)
    yield base, port, proc
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    assert proc.returncode in (0, -15), out
    assert "Traceback" not in out, out


def test_http_requests_get_their_own_scopes(server):
    base, _, proc = server

    async def drive():
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
            async def one(i):
                r = await client.get("/work", params={"n": 300, **({"cache": f"k{i}"} if i % 50 == 0 else {})})
                r.raise_for_status()
                return r
            rs = await asyncio.gather(*[one(i) for i in range(200)])
            return rs, (await client.get("/stats")).json()

    rs, stats = asyncio.run(asyncio.wait_for(drive(), 120))
    want = {"rows": [{"id": i, "name": "row%d" % i, "tags": ["a", "b"]} for i in range(300)],
            "total": sum(range(300))}
    assert all(r.json() == want for r in rs)
    arenas = [int(r.headers["x-arena"]) for r in rs]
    assert all(arenas) and len(set(arenas)) == len(arenas)     # every request had its own arena
    assert all(r.headers["x-owned"] == "1" for r in rs)          # its body was made in it
    assert stats["lifespan_scope"] is False and stats["scope_now"] is True
    assert stats["arenas_live"] == 1, stats                      # only the /stats request's own
    assert sorted(stats["cached"]) == ["row299"] * 4             # escapes survive (poison on)


def test_websocket_connection_has_one_scope(server):
    websockets = pytest.importorskip("websockets")
    from websockets.sync.client import connect

    base, port, _ = server
    ids = []
    for c in range(3):
        with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10, close_timeout=10) as ws:
            replies = []
            for word in ("a", "b", "c"):
                ws.send(word)
                replies.append(ws.recv(timeout=10))
        words = [r.split(":")[0] for r in replies]
        arena = {r.split(":")[1] for r in replies}
        assert words == ["A", "B", "C"] and len(arena) == 1 and all(r.endswith(":1") for r in replies), replies
        ids.append(arena.pop())
    assert len(set(ids)) == 3 and "0" not in ids
    assert httpx.get(base + "/stats", timeout=10).json()["arenas_live"] == 1


def burst_then_idle(base):
    """40 requests at once, then 3 s of nothing: the responses, and /stats
    before the burst, right after it (well within the idle pause) and after
    the pause."""
    async def drive():
        async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=20)) as client:
            before = (await client.get("/stats")).json()
            rs = await asyncio.gather(*[client.get("/work", params={"n": 2000}) for _ in range(40)])
            during = (await client.get("/stats")).json()
            await asyncio.sleep(3)
            return rs, before, during, (await client.get("/stats")).json()

    return asyncio.run(asyncio.wait_for(drive(), 120))


def test_finished_requests_pages_stay_warm_until_the_service_idles(warm_server):
    base, _, _ = warm_server
    rs, before, during, after = burst_then_idle(base)
    assert all(r.status_code == 200 and r.json()["total"] == sum(range(2000)) for r in rs)
    # While requests keep coming, the pages of finished ones stay with the middleware's pool...
    assert during["warm"] > 0 and during["idle_trims"] == before["idle_trims"], (before, during)
    # ...and one idle pause later they went back to the OS.
    assert after["idle_trims"] == during["idle_trims"] + 1 and after["warm"] == 0, (during, after)


def test_an_open_websocket_does_not_keep_the_pages_warm(warm_server):
    # A connection that stays open is not traffic in flight: the idle pause after
    # the HTTP burst still gives the finished requests' pages back.
    pytest.importorskip("websockets")
    from websockets.sync.client import connect

    base, port, _ = warm_server
    with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10, close_timeout=10) as ws:
        ws.send("a")
        first = ws.recv(timeout=10)                  # the connection's scope is open, parked
        rs, before, during, after = burst_then_idle(base)
        ws.send("b")
        ws.send("c")
        rest = [ws.recv(timeout=10), ws.recv(timeout=10)]
    assert all(r.status_code == 200 for r in rs)
    assert during["warm"] > 0 and during["idle_trims"] == before["idle_trims"], (before, during)
    assert after["idle_trims"] == during["idle_trims"] + 1 and after["warm"] == 0, (during, after)
    # The connection kept its one scope across the trim.
    replies = [first, *rest]
    assert [r.split(":")[0] for r in replies] == ["A", "B", "C"], replies
    assert len({r.split(":")[1] for r in replies}) == 1 and all(r.endswith(":1") for r in replies), replies


def test_middleware_options_are_checked_at_start_up():
    import objarena
    import objarena.asgi

    async def app(scope, receive, send):
        pass

    assert objarena.asgi.ScopeMiddleware(app).pool is None       # default: a bare scope per request
    own = objarena.asgi.ScopeMiddleware(app, warm=True, chunk_size=1 << 18)
    assert own.pool is not None and own.scope_options["pool"] is own.pool and "chunk_size" not in own.scope_options
    assert own.scope_options is not None and own.pool.stats["warm_bytes"] == 0
    mine = objarena.Pool()
    assert objarena.asgi.ScopeMiddleware(app, warm=True, pool=mine).pool is None  # the caller's: the caller trims it
    with pytest.raises(TypeError):
        objarena.asgi.ScopeMiddleware(app, warm="yes")
    with pytest.raises(TypeError):
        objarena.asgi.ScopeMiddleware(app, idle_seconds="1")
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            objarena.asgi.ScopeMiddleware(app, idle_seconds=bad)
    for warm in (False, True):
        with pytest.raises(ValueError):
            objarena.asgi.ScopeMiddleware(app, warm=warm, chunk_size=1000)
    # A limit below one chunk suits a bare scope, not a pool's: said at start-up, not per request.
    with pytest.raises(ValueError, match="warm=False"):
        objarena.asgi.ScopeMiddleware(app, warm=True, limit=300_000)
    assert objarena.asgi.ScopeMiddleware(app, limit=300_000).pool is None
