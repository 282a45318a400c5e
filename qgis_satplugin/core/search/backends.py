"""What a search backend is: the one method the search step calls.

:class:`~.catalog.CatalogBackend`, :class:`~.stac.StacBackend` and
:class:`~.local.LocalBackend` satisfy it; so can an object from elsewhere (a test's, or
another catalogue's), handed to :func:`.runner.run` as its ``backend``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from ..feedback import Feedback
from ..products import Product


@runtime_checkable
class SearchBackend(Protocol):
    """Finds the Sentinel-2 products of one level over an AOI in a period.

    ``aoi`` is a checked lon/lat geometry, ``start``/``end`` aware UTC datetimes (both
    inclusive), ``collection`` ``"L2A"`` or ``"L1C"``, ``max_cloud`` the scene cloud limit
    in percent (a server may filter on it, the search applies it again). ``feedback``
    receives the backend's own progress on 0..1, its log lines, and is polled for cancel.
    """

    def search(
        self,
        aoi,
        start: datetime,
        end: datetime,
        collection: str,
        max_cloud: float | None = None,
        *,
        feedback: Feedback | None = None,
    ) -> list[Product]: ...
