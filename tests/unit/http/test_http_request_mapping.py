from __future__ import annotations

from cachetier.integrations import asgi, wsgi


def test_asgi_and_wsgi_requests_map_to_the_same_cache_url() -> None:
    scope = {
        "type": "http",
        "method": "get",
        "path": "/café",
        "raw_path": b"/caf%C3%A9",
        "query_string": b"b=2&a=1",
        "headers": [(b"host", b"Example.test"), (b"Accept", b"text/html")],
    }
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/café".encode().decode("latin-1"),
        "QUERY_STRING": "b=2&a=1",
        "HTTP_HOST": "Example.test",
        "HTTP_ACCEPT": "text/html",
    }
    from_asgi, from_wsgi = asgi.request_of(scope), wsgi.request_of(environ)
    assert (from_asgi.method, from_asgi.host, from_asgi.path, from_asgi.query) == (
        from_wsgi.method,
        from_wsgi.host,
        from_wsgi.path,
        from_wsgi.query,
    )
    assert from_wsgi.path == "/caf%C3%A9"
    assert ("accept", "text/html") in from_asgi.headers
    assert ("accept", "text/html") in from_wsgi.headers


def test_host_falls_back_to_the_server_address() -> None:
    scope = {"method": "GET", "path": "/", "headers": [], "server": ("10.0.0.1", 8000)}
    assert asgi.request_of(scope).host == "10.0.0.1:8000"
    environ = {"REQUEST_METHOD": "GET", "SERVER_NAME": "10.0.0.1", "SERVER_PORT": "8000"}
    assert wsgi.request_of(environ).host == "10.0.0.1:8000"
