"""Layers around the cachetier core (ASGI/WSGI middleware, decorators, cache-aside); they use only its public API."""
