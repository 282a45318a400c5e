"""Emulator of the Sentinel Hub OAuth token endpoint and Catalog API (CDSE flavour).

Token endpoint: a form POST with ``grant_type=client_credentials`` and the client id
and secret (in the form or as HTTP Basic auth, as OAuth2 allows), answered with
``access_token``/``expires_in``/``token_type``, or 401 ``invalid_client`` like Keycloak.

Catalog: ``POST /api/v1/catalog/1.0.0/search`` with a bearer token; a STAC
ItemCollection whose ``context`` carries ``limit``, ``returned`` and, while more remain,
``next`` (an integer to send back as ``next`` in the body).
"""

from __future__ import annotations

import base64
import re
import uuid
from urllib.parse import unquote

from .base import LoopbackServer, Request, json_answer
from .stac_api import matches

TOKEN_PATH = "/auth/realms/CDSE/protocol/openid-connect/token"
CATALOG_PATH = "/api/v1/catalog/1.0.0/search"
_CLOUD_FILTER = re.compile(r"eo:cloud_cover\s*(<=|<|>=|>|=)\s*([0-9.]+)")


class SentinelHubServer(LoopbackServer):
    def __init__(
        self, items=(), *, client_id="test-client", client_secret="test-secret", max_limit=100, expires_in=3600
    ):
        super().__init__()
        self.items = list(items)
        self.client_id = client_id
        self.client_secret = client_secret
        self.max_limit = max_limit
        self.expires_in = expires_in
        self.tokens: set[str] = set()

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    def revoke_tokens(self):
        """Make every issued token invalid, as if it had expired on the server."""
        self.tokens.clear()

    def handle(self, req: Request):
        if req.path == TOKEN_PATH and req.method == "POST":
            return self._token(req)
        if req.path == CATALOG_PATH and req.method == "POST":
            return self._search(req)
        return json_answer(404, {"error": {"status": 404, "reason": "Not Found", "message": req.path}})

    def _token(self, req: Request):
        if "application/x-www-form-urlencoded" not in req.headers.get("content-type", ""):
            return json_answer(400, {"error": "invalid_request", "error_description": "form body expected"})
        form = req.form
        cid, secret = form.get("client_id"), form.get("client_secret")
        auth = req.headers.get("authorization", "")
        if auth.startswith("Basic "):
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            cid, secret = unquote(cid), unquote(secret)
        if form.get("grant_type") != "client_credentials":
            return json_answer(400, {"error": "unsupported_grant_type"})
        if cid != self.client_id or secret != self.client_secret:
            return json_answer(
                401, {"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}
            )
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return json_answer(
            200,
            {
                "access_token": token,
                "expires_in": self.expires_in,
                "refresh_expires_in": 0,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "scope": "email profile",
            },
        )

    def _search(self, req: Request):
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            message = "You are not authorized! Please provide a valid access token."
            return json_answer(401, {"error": {"status": 401, "reason": "Unauthorized", "message": message}})
        body = dict(req.json or {})
        offset = int(body.pop("next", 0) or 0)
        limit = min(int(body.get("limit") or 10), self.max_limit)
        query = {}
        cql = body.get("filter")
        if isinstance(cql, str) and body.get("filter-lang", "cql2-text") == "cql2-text":
            for op, value in _CLOUD_FILTER.findall(cql):
                name = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "=": "eq"}[op]
                query.setdefault("eo:cloud_cover", {})[name] = float(value)
        found = [it for it in self.items if matches(it, {**body, "query": query})]
        page = found[offset : offset + limit]
        context = {"limit": limit, "returned": len(page)}
        if offset + limit < len(found):
            context["next"] = offset + limit
        return json_answer(200, {"type": "FeatureCollection", "features": page, "links": [], "context": context})
