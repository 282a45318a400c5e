"""``samples.csv``: one row per sample, readable without GDAL, zarr or torch.

It is the dataset's table of contents for training code (which file, which split, which
dates) and fills in what a format cannot hold itself (DeepSatData pickles keep only day
of year and year, not the acquisition times).
"""
from __future__ import annotations

import csv
from pathlib import Path

NAME = "samples.csv"
COLUMNS = ("index", "sample_id", "split", "path", "row", "col", "n_dates", "date_index", "dates", "cloud")


def record(sample, path: str) -> dict:
    return {
        "index": sample.index,
        "sample_id": sample.sample_id,
        "split": sample.split,
        "path": path,
        "row": sample.row,
        "col": sample.col,
        "n_dates": len(sample.dates),
        "date_index": ";".join(str(int(i)) for i in sample.date_index),
        "dates": ";".join(sample.iso_dates),
        "cloud": ";".join(f"{float(c):.9g}" for c in sample.cloud),
    }


def write_samples_csv(folder: Path, records: list) -> Path:
    path = Path(folder) / NAME
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(records, key=lambda r: r["index"]))
    return path


def read_samples_csv(folder: Path) -> list:
    with open(Path(folder) / NAME, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for key in ("index", "row", "col", "n_dates"):
            r[key] = int(r[key])
        r["date_index"] = [int(v) for v in r["date_index"].split(";") if v != ""]
        r["dates"] = [v for v in r["dates"].split(";") if v]
        r["cloud"] = [float(v) for v in r["cloud"].split(";") if v != ""]
    return rows
