"""Use cases: one function per user action, called alike by the API, the web pages and the CLI.

Each opens its own transaction(s) and does its side effects (cache invalidation, metrics,
logs) in one place; it raises the neutral errors of ``merchant_backend.errors`` and returns
typed results. Adapters only parse input, call a service and render its answer.
"""
