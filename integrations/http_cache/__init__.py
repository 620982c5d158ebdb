"""The pure HTTP-caching core (RFC 9111 shared cache) behind `cachetier.integrations.asgi` and `.wsgi`.

Nothing here does I/O: `directives` parses, `freshness` computes lifetimes and
ages, `storage` lays out entries and variants, `conditional` evaluates
validators, `policy` decides, `responses` builds headers, and `flow` strings
those together as steps the drivers execute.
"""
