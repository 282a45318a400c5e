"""Band names and presets, checked once before anything is fetched.

A wrong band name found after ten dates have been downloaded wastes the user's quota,
so the list is validated against the collections of the products up front. The bands
themselves, their resolutions and the masks' values are in ``core/sentinel2.py``.
"""

from __future__ import annotations

from ..errors import SatPluginError
from ..sentinel2 import L1C_BANDS, L2A_BANDS, SCL, canonical_band

BAND_PRESETS = {
    "rgbn_10m": ["B02", "B03", "B04", "B08"],
    "l2a_all": list(L2A_BANDS),
    "l1c_all": list(L1C_BANDS),
}

# The mask layer written beside each image, per collection and backend. Earth Search
# and SAFE L1C products carry no ready-made cloud mask; Sentinel Hub computes CLM.
FILE_MASKS = {"L2A": "SCL", "L1C": None}
SENTINELHUB_MASKS = {"L2A": "SCL", "L1C": "CLM"}


def resolve_bands(bands) -> list[str]:
    """Canonical band names in the order given; a preset name expands to its list."""
    if isinstance(bands, str):
        bands = BAND_PRESETS.get(bands, [bands])
    if not bands:
        raise SatPluginError("Choose at least one band to download (e.g. B02, B03, B04, B08).")
    out: list[str] = []
    for name in bands:
        if isinstance(name, str) and name in BAND_PRESETS:
            out.extend(b for b in BAND_PRESETS[name] if b not in out)
            continue
        band = canonical_band(str(name))
        if band is None:
            raise SatPluginError(f"Unknown Sentinel-2 band {name!r}; use names like B02, B8A or B11.")
        if band == SCL:
            raise SatPluginError("SCL is a mask, not a reflectance band: it is written beside each image when masks are on.")
        if band not in out:
            out.append(band)
    return out


def check_bands_for(bands: list[str], collections) -> None:
    """Refuse bands that some of the products cannot have (B10 in L2A)."""
    if "B10" in bands and "L2A" in set(collections):
        raise SatPluginError("B10 (cirrus) exists only in L1C products; remove it or download L1C products.")
