"""A PyTorch ``Dataset`` over an exported dataset, in any of the four formats.

torch is not a dependency of the plugin: this module imports without it, and torch is
imported only when the class is first used (``from ...torch_dataset import
PatchDataset`` raises a clear error when it is missing). The reading itself is
:class:`reader.ExportedDataset`, shared with numpy users; this wrapper only turns arrays
into tensors.

Each item is a dict of tensors: ``images`` (int32 DN, or float32 reflectance with
``reflectance=True``; per group with native band resolution), ``labels`` (``class`` and
``id`` as int64, the others float32 or uint8), ``doy`` and ``year`` [T] (int64),
``days`` [T] (days since 1970-01-01, int64), plus ``dates`` (ISO text) and
``sample_id`` as plain strings. Series lengths differ between samples:
:func:`pad_collate` pads them and adds a ``date_mask`` so a ``DataLoader`` can batch them.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from ..errors import SatPluginError
from .reader import ExportedDataset

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise SatPluginError(
            "PatchDataset needs PyTorch (python -m pip install torch); ExportedDataset reads the same data as numpy."
        ) from exc
    return torch


def _days(iso_dates) -> np.ndarray:
    from ..image_series.dates import parse_iso_datetime

    return np.array([(parse_iso_datetime(d) - _EPOCH).days for d in iso_dates], dtype=np.int64)


def _image_keys(item: dict) -> list:
    return [k for k in item if k == "images" or k.startswith("images_")]


def to_tensors(item: dict, reflectance: bool = False, groups: dict | None = None) -> dict:
    """The numpy dict of :class:`ExportedDataset` as tensors (see the module docstring).

    ``groups`` (image key -> band names, from the card) places each native-resolution
    group's bands for the reflectance scaling; without it an array holds all bands.
    """
    torch = import_torch()
    band_pos = {b: i for i, b in enumerate(item["bands"])}
    out = {"sample_id": item["sample_id"], "split": item["split"], "dates": list(item["dates"])}
    for key in _image_keys(item):
        values = item[key]
        if reflectance:
            names = (groups or {}).get(key) or item["bands"]
            idx = [band_pos[b] for b in names]
            scale = item["scale"][:, idx, None, None].astype(np.float32)
            offset = item["offset"][:, idx, None, None].astype(np.float32)
            out[key] = torch.from_numpy(values.astype(np.float32) * scale + offset)
        else:
            out[key] = torch.from_numpy(values.astype(np.int32))
    out["labels"] = {}
    for name, values in item["labels"].items():
        if name in ("class", "id"):
            out["labels"][name] = torch.from_numpy(values.astype(np.int64))
        elif values.dtype == np.uint8:
            out["labels"][name] = torch.from_numpy(values.copy())
        else:
            out["labels"][name] = torch.from_numpy(values.astype(np.float32))
    out["doy"] = torch.from_numpy(np.asarray(item["doy"], dtype=np.int64))
    out["year"] = torch.from_numpy(np.asarray(item["year"], dtype=np.int64))
    out["days"] = torch.from_numpy(_days(item["dates"]))
    return out


def pad_collate(batch: list) -> dict:
    """Stack a list of items, padding the time axis with zeros; ``date_mask`` marks real dates.

    Works on :class:`PatchDataset` items and on ``torchgeo_dataset.ExportedGeoDataset``'s
    (``image``, ``mask``, ``bounds``, ``crs``): every image array and ``doy``/``year``/
    ``days`` is padded, ``labels`` and ``mask`` are stacked, anything else is listed.
    """
    torch = import_torch()
    longest = max(len(item["dates"]) for item in batch)
    out = {}
    mask = torch.zeros((len(batch), longest), dtype=torch.bool)
    for j, item in enumerate(batch):
        mask[j, : len(item["dates"])] = True
    out["date_mask"] = mask
    for key in [k for k in batch[0] if k.startswith("image")] + ["doy", "year", "days"]:
        first = batch[0][key]
        padded = torch.zeros((len(batch), longest) + tuple(first.shape[1:]), dtype=first.dtype)
        for j, item in enumerate(batch):
            padded[j, : item[key].shape[0]] = item[key]
        out[key] = padded
    out["labels"] = {name: torch.stack([b["labels"][name] for b in batch]) for name in batch[0]["labels"]}
    if "mask" in batch[0]:
        out["mask"] = torch.stack([b["mask"] for b in batch])
    for key in batch[0]:
        if key not in out:
            out[key] = [b[key] for b in batch]
    return out


def _make_class():
    torch = import_torch()

    class PatchDataset(torch.utils.data.Dataset):
        """``PatchDataset(folder, split="train", reflectance=False, transform=None)``."""

        def __init__(self, folder, split=None, reflectance: bool = False, transform=None):
            self.source = ExportedDataset(folder, split)
            self.reflectance = reflectance
            self.transform = transform
            self.groups = {g["key"]: g["bands"] for g in self.source.meta["band_groups"]}

        def __len__(self):
            return len(self.source)

        def __getitem__(self, i):
            out = to_tensors(self.source[i], self.reflectance, self.groups)
            return self.transform(out) if self.transform else out

    return PatchDataset


def __getattr__(name):
    if name == "PatchDataset":
        cls = _make_class()
        globals()["PatchDataset"] = cls
        return cls
    raise AttributeError(name)
