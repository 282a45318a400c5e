"""An OAuth client's id and secret, as the plugin's QGIS side reads them from its authentication database.

Plain (no HTTP library), so that the QGIS side can hold them without the engine's packages;
:mod:`.sentinelhub_auth` finds them and gets tokens with them.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credentials:
    """OAuth client credentials; the secret never appears in ``repr``."""

    client_id: str
    client_secret: str = field(repr=False)
