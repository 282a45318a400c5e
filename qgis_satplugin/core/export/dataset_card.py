"""The dataset card: ``dataset.json`` for code, ``dataset.md`` for people.

It records where the data came from (products, dates, bands, scale/offset, grid), how it
was cut (every export parameter, what each filter dropped, how splits were made), what
it holds (samples, and label pixels per class and split, each pixel once) and the normalisation
statistics a model needs. Statistics come from the train split only, so validation and
test data never leak into preprocessing. It also lists every file the export wrote
(``contents``), which is what lets a later export replace them and nothing else. The
card holds no timestamps: the same inputs give the same card.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..image_series.dates import iso_z

FORMAT = "satplugin-export/1"
JSON_NAME = "dataset.json"
MD_NAME = "dataset.md"
# The card's list of every file and folder the export wrote (itself included): a later
# export into the same folder replaces these and refuses to touch anything else.
CONTENTS_KEY = "contents"


class BandStatistics:
    """Running mean and standard deviation of reflectance per band (valid pixels only)."""

    def __init__(self, bands: list):
        self.bands = list(bands)
        self.count = np.zeros(len(bands), dtype=np.int64)
        self.total = np.zeros(len(bands), dtype=np.float64)
        self.squares = np.zeros(len(bands), dtype=np.float64)

    def add(self, values: np.ndarray, band_index, scale: np.ndarray, offset: np.ndarray, nodata):
        """``values`` [T, Cg, h, w] in DN; ``scale``/``offset`` [T, C] for all bands.

        Sums of DN and DN² per date and band (exact in float64 for 16-bit data) are turned
        into sums of reflectance with that date's scale and offset, so the pixels are
        never converted one by one.
        """
        idx = list(band_index)
        t, c = values.shape[:2]
        flat = values.reshape(t, c, -1).astype(np.float64)
        s1 = flat.sum(axis=2)
        s2 = np.einsum("tcp,tcp->tc", flat, flat)
        n = np.full((t, c), flat.shape[2], dtype=np.float64)
        if nodata is not None:
            missing = (values.reshape(t, c, -1) == nodata).sum(axis=2)
            n -= missing
            s1 -= nodata * missing
            s2 -= float(nodata) ** 2 * missing
        a, b = scale[:, idx], offset[:, idx]
        self.count[idx] += n.sum(axis=0).astype(np.int64)
        self.total[idx] += (a * s1 + b * n).sum(axis=0)
        self.squares[idx] += (a * a * s2 + 2 * a * b * s1 + b * b * n).sum(axis=0)

    def merge(self, other: "BandStatistics") -> None:
        """Add another part's sums (the export adds its chunks' in chunk order, so the floats do not depend on who summed)."""
        self.count += other.count
        self.total += other.total
        self.squares += other.squares

    def as_dict(self) -> dict:
        out = {}
        for i, band in enumerate(self.bands):
            n = int(self.count[i])
            if n == 0:
                out[band] = {"mean": None, "std": None, "pixels": 0}
                continue
            mean = self.total[i] / n
            var = max(self.squares[i] / n - mean * mean, 0.0)
            out[band] = {"mean": round(float(mean), 6), "std": round(float(np.sqrt(var)), 6), "pixels": n}
        return out


def licence_line(dates) -> str:
    years = sorted({d.year for d in dates})
    span = str(years[0]) if len(years) == 1 else f"{years[0]}-{years[-1]}"
    return f"Contains modified Copernicus Sentinel data {span}"


def write_card(folder: Path, card: dict) -> tuple:
    json_path = Path(folder) / JSON_NAME
    json_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path = Path(folder) / MD_NAME
    md_path.write_text(_markdown(card), encoding="utf-8")
    return json_path, md_path


def _markdown(card: dict) -> str:
    g = card["grid"]
    lines = [
        "# Sentinel-2 patch dataset",
        "",
        f"{card['n_samples']} samples of {card['patch_size']} x {card['patch_size']} px "
        f"({card['sample_format']} format), cut from {len(card['dates'])} dates on a {g['width']} x {g['height']} px grid "
        f"({g['crs']}, {g['pixel_size'][0]:g} x {g['pixel_size'][1]:g} per pixel).",
        "",
        f"**Licence / attribution:** {card['attribution']}. {card['licence']}",
        "",
        "## Splits",
        "",
        "| split | samples | label pixels per class |",
        "|---|---|---|",
    ]
    for name, info in card["splits"].items():
        classes = ", ".join(f"{k}: {v}" for k, v in info["class_pixels"].items()) or "-"
        lines.append(f"| {name} | {info['samples']} | {classes} |")
    lines += ["", "Label pixels per class: the class raster's pixels (no-data left out) under the split's patches, "
              "each label pixel counted once per split however many overlapping patches hold it; the per-sample "
              "histograms in `index.gpkg` count per patch.",
              "", f"Splits: {card['split_method']['method']}, blocks of {card['split_method']['block_size']} px "
              "(the last block of a row or column also takes a strip left at the grid's edge that is narrower than a patch); "
              "a patch is kept only when every block it touches has the same split, so no pixel is in two splits.", ""]
    if any(card["dropped"].values()):
        lines += [f"Of {card['candidates']} candidate patches:"]
        lines += [f"- {n} dropped: {why}" for why, n in card["dropped"].items() if n]
        lines.append("")
    lines += ["## Bands", "", "Reflectance = scale x DN + offset (per date; see `dataset.json`). "
              f"Normalisation statistics (reflectance, {card['normalisation']['split']} split only):", "",
              "| band | mean | std | pixels |", "|---|---|---|---|"]
    for band, s in card["normalisation"]["bands"].items():
        mean = "-" if s["mean"] is None else f"{s['mean']:.5f}"
        std = "-" if s["std"] is None else f"{s['std']:.5f}"
        lines.append(f"| {band} | {mean} | {std} | {s['pixels']} |")
    lines += ["", f"Band resolution: {card['band_resolution']}{_sharpening_line(card.get('sharpening'))}.", "", "## Sources", "", "| date | file | product | mask |", "|---|---|---|---|"]
    for src in card["sources"]:
        lines.append(f"| {src['datetime']} | {src['file']} | {src['product_id'] or '-'} | {src['mask'] or '-'} |")
    lines += ["", "## Labels", ""]
    if card["labels"]:
        lines += [f"- `{name}`: {spec['file']} ({spec['dtype']}, {_nodata_text(spec['nodata'])})"
                  for name, spec in card["labels"].items()]
        lines.append(f"- label scale: {card['label_scale']} (label pixels per image pixel along each axis)")
    else:
        lines.append("No labels.")
    lines += ["", "## Files", "", f"- `{card['files']['index']}`: sample footprints, split, path, dates, class histogram",
              f"- `{card['files']['samples']}`: one row per sample (path, split, dates)", f"- `{JSON_NAME}`: this card for code"]
    if "stac" in card["files"]:
        lines += [f"- `{card['files']['stac']}` and `stac/`: a STAC collection with one item per sample (footprint, dates, "
                  "assets; `ml-aoi:split`, `label` extension)",
                  f"- `{card['files']['croissant']}`: Croissant (MLCommons) description of the files, fields and splits"]
    lines.append("")
    return "\n".join(lines)


def _sharpening_line(sharpening) -> str:
    if not sharpening:
        return ""
    unchanged = ", ".join(sharpening["not_sharpened"])
    kept = sharpening["reflectance_preserved"]
    on = "" if kept["preserved"] == kept["dates"] else (
        f" on {kept['preserved']} of {kept['dates']} dates (the others' native pixels do not start at the grid's "
        "origin: see the export's log)")
    return (f" ({', '.join(sharpening['bands'])} sharpened to 10 m by `{sharpening['model']}`, each 20 m pixel keeping "
            f"its value{on}" + (f"; {unchanged} as the images hold them" if unchanged else "") + ")")


def source_rows(series) -> list:
    return [
        {"file": im.path.name, "datetime": iso_z(im.when), "product_id": im.product_id,
         "mask": im.mask_path.name if im.mask_path else None}
        for im in series.images
    ]


def _nodata_text(value) -> str:
    return "no no-data value" if value is None else f"no-data {value}"
