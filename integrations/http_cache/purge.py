"""The protected tag-purge endpoint's request handling, shared by its ASGI and WSGI forms."""

from __future__ import annotations

import hmac
from typing import Any, Final

import orjson

from cachetier.integrations.http_cache.headers import Headers, get_first

PurgeAnswer = tuple[int, dict[str, Any], list[str]]

MAX_PURGE_BODY: Final = 1024 * 1024
"""Largest purge request body read, in bytes (thousands of tags); a larger one is answered 413."""

TOO_LARGE: Final[PurgeAnswer] = (413, {"error": f"body is larger than {MAX_PURGE_BODY} bytes"}, [])


def refuse_purge(method: str, headers: Headers, token: str) -> PurgeAnswer | None:
    """The answer to a request refused before its body is read (405, 401, 403); None when it may go on.

    The drivers call this first, so an unauthenticated client cannot make them buffer a body.
    """
    if method != "POST":
        return 405, {"error": "use POST"}, []
    authorization = get_first(headers, "authorization") or ""
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401, {"error": "missing bearer token"}, []
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return 403, {"error": "invalid token"}, []
    return None


def check_purge(method: str, headers: Headers, body: bytes, token: str) -> PurgeAnswer:
    """(status, JSON payload, tags to purge). Tags are non-empty only with status 200.

    401 without a bearer token, 403 with a wrong one (compared in constant
    time), 405 for methods other than POST, 400 for a body that is not
    `{"tags": [str, ...]}`.
    """
    refused = refuse_purge(method, headers, token)
    if refused is not None:
        return refused
    try:
        payload = orjson.loads(body or b"null")
    except orjson.JSONDecodeError:
        return 400, {"error": "body must be JSON"}, []
    tags = payload.get("tags") if isinstance(payload, dict) else None
    if not isinstance(tags, list) or not tags or not all(isinstance(tag, str) and tag for tag in tags):
        return 400, {"error": 'body must be {"tags": ["tag", ...]}'}, []
    return 200, {}, list(dict.fromkeys(tags))
