"""The HTTP cache's safety and conformance rules on real servers: Starlette under uvicorn, Flask under Werkzeug.

Each server runs `http_safety_apps` (the same site written for both frameworks)
in a process of its own on a free loopback port, with its cache on a SQLite
file of the run; it is stopped (terminate, wait) after the module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from http_safety_apps import FILE, FILE_ETAG, LAST_MODIFIED, TOKEN

from servers import free_port

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 20.0
CACHE_VARIABLES = ("CACHE_", "REDIS_", "DATABASE_URL", "ENVIRONMENT", "PURGE_TOKEN")


def command(framework: str, port: int) -> list[str]:
    if framework == "flask":
        return [sys.executable, "-m", "flask", "--app", "http_safety_apps:create_flask()", "run", "--port", str(port)]
    return [
        sys.executable, "-m", "uvicorn", "http_safety_apps:create_starlette", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--app-dir", str(HERE),
        "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1",
    ]  # fmt: skip


@pytest.fixture(scope="module", params=["starlette", "flask"])
def base_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    framework: str = request.param
    folder = tmp_path_factory.mktemp(framework)
    env = {name: value for name, value in os.environ.items() if not name.startswith(CACHE_VARIABLES)}
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env.update(PYTHONPATH=path, CACHE_DATABASE_URL=f"sqlite:///{folder / 'cache.sqlite3'}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command(framework, port), cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"{framework} exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/dated", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{framework} did not answer within {START_TIMEOUT} s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        yield http


def get(client: httpx.Client, path: str, **headers: str) -> httpx.Response:
    """A GET sending exactly these headers (the client keeps no cookies between calls)."""
    client.cookies.clear()
    return client.get(path, headers={name.replace("_", "-"): value for name, value in headers.items()})


def test_a_page_for_one_users_cookie_is_never_served_to_another(client: httpx.Client) -> None:
    alice = get(client, "/me", cookie="session=alice")
    bob = get(client, "/me", cookie="session=bob")
    assert (alice.json(), bob.json()) == ({"user": "alice"}, {"user": "bob"})
    assert (alice.headers["x-cache"], bob.headers["x-cache"]) == ("BYPASS", "BYPASS")
    anonymous = [get(client, "/me") for _ in range(2)]
    assert [r.headers["x-cache"] for r in anonymous] == ["MISS", "HIT"]
    carol = get(client, "/me", cookie="session=carol")  # not served the anonymous page either
    assert (carol.json(), carol.headers["x-cache"]) == ({"user": "carol"}, "BYPASS")


def test_a_page_for_one_users_authorization_is_never_served_to_another(client: httpx.Client) -> None:
    alice = get(client, "/me", authorization="Bearer alice")
    bob = get(client, "/me", authorization="Bearer bob")
    assert (alice.json(), bob.json()) == ({"user": "alice"}, {"user": "bob"})


def test_responses_marked_shareable_serve_credentialed_requests(client: httpx.Client) -> None:
    alice = get(client, "/me-vary", cookie="session=alice")
    again = get(client, "/me-vary", cookie="session=alice")
    bob = get(client, "/me-vary", cookie="session=bob")
    assert [r.headers["x-cache"] for r in (alice, again, bob)] == ["MISS", "HIT", "MISS"]
    assert (again.json(), bob.json()) == ({"user": "alice"}, {"user": "bob"})
    first = get(client, "/shared", cookie="session=alice")
    second = get(client, "/shared", authorization="Bearer bob")
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.content == first.content


def test_an_untrusted_forwarding_header_cannot_poison_the_page(client: httpx.Client) -> None:
    for name in ("x_forwarded_host", "forwarded", "x_original_url", "x_rewrite_url", "x_forwarded_scheme"):
        poisoned = get(client, "/link", **{name: "evil.test"})
        assert poisoned.headers["x-cache"] == "BYPASS"
    clean = get(client, "/link")
    assert (clean.headers["x-cache"], clean.text) == ("MISS", f"http://{client.base_url.netloc.decode()}/next")
    assert get(client, "/link", x_forwarded_host="evil.test").headers["x-cache"] == "BYPASS"  # not served either
    assert get(client, "/link").headers["x-cache"] == "HIT"


def test_the_scheme_is_part_of_the_key(client: httpx.Client) -> None:
    # the server rewrites the scheme from the trusted X-Forwarded-Proto (uvicorn --proxy-headers, ProxyFix)
    host = client.base_url.netloc.decode()
    plain = get(client, "/link?scheme")
    secure = get(client, "/link?scheme", x_forwarded_proto="https")
    assert (plain.text, secure.text) == (f"http://{host}/next", f"https://{host}/next")
    assert (plain.headers["x-cache"], secure.headers["x-cache"]) == ("MISS", "MISS")
    assert get(client, "/link?scheme", x_forwarded_proto="https").text == f"https://{host}/next"
    assert get(client, "/link?scheme").text == f"http://{host}/next"


def test_purge_answers_on_the_path_without_a_trailing_slash(client: httpx.Client) -> None:
    get(client, "/many-tags")
    refused = client.post("/_cache/purge", json={"tags": ["x"]})
    assert refused.status_code == 401
    purged = client.post("/_cache/purge", json={"tags": ["x"]}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (purged.status_code, purged.json()) == (200, {"purged": purged.json()["purged"], "tags": ["x"]})


def test_thousands_of_tags_do_not_fail_the_request(client: httpx.Client) -> None:
    first = get(client, "/many-tags")
    second = get(client, "/many-tags")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.text.startswith("tagged")
    assert "cache-tag" not in first.headers


def test_any_status_with_explicit_freshness_is_stored(client: httpx.Client) -> None:
    for code in (299, 499, 599):
        first = get(client, f"/status/{code}")
        second = get(client, f"/status/{code}")
        assert (first.status_code, second.status_code) == (code, code)
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
        assert second.content == first.content
    unknown = [get(client, "/must-understand/299") for _ in range(2)]
    assert [r.headers["x-cache"] for r in unknown] == ["BYPASS", "BYPASS"]


def test_vary_on_a_list_valued_field_ignores_order_case_and_whitespace(client: httpx.Client) -> None:
    first = get(client, "/lang", accept_language="en-US,fr;q=0.8")
    second = get(client, "/lang", accept_language="fr;q=0.8 ,  en-us")
    other = get(client, "/lang", accept_language="de")
    assert [r.headers["x-cache"] for r in (first, second, other)] == ["MISS", "HIT", "MISS"]
    assert second.content == first.content


def test_if_modified_since_gets_304_from_a_stored_date_without_last_modified(client: httpx.Client) -> None:
    stored = get(client, "/dated")
    assert "last-modified" not in stored.headers
    later = get(client, "/dated", if_modified_since="Fri, 01 Jan 2100 00:00:00 GMT")
    earlier = get(client, "/dated", if_modified_since="Mon, 01 Jan 2001 00:00:00 GMT")
    assert (later.status_code, later.headers["x-cache"], later.content) == (304, "HIT", b"")
    assert (earlier.status_code, earlier.content) == (200, stored.content)


def test_stale_if_error_serves_the_stored_page_when_the_app_fails(client: httpx.Client) -> None:
    stored = get(client, "/flaky")
    assert stored.headers["x-cache"] == "MISS"
    try:
        for mode in ("raise", "503"):
            assert client.post("/_state", json={"fail": mode}).status_code == 200
            time.sleep(1.1)  # max-age=1 has passed: the page is stale and the app is asked
            failed = get(client, "/flaky")
            assert (failed.status_code, failed.headers["x-cache"], failed.content) == (200, "STALE", stored.content)
    finally:
        client.post("/_state", json={"fail": None})
    time.sleep(1.1)
    recovered = get(client, "/flaky")
    assert (recovered.status_code, recovered.headers["x-cache"]) == (200, "MISS")
    assert recovered.content != stored.content


def test_ranges_are_served_from_a_stored_200(client: httpx.Client) -> None:
    whole = get(client, "/file")
    assert (whole.status_code, whole.content) == (200, FILE)
    single = get(client, "/file", range="bytes=10-19")
    assert (single.status_code, single.headers["content-range"], single.content) == (
        206,
        "bytes 10-19/1024",
        FILE[10:20],
    )
    assert single.headers["x-cache"] == "HIT"
    suffix = get(client, "/file", range="bytes=-4")
    assert (suffix.status_code, suffix.content) == (206, FILE[-4:])
    several = get(client, "/file", range="bytes=0-1, 1000-")
    assert several.status_code == 206
    assert several.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert b"Content-Range: bytes 0-1/1024" in several.content
    assert b"Content-Range: bytes 1000-1023/1024" in several.content
    assert FILE[1000:] in several.content
    beyond = get(client, "/file", range="bytes=5000-")
    assert (beyond.status_code, beyond.headers["content-range"]) == (416, "bytes */1024")
    matching = get(client, "/file", range="bytes=0-3", if_range=FILE_ETAG)
    assert (matching.status_code, matching.content) == (206, FILE[:4])
    dated = get(client, "/file", range="bytes=0-3", if_range=LAST_MODIFIED)
    assert (dated.status_code, dated.content) == (206, FILE[:4])
    changed = get(client, "/file", range="bytes=0-3", if_range='"file-v0"')
    assert (changed.status_code, changed.content) == (200, FILE)
