"""Use cases: one function per user action, called alike by the API, the web pages and the CLI.

Each opens its own transaction(s) and does its side effects (cache invalidation, metrics,
logs) in one place; it raises the neutral errors of ``merchant_backend.errors`` and returns
typed results. Adapters only parse input, call a service and render its answer.

The adapters (``api``, ``web``, ``cli``) never import ``store/`` (the ``adapters-no-store``
contract): a row type or constant they need is re-exported by the service that returns or
takes it, written ``from merchant_backend.store.x import Name as Name`` (mypy's explicit
re-export), so it stays one object with one home.
"""
