"""One small site written twice, for Starlette (under uvicorn) and Flask (under Werkzeug's server).

The HTTP cache tests run both behind their middleware in a server process of
their own. The routes are what real apps do that a shared cache must
survive: a per-user page that forgot `private`, a page reflecting
`X-Forwarded-Host` and the scheme in its links, thousands of tags, unusual
status codes, a flaky page, a `Vary: Accept-Language` page and a file.
`POST /_state` switches the flaky page between working, raising and 503.
The cache is `create_cache()` from the environment (a SQLite file per run).
"""

from __future__ import annotations

from typing import Any

LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
FILE = bytes(range(256)) * 4  # 1,024 bytes
FILE_ETAG = '"file-v1"'
TAGS = [f"product:{i:06d}-variant" for i in range(2900)]  # about 70 KB of tags
TOKEN = "safety-token"
TRUSTED = ["x-forwarded-proto"]  # the server rewrites the scheme from it (uvicorn --proxy-headers, ProxyFix)

state: dict[str, Any] = {"fail": None, "renders": 0}


def user_of(cookie: str | None, authorization: str | None) -> str:
    if authorization:
        return authorization.split()[-1]
    for part in (cookie or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "session":
            return value
    return "anonymous"


def page(path: str, scheme: str, host: str, forwarded_host: str | None, user: str) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET; the same for both frameworks."""
    state["renders"] += 1
    cached = {"Cache-Control": "max-age=60"}
    if path == "/me":
        return 200, cached, f'{{"user": "{user}"}}'.encode()
    if path == "/me-vary":
        return 200, {**cached, "Vary": "Cookie"}, f'{{"user": "{user}"}}'.encode()
    if path == "/shared":
        return 200, {"Cache-Control": "public, max-age=60"}, f"shared {state['renders']}".encode()
    if path == "/link":
        return 200, cached, f"{scheme}://{forwarded_host or host}/next".encode()
    if path == "/many-tags":
        return 200, {**cached, "Cache-Tag": ", ".join(TAGS)}, f"tagged {state['renders']}".encode()
    if path.startswith("/status/"):
        code = int(path.rsplit("/", 1)[1])
        return code, cached, f"status {code} render {state['renders']}".encode()
    if path == "/must-understand/299":
        return 299, {"Cache-Control": "max-age=60, must-understand, no-store"}, b"unknown status"
    if path == "/flaky":
        if state["fail"] == "raise":
            raise RuntimeError("the app is down")
        if state["fail"] == "503":
            return 503, {"Cache-Control": "no-store"}, b"down"
        return 200, {"Cache-Control": "max-age=1, stale-if-error=600"}, f"flaky {state['renders']}".encode()
    if path == "/lang":
        return 200, {**cached, "Vary": "Accept-Language"}, f"lang {state['renders']}".encode()
    if path == "/dated":
        return 200, cached, b"dated, no Last-Modified"
    if path == "/file":
        headers = {**cached, "ETag": FILE_ETAG, "Last-Modified": LAST_MODIFIED, "Content-Type": "application/pdf"}
        return 200, headers, FILE
    return 404, {}, b"not found"


def create_starlette() -> Any:
    import contextlib

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from cachetier import create_cache
    from cachetier.integrations.asgi import CacheMiddleware, purge_endpoint

    cache = create_cache()

    async def get(request: Request) -> Response:
        headers = request.headers
        user = user_of(headers.get("cookie"), headers.get("authorization"))
        host = headers.get("host", "")
        status, fields, body = page(request.url.path, request.url.scheme, host, headers.get("x-forwarded-host"), user)
        return Response(body, status_code=status, headers=fields)

    async def set_state(request: Request) -> Response:
        state["fail"] = (await request.json()).get("fail")
        return JSONResponse({"fail": state["fail"]}, headers={"Cache-Control": "no-store"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with cache:
            yield

    return Starlette(
        routes=[
            Route("/_state", set_state, methods=["POST"]),
            Route("/_cache/purge", purge_endpoint(cache, token=TOKEN)),
            Route("/{path:path}", get),
        ],
        middleware=[Middleware(CacheMiddleware, cache=cache, trusted_forwarding_headers=TRUSTED)],
        lifespan=lifespan,
    )


def create_flask() -> Any:
    import atexit

    import flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware
    from werkzeug.middleware.proxy_fix import ProxyFix

    from cachetier import create_cache
    from cachetier.integrations.wsgi import CacheMiddleware, purge_endpoint
    from cachetier.sync import SyncCache

    cache = SyncCache(create_cache())
    atexit.register(cache.close)
    app = flask.Flask("http_safety_apps")
    app.config["PROPAGATE_EXCEPTIONS"] = True  # the exception reaches the cache middleware, as in ASGI

    @app.get("/<path:path>")
    def get(path: str) -> flask.Response:
        request = flask.request
        user = user_of(request.headers.get("Cookie"), request.headers.get("Authorization"))
        host = request.headers.get("Host", "")
        forwarded_host = request.headers.get("X-Forwarded-Host")
        status, fields, body = page("/" + path, request.scheme, host, forwarded_host, user)
        return flask.Response(body, status=status, headers=fields)

    @app.post("/_state")
    def set_state() -> flask.Response:
        state["fail"] = (flask.request.get_json() or {}).get("fail")
        return flask.Response("{}", headers={"Cache-Control": "no-store"})

    cached = CacheMiddleware(app.wsgi_app, cache=cache, trusted_forwarding_headers=TRUSTED)
    # ProxyFix outside the cache: the scheme the cache keys on is the one the app sees
    purge = purge_endpoint(cache, token=TOKEN)
    app.wsgi_app = ProxyFix(DispatcherMiddleware(cached, {"/_cache/purge": purge}), x_proto=1)  # type: ignore[method-assign]
    return app
