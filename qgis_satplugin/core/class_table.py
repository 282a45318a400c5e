"""Class ids for ground-truth labels, and the class table written beside the rasters."""
from __future__ import annotations

import csv
import io
import json
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import SatPluginError

UINT16_MAX_CLASS = 65534  # 65535 is the nodata value of a uint16 class raster


@dataclass
class ClassTable:
    """Class id -> source value and name, with counts filled in after rasterizing.

    Integer fields keep their values as ids; text fields map to 1..K in sorted order.
    Id 0 is background.
    """

    ids: dict = field(default_factory=dict)  # source value -> class id
    names: dict = field(default_factory=dict)  # class id -> name
    pixel_count: dict = field(default_factory=dict)
    parcel_count: dict = field(default_factory=dict)

    @property
    def max_id(self) -> int:
        return max(self.ids.values(), default=0)

    @property
    def dtype(self):
        return np.uint8 if self.max_id <= 254 else np.uint16

    @property
    def nodata(self) -> int:
        return int(np.iinfo(self.dtype).max)

    def rows(self):
        value_of = {cid: value for value, cid in self.ids.items()}
        all_ids = sorted(set(value_of) | {0})
        for cid in all_ids:
            value = value_of.get(cid, 0 if cid == 0 else None)
            name = self.names.get(cid) or ("background" if cid == 0 and cid not in value_of else str(value))
            yield {
                "class_id": int(cid),
                "value": value if not isinstance(value, np.generic) else value.item(),
                "name": name,
                "pixel_count": int(self.pixel_count.get(cid, 0)),
                "parcel_count": int(self.parcel_count.get(cid, 0)),
            }

    def to_json(self) -> str:
        return json.dumps(list(self.rows()), ensure_ascii=False)

    def write(self, path: Path) -> None:
        """CSV, or JSON when the file name ends in .json."""
        rows = list(self.rows())
        if Path(path).suffix.lower() == ".json":
            Path(path).write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in rows)
        Path(path).write_text(buffer.getvalue(), encoding="utf-8")


# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets
# ("=cmd|' /C calc'!A0" runs a program); CSV quoting does not stop that. Tab and carriage
# return start formulas too after some imports.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """A text value that spreadsheets would evaluate, prefixed with an apostrophe (OWASP).

    Numbers stay numbers (a negative class id is data, not a formula); only text is
    changed, and only in CSV files: the GeoTIFF tags and JSON keep the true value.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def build_class_table(values, names=None) -> tuple[ClassTable, np.ndarray]:
    """Class ids for each feature's class value, and the table describing them."""
    values = list(values)
    table = ClassTable()
    if any(v is None for v in values):
        raise SatPluginError("Some features have no class value (NULL); filter them out or fill the field.")
    # type() first: the ABC check costs 10 x more per value, and layers have 100,000 of them.
    if all(type(v) is int for v in values) or all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        ids = np.asarray(values, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() > UINT16_MAX_CLASS):
            raise SatPluginError(
                f"Integer class values must lie in 0..{UINT16_MAX_CLASS}; found {ids.min()}..{ids.max()}."
            )
        table.ids = {int(v): int(v) for v in np.unique(ids) if v != 0}
    elif all(isinstance(v, str) for v in values):
        distinct = sorted(set(values))
        if len(distinct) > UINT16_MAX_CLASS:
            raise SatPluginError(
                f"The class field has {len(distinct)} distinct text values; at most "
                f"{UINT16_MAX_CLASS} fit the class raster (uint16). Choose a coarser class field."
            )
        table.ids = {v: i + 1 for i, v in enumerate(distinct)}
        ids = np.asarray([table.ids[v] for v in values], dtype=np.int64)
    else:
        kinds = sorted({type(v).__name__ for v in values})
        raise SatPluginError(
            f"The class field must hold integers or text, found {', '.join(kinds)}. "
            "Use an integer or a text field."
        )
    if names is not None:
        for cid, name in zip(ids, names):
            if cid and name is not None and int(cid) not in table.names:
                table.names[int(cid)] = str(name)
    return table, ids
