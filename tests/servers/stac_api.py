"""A STAC API ``/search`` emulator (the Earth Search v1 dialect).

It filters by ``collections`` (unless ``filter_collections=False``: some servers and
catalogues answer with every collection they hold), ``datetime``, ``intersects``/``bbox``
and the ``query`` extension on ``eo:cloud_cover``, and pages with a ``next`` link. The
search lives at ``{prefix}/search`` (Planetary Computer's prefix is ``/api/stac/v1``).
Three link styles are available because real servers use all of them:

* ``post-body``: POST, the full body to send with a ``next`` token (Earth Search);
* ``post-merge``: POST, only ``{"next": token}`` with ``merge: true``;
* ``get``: a plain GET href with the token in the query string.
"""

from __future__ import annotations

import uuid

from shapely.geometry import box, shape

from .base import LoopbackServer, Request, json_answer

STAC_SEARCH = "/search"


def _parse_time(text):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def matches(item: dict, body: dict, filter_collections: bool = True) -> bool:
    if filter_collections and body.get("collections") and item.get("collection") not in body["collections"]:
        return False
    if body.get("datetime"):
        start, end = body["datetime"].split("/")
        when = _parse_time(item["properties"]["datetime"])
        if start not in ("", "..") and when < _parse_time(start):
            return False
        if end not in ("", "..") and when > _parse_time(end):
            return False
    geom = shape(item["geometry"])
    if body.get("intersects") and not geom.intersects(shape(body["intersects"])):
        return False
    if body.get("bbox") and not geom.intersects(box(*body["bbox"][:4])):
        return False
    for prop, ops in (body.get("query") or {}).items():
        value = item["properties"].get(prop)
        for op, limit in ops.items():
            ok = {
                "lt": value < limit,
                "lte": value <= limit,
                "gt": value > limit,
                "gte": value >= limit,
                "eq": value == limit,
            }[op]
            if not ok:
                return False
    return True


class StacApiServer(LoopbackServer):
    def __init__(
        self,
        items=(),
        *,
        next_mode: str = "post-body",
        max_limit: int = 100,
        prefix: str = "",
        filter_collections: bool = True,
    ):
        super().__init__()
        self.items = list(items)
        self.next_mode = next_mode
        self.max_limit = max_limit
        self.prefix = prefix.rstrip("/")
        self.filter_collections = filter_collections
        self._cursors: dict = {}  # token -> (search body, offset)

    @property
    def stac_url(self) -> str:
        """The API's root, what a client is given."""
        return self.url + self.prefix

    @property
    def search_url(self) -> str:
        return self.stac_url + STAC_SEARCH

    def handle(self, req: Request):
        if req.path != self.prefix + STAC_SEARCH:
            return json_answer(404, {"code": "NotFound", "description": f"no route {req.path}"})
        if req.method == "POST":
            body = req.json or {}
            token = body.pop("next", None)
            if token is not None and token not in self._cursors:
                return json_answer(400, {"code": "BadRequest", "description": "unknown next token"})
            offset = self._cursors[token][1] if token is not None else 0
            if token is not None and self.next_mode == "post-merge":
                body = {**self._cursors[token][0], **body}
        elif req.method == "GET":
            token = (req.query.get("next") or [None])[0]
            if token not in self._cursors:
                return json_answer(400, {"code": "BadRequest", "description": "GET needs a next token here"})
            body, offset = self._cursors[token]
        else:
            return json_answer(405, {})
        limit = min(int(body.get("limit") or 10), self.max_limit)
        found = [it for it in self.items if matches(it, body, self.filter_collections)]
        page = found[offset : offset + limit]
        answer = {
            "type": "FeatureCollection",
            "numberMatched": len(found),
            "numberReturned": len(page),
            "features": page,
            "links": [{"rel": "root", "href": self.url + "/"}],
        }
        if offset + limit < len(found):
            token = uuid.uuid4().hex
            self._cursors[token] = (body, offset + limit)
            answer["links"].append(self._next_link(body, token))
        return json_answer(200, answer, {"Content-Type": "application/geo+json"})

    def _next_link(self, body: dict, token: str) -> dict:
        link = {"rel": "next", "type": "application/geo+json", "title": "Next page of Items"}
        if self.next_mode == "post-body":
            return {**link, "method": "POST", "href": self.search_url, "merge": False, "body": {**body, "next": token}}
        if self.next_mode == "post-merge":
            return {**link, "method": "POST", "href": self.search_url, "merge": True, "body": {"next": token}}
        return {**link, "method": "GET", "href": f"{self.search_url}?next={token}"}
