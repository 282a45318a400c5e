"""HTTP: one client with retries and deadlines, URL and href rules, request signing, Sentinel Hub tokens."""
