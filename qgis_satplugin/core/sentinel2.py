"""Sentinel-2 facts, written once: bands, resolutions, scene classes, mask values, names.

These are ESA's (the MSI instrument and the L1C/L2A product format) or a provider's
(Sentinel Hub's cloud mask, the STAC common names), not choices of this plugin. The
search, the download, the export and super-resolution all read them. With one copy, a
fact cannot be corrected in one step and left wrong in another. What a step *does* with a
fact (which mask a backend writes, whether no-data pixels count against a date) stays
with that step.

Plain Python, with no numpy, rasterio or qgis, so that any module can import it.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

# -- Bands -------------------------------------------------------------------------------

# The 13 spectral bands of the MSI in ESA's order: B8A (narrow NIR, 865 nm) comes after B08.
L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
# B10 (cirrus, 1375 nm) is used by the atmospheric correction and is not part of L2A products.
L2A_BANDS = tuple(b for b in L1C_BANDS if b != "B10")
# The L2A scene classification layer, which the atmospheric correction writes beside the bands.
SCL = "SCL"
# Every layer a product can hold, under its canonical name (SCL only in L2A).
PRODUCT_LAYERS = L1C_BANDS + (SCL,)

# Metres per pixel of each layer in the products as ESA distributes them.
NATIVE_RESOLUTION_M = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B09": 60,
    "B10": 60,
    "B11": 20,
    "B12": 20,
    "SCL": 20,
}

# STAC's ``eo:common_name`` of each band, which Earth Search v1 uses as asset keys (older
# catalogues and the sentinel-s2-l2a-cogs layout use the band ids). ``scl`` is Earth
# Search's asset key for the scene classification.
COMMON_NAMES = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}

# A band written by its number, any case, with or without the leading zero: B2, b02, B8a.
_BAND_NUMBER = re.compile(r"[bB](\d{1,2}|8[aA])")
# File endings a band's file name may carry; the canonical name is the name without them.
_FILE_SUFFIXES = (".tif", ".tiff", ".jp2")


def _numbered_band(text: str) -> str | None:
    m = _BAND_NUMBER.fullmatch(text)
    if not m:
        return None
    num = m.group(1).upper()
    band = "B8A" if num == "8A" else f"B{int(num):02d}"
    return band if band in L1C_BANDS else None


def canonical_band_name(name: str | None) -> str | None:
    """``B2``, ``b02``, `` B8a `` -> ``B02``, ``B8A``; anything else (``SCL``, ``red``) -> None.

    The strict reading, for band names that need not be Sentinel-2's: a raster's band
    descriptions, a model's band list. There ``red`` may be another sensor's red (the
    WorldStrat models' outputs are SPOT red, green and blue), so only the band-number
    spelling is taken as a Sentinel-2 band.
    """
    if not name:
        return None
    return _numbered_band(name.strip())


def canonical_band(name: str) -> str | None:
    """``blue``, ``B02``, ``b2``, ``B02.tif`` or ``blue-jp2`` -> ``B02``; ``scl`` -> ``SCL``; unknown -> None.

    The lenient reading, for names known to come from a Sentinel-2 product: a STAC
    item's asset keys and the file names in a product folder. It takes every spelling
    :func:`canonical_band_name` takes, plus the STAC common names and the SCL layer, with
    or without a file ending.
    """
    key = name.strip()
    for suffix in _FILE_SUFFIXES:
        if key.lower().endswith(suffix):
            key = key[: -len(suffix)]
    key = key.lower()
    if key.endswith("-jp2"):
        # Earth Search also lists JPEG 2000 copies; the caller decides whether it wants them.
        key = key[:-4]
    if key in COMMON_NAMES:
        return COMMON_NAMES[key]
    return _numbered_band(key)


# -- Scene classification (SCL) of L2A products ----------------------------------------------

SCL_NO_DATA = 0  # outside the swath, or not processed
SCL_SATURATED_OR_DEFECTIVE = 1
SCL_DARK_AREA = 2  # dark features and topographic shadow
SCL_CLOUD_SHADOW = 3
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5  # bare soil and built-up
SCL_WATER = 6
SCL_UNCLASSIFIED = 7
SCL_CLOUD_MEDIUM = 8  # cloud, medium probability
SCL_CLOUD_HIGH = 9  # cloud, high probability
SCL_THIN_CIRRUS = 10
SCL_SNOW = 11  # snow or ice

# The SCL classes counted as cloud by every step (date filtering, AOI cloud %, revisit
# choice). Cloud shadow counts because it hides the ground as surely as the cloud that
# casts it: its pixels are dark and their reflectance is wrong. Thin cirrus counts because
# it biases the reflectance even where the ground shows through. Not counted: dark areas
# and topographic shadow (2), which are terrain and come back on every date, so counting
# them would drop shaded slopes for good; unclassified (7), saturated (1) and snow (11),
# which are not cloud. No data (0) is not cloud either: each step handles it on its own.
SCL_CLOUD_CLASSES = (SCL_CLOUD_SHADOW, SCL_CLOUD_MEDIUM, SCL_CLOUD_HIGH, SCL_THIN_CIRRUS)

# -- Sentinel Hub's cloud mask (CLM) ------------------------------------------------------

# Sentinel Hub computes CLM (s2cloudless) for L1C products, which carry no ready-made mask.
CLM_CLEAR = 0
CLM_CLOUD = 1
CLM_NO_DATA = 255  # 0 and 1 are taken, so no data is the top of the uint8 range

# -- The masks written beside the images, by kind ---------------------------------------------

# Values of each mask kind that count as cloud (see SCL_CLOUD_CLASSES for the reasons).
MASK_CLOUD_VALUES = {"SCL": SCL_CLOUD_CLASSES, "CLM": (CLM_CLOUD,)}
# The no-data value of each mask kind: SCL class 0 is "no data"; CLM uses 0 and 1.
MASK_NODATA = {"SCL": SCL_NO_DATA, "CLM": CLM_NO_DATA}

# -- Digital numbers and processing baselines ---------------------------------------------

# L1C and L2A products store reflectance x 10000 (QUANTIFICATION_VALUE) as uint16, so one DN
# is this much reflectance (after the offset below is taken off, where there is one).
REFLECTANCE_SCALE = 0.0001

# Since processing baseline 04.00 (January 2022) ESA adds this to every digital number
# (BOA_ADD_OFFSET / RADIO_ADD_OFFSET = -1000) so that negative reflectances survive in an
# unsigned integer; :mod:`.download.harmonize` decides when to take it off again.
BOA_OFFSET_DN = 1000
OFFSET_BASELINE = (4, 0)
# Every product processed from this day on uses baseline 04.00 or later, so the date decides
# for a product whose baseline is unknown.
OFFSET_EPOCH = datetime(2022, 1, 25, tzinfo=timezone.utc)


def format_baseline(value: Any) -> str | None:
    """``N0214``, ``0214``, ``2.14``, ``02.14`` -> ``02.14``.

    Product names say ``N0214``, STAC items and metadata files ``02.14``; one spelling
    lets products from any source be compared.
    """
    if value is None or value == "":
        return None
    text = str(value).strip().upper().lstrip("N")
    m = re.fullmatch(r"(\d{1,2})\.(\d{1,2})", text)
    if m:
        return f"{int(m.group(1)):02d}.{int(m.group(2)):02d}"
    if re.fullmatch(r"\d{4}", text):
        return f"{text[:2]}.{text[2:]}"
    return text


def baseline_key(baseline: str | None) -> tuple[int, int]:
    """Sortable form of a processing baseline (``04.00`` -> ``(4, 0)``); unknown sorts oldest."""
    if not baseline:
        return (-1, -1)
    try:
        major, minor = baseline.split(".")
        return (int(major), int(minor))
    except ValueError:
        return (-1, -1)
