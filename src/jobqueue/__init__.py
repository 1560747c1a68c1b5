"""Simulated jobs that run through a Cloudflare Queue and are tracked in Workers KV.

Every module here is plain Python that runs under CPython 3.11 and under
Pyodide. Only ``store`` calls a platform binding (KV), and it does so through
the binding's Python-facing methods, so tests can pass an in-memory stand-in.
"""
