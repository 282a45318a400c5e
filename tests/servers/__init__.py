"""Loopback emulators of the remote services the plugin talks to.

Each server binds 127.0.0.1 on a free port, runs in a daemon thread, and is stopped by
the test that started it (use it as a context manager). They speak the real wire
formats: a STAC API item search, an OAuth2 client-credentials token endpoint, the
Sentinel Hub Catalog API, the Sentinel Hub Process API (``process_api``, answering from the
synthetic world of ``s2_world``), and a static file server with HTTP range requests (what
a COG reader needs). ``LoopbackServer.script``/``fault`` make them fail on purpose, and
``hostile`` adds servers that misbehave by design (trickling, catching leaks, huge answers).
"""
