"""The pure HTTP-caching core (RFC 9111 shared cache) behind `cachetier.integrations.asgi` and `.wsgi`.

Usage::

    from cachetier.integrations.asgi import CacheMiddleware, purge_endpoint
    app.add_middleware(CacheMiddleware, cache=cache, cdn_dialects=["fastly"])

    from cachetier.integrations.wsgi import CacheMiddleware
    app.wsgi_app = CacheMiddleware(app.wsgi_app, cache=SyncCache(manager))

Nothing here does I/O: `directives` parses Cache-Control and targeted fields,
`freshness` computes lifetimes and ages, `storage` lays out entries and
variants, `conditional` evaluates validators, `policy` decides (storable?
servable? revalidate?), `responses` builds stored entries and client headers,
and `flow` strings those together as steps both drivers execute. `hits`
memoises parsed stored values. `asgi_scope` and `wsgi_environ` read ASGI
scopes and WSGI environs, including what `plain` GET and HEAD requests need:
both drivers answer their fresh hits (and 304s) on a short path, without
building a `Request`.

`X-Cache` says what happened: HIT (fresh, from storage), MISS (from the app,
stored), STALE (stale from storage: max-stale, stale-while-revalidate,
stale-if-error), REVALIDATED (the app answered 304; stored body served) or
BYPASS (neither stored nor served from storage: another method, a credentialed
request, an untrusted forwarding field, an unstorable response or one the cache
refused). `Age` is on every response served from storage. `request` holds what
makes a request unsafe to share, `ranges` the Range rules, `cache_calls` the
drivers' fault-tolerant cache calls.

Known limits: partial content is stored only when one 206 holds the whole
representation (parts are never combined); a 304 is applied to the entry whose
validators were sent without re-checking its ETag (RFC 9111 4.3.4 selection);
`Warning` is not generated (obsoleted by RFC 9111); two processes adding
different variants of one URL at the same instant can drop one from the variant
index (it is re-added on its next miss).
"""
