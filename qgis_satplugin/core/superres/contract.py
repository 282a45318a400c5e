"""The model contract: what a super-resolution ONNX file must say about itself.

The runtime knows nothing about a model but its ``.onnx`` file, so everything needed to
feed it and to label its output travels inside the file, in ONNX ``metadata_props``
(string values; JSON where a value is a list or an object). Checking it once at load
time, and again against the input, turns "the output looks wrong" into one sentence
naming the key or the band that does not fit.

Keys (``REQUIRED`` must be present; multi-frame models also need ``MULTI_FRAME_REQUIRED``):

========================  ====================================================================
``model_type``            ``single`` (one image), ``multi-frame`` (a stack of revisits) or
                          ``band-sharpening`` (one image whose coarser bands come out
                          sharpened on the same grid: scale 1, needs ``input_resolutions``)
``scale``                 integer upsampling factor (output pixel = input pixel / scale)
``revisits``              multi-frame: fixed count ``N`` or ``dynamic`` (any count >= 1)
``revisit_order``         multi-frame: how the stack was ordered in training; the runtime
                          supports ``clearest_first`` (reference = least cloudy date first)
                          and ``chronological`` (oldest first)
``input_bands``           JSON list of band names, in the model's channel order
``input_scaling``         JSON ``{"dn_scale", "dn_offset", "mean", "std"}``:
                          model input = ((DN * dn_scale + dn_offset) - mean) / std, per band
``output_bands``          JSON list of output band names
``output_units``          text (one unit for all bands) or a JSON list (one per band)
``training_data``         text: what the model was trained on
``metrics``               JSON object of evaluation figures (free form)
``license``               text
``version``               text
``output_dtype``          optional: ``float32`` (default) or ``uint16``
``output_scaling``        optional JSON ``{"dn_scale": s}``: for ``uint16`` outputs, value = DN * s
``name``, ``description``  optional text
``receptive_field``       optional integer: input pixels either side that influence one output
                          pixel; the runtime warns when OVERLAP is too small for it
``input_resolutions``     band-sharpening: JSON list, each input band's native resolution in
                          metres (``[10, 10, 20, ...]``); an output band that is an input band
                          is consistent over blocks of (its resolution / the finest) pixels
========================  ====================================================================

Input tensors are ``[batch, revisits, bands, height, width]`` (multi-frame) or
``[batch, bands, height, width]`` (single); the output is ``[batch, bands, height*scale,
width*scale]``. Height and width must be dynamic axes (checked in :mod:`.model`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Optional

from ..errors import SatPluginError
from ..sentinel2 import canonical_band_name

CONTRACT_NAME = "satplugin-superres/1"

REQUIRED = (
    "model_type",
    "scale",
    "input_bands",
    "input_scaling",
    "output_bands",
    "output_units",
    "training_data",
    "metrics",
    "license",
    "version",
)
MULTI_FRAME_REQUIRED = ("revisits", "revisit_order")
OPTIONAL = ("output_dtype", "output_scaling", "name", "description", "receptive_field", "contract",
            "input_resolutions")

MODEL_TYPES = {"single": "single", "single-image": "single", "multi-frame": "multi-frame", "multi_frame": "multi-frame",
               "multiframe": "multi-frame", "band-sharpening": "band-sharpening", "band_sharpening": "band-sharpening",
               "sharpening": "band-sharpening"}
REVISIT_ORDERS = ("clearest_first", "chronological")
OUTPUT_DTYPES = ("float32", "uint16")


class ModelContractError(SatPluginError):
    """The model's metadata is missing, malformed, or does not fit the input."""


def band_match_key(name: str) -> str:
    """The key a band name is matched by against a model's bands: ``b2``, ``B02``, `` B8a`` -> ``B02``,
    ``B8A``; other names are kept, upper-cased and stripped.

    Sentinel-2 band names are written both ways in the wild; matching them canonically
    means a model trained on ``B2`` reads a download folder that says ``B02``. The
    Sentinel-2 spelling rule is ``sentinel2.canonical_band_name``, the strict one (a
    model's ``red`` may be another sensor's); any other name is matched as written.
    """
    text = str(name).strip()
    return canonical_band_name(text) or text.upper()


@dataclass(frozen=True)
class ModelContract:
    """The parsed, validated metadata of one model."""

    model_type: str  # "single" | "multi-frame" | "band-sharpening"
    scale: int
    revisits: Optional[int]  # fixed N; None = dynamic; 1 for single-image models
    revisit_order: str
    input_bands: tuple
    dn_scale: float
    dn_offset: float
    mean: tuple
    std: tuple
    output_bands: tuple
    output_units: tuple  # one per output band
    training_data: str
    metrics: dict
    license: str
    version: str
    output_dtype: str = "float32"
    output_dn_scale: Optional[float] = None
    name: str = ""
    description: str = ""
    receptive_field: Optional[int] = None
    input_resolutions: Optional[tuple] = None  # band-sharpening: metres per input band
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def multi_frame(self) -> bool:
        return self.model_type == "multi-frame"

    @property
    def dynamic_revisits(self) -> bool:
        return self.multi_frame and self.revisits is None

    @property
    def consistency_factors(self) -> tuple:
        """Per output band: the side, in output pixels, of the blocks whose mean it keeps from its input.

        ``scale`` for a super-resolution model (one input pixel); for band sharpening, the
        band's native resolution over the finest input's (a 20 m band beside 10 m ones: 2),
        or None for an output band that is not an input band.
        """
        if self.input_resolutions is None:
            return (self.scale,) * len(self.output_bands)
        keys = [band_match_key(b) for b in self.input_bands]
        finest = min(self.input_resolutions)
        return tuple(round(self.input_resolutions[keys.index(band_match_key(b))] / finest)
                     if band_match_key(b) in keys else None for b in self.output_bands)

    @property
    def block_pixels(self) -> int:
        """Input pixels per side of the largest consistency block: tiles must start on multiples of it."""
        return math.lcm(*[f // self.scale for f in self.consistency_factors if f], 1)

    def describe(self) -> str:
        count = "single image" if not self.multi_frame else (
            "any number of revisits" if self.revisits is None else f"{self.revisits} revisits")
        if self.model_type == "band-sharpening":
            count = "band sharpening"
        title = self.name or "model"
        return (f"{title} v{self.version}: x{self.scale}, {count}, bands {', '.join(self.input_bands)} -> "
                f"{', '.join(self.output_bands)}")

    @classmethod
    def from_metadata(cls, meta: dict, source: str = "the model") -> "ModelContract":
        """Parse ``metadata_props`` (a str -> str mapping); raise one clear error per problem."""
        meta = {str(k): str(v) for k, v in (meta or {}).items()}
        missing = [k for k in REQUIRED if not meta.get(k, "").strip()]
        if missing:
            raise ModelContractError(
                f"{source} lacks the super-resolution metadata {', '.join(missing)} "
                f"(ONNX metadata_props, listed in core/superres/contract.py). Export it with models/onnx_export.py "
                "or convert it with models/convert_worldstrat.py, from the plugin's source repository."
            )
        model_type = MODEL_TYPES.get(meta["model_type"].strip().lower())
        if model_type is None:
            raise ModelContractError(
                f"{source}: model_type is {meta['model_type']!r}; expected 'single', 'multi-frame' or "
                "'band-sharpening'.")
        scale = _positive_int(meta["scale"], "scale", source)
        if model_type == "multi-frame":
            missing = [k for k in MULTI_FRAME_REQUIRED if not meta.get(k, "").strip()]
            if missing:
                raise ModelContractError(f"{source} is a multi-frame model but lacks {', '.join(missing)} in its metadata.")
            revisits = _revisits(meta["revisits"], source)
            order = meta["revisit_order"].strip().lower()
            if order not in REVISIT_ORDERS:
                raise ModelContractError(
                    f"{source}: revisit_order {order!r} is not one this runtime can reproduce "
                    f"({', '.join(REVISIT_ORDERS)}).")
        else:
            revisits, order = 1, "clearest_first"

        input_bands = tuple(_name_list(meta["input_bands"], "input_bands", source))
        scaling = _json(meta["input_scaling"], "input_scaling", source)
        if not isinstance(scaling, dict):
            raise ModelContractError(f"{source}: input_scaling must be a JSON object with dn_scale, mean and std.")
        n = len(input_bands)
        dn_scale = _number(scaling.get("dn_scale"), "input_scaling.dn_scale", source)
        if dn_scale <= 0:
            raise ModelContractError(f"{source}: input_scaling.dn_scale must be positive, got {dn_scale}.")
        dn_offset = _number(scaling.get("dn_offset", 0.0), "input_scaling.dn_offset", source)
        mean = _per_band(scaling.get("mean"), n, "input_scaling.mean", source)
        std = _per_band(scaling.get("std"), n, "input_scaling.std", source)
        if any(s <= 0 for s in std):
            raise ModelContractError(f"{source}: input_scaling.std must be positive for every band, got {list(std)}.")

        output_bands = tuple(_name_list(meta["output_bands"], "output_bands", source))
        units = _units(meta["output_units"], len(output_bands), source)
        metrics = _json(meta["metrics"], "metrics", source)
        if not isinstance(metrics, dict):
            raise ModelContractError(f"{source}: metrics must be a JSON object.")
        dtype = meta.get("output_dtype", "float32").strip().lower() or "float32"
        if dtype not in OUTPUT_DTYPES:
            raise ModelContractError(f"{source}: output_dtype {dtype!r} is not one of {', '.join(OUTPUT_DTYPES)}.")
        out_dn_scale = None
        if dtype == "uint16":
            out_scaling = _json(meta.get("output_scaling", ""), "output_scaling", source) if meta.get("output_scaling") else None
            if not isinstance(out_scaling, dict) or "dn_scale" not in out_scaling:
                raise ModelContractError(f"{source}: a uint16 output needs output_scaling {{\"dn_scale\": ...}}.")
            out_dn_scale = _number(out_scaling["dn_scale"], "output_scaling.dn_scale", source)
            if out_dn_scale <= 0:
                raise ModelContractError(f"{source}: output_scaling.dn_scale must be positive.")
        receptive = meta.get("receptive_field", "").strip()
        resolutions = _input_resolutions(meta, model_type, scale, n, source)
        return cls(
            model_type=model_type,
            scale=scale,
            revisits=revisits,
            revisit_order=order,
            input_bands=input_bands,
            dn_scale=dn_scale,
            dn_offset=dn_offset,
            mean=mean,
            std=std,
            output_bands=output_bands,
            output_units=units,
            training_data=meta["training_data"].strip(),
            metrics=metrics,
            license=meta["license"].strip(),
            version=meta["version"].strip(),
            output_dtype=dtype,
            output_dn_scale=out_dn_scale,
            name=meta.get("name", "").strip(),
            description=meta.get("description", "").strip(),
            receptive_field=_positive_int(receptive, "receptive_field", source) if receptive else None,
            input_resolutions=resolutions,
            raw=dict(meta),
        )

    def band_positions(self, available: list, source: str) -> list:
        """0-based positions in ``available`` of each model input band, in model order.

        Raises when a band the model needs is absent. A raster without band names is
        accepted only when its band count equals the model's (then taken in order).
        """
        names = [band_match_key(b) if b else "" for b in available]
        wanted = [band_match_key(b) for b in self.input_bands]
        if not any(names):
            if len(available) == len(wanted):
                return list(range(len(wanted)))
            raise ModelContractError(
                f"{source} has {len(available)} unnamed bands; the model needs {len(wanted)} "
                f"({', '.join(self.input_bands)}). Name the bands (band descriptions) or give a "
                f"raster with exactly {len(wanted)} bands in that order.")
        missing = [w for w in wanted if w not in names]
        if missing:
            raise ModelContractError(
                f"{source} lacks the band(s) {', '.join(missing)} that the model needs "
                f"(it needs {', '.join(self.input_bands)}; the input has {', '.join(b or '?' for b in available)}).")
        return [names.index(w) for w in wanted]

    def revisits_to_use(self, usable: int) -> int:
        """How many revisits to feed given ``usable`` ones: N (fixed), all (dynamic), 1 (single).

        A fixed-size stack larger than ``usable`` is filled by the caller (repeating
        revisits), since a shorter stack cannot be fed to a fixed input.
        """
        if usable < 1:
            raise ModelContractError("No usable revisit is left (all were skipped as cloudy or empty).")
        if not self.multi_frame:
            return 1
        if self.revisits is None:
            return usable
        return self.revisits


def metadata_props(
    *,
    model_type: str,
    scale: int,
    input_bands,
    input_scaling: dict,
    output_bands,
    output_units,
    training_data: str,
    metrics: dict,
    license: str,
    version: str,
    revisits=None,
    revisit_order: str = "clearest_first",
    **optional,
) -> dict:
    """The ``metadata_props`` mapping (all strings) for a model, validated by parsing it back.

    Exporters (models/onnx_export.py, the WorldStrat converter, tests) build metadata here so
    that what they write is exactly what :meth:`ModelContract.from_metadata` accepts.
    """
    props = {
        "contract": CONTRACT_NAME,
        "model_type": model_type,
        "scale": str(int(scale)),
        "input_bands": json.dumps(list(input_bands)),
        "input_scaling": json.dumps(input_scaling),
        "output_bands": json.dumps(list(output_bands)),
        "output_units": output_units if isinstance(output_units, str) else json.dumps(list(output_units)),
        "training_data": training_data,
        "metrics": json.dumps(metrics),
        "license": license,
        "version": version,
    }
    if MODEL_TYPES.get(model_type) == "multi-frame":
        props["revisits"] = "dynamic" if revisits in (None, "dynamic") else str(int(revisits))
        props["revisit_order"] = revisit_order
    for key, value in optional.items():
        if key not in OPTIONAL:
            raise ValueError(f"unknown metadata key {key!r}")
        if value is None:
            continue
        props[key] = value if isinstance(value, str) else json.dumps(value)
    ModelContract.from_metadata(props, "the metadata being written")
    return props


def _json(text: str, key: str, source: str):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ModelContractError(f"{source}: {key} is not valid JSON ({exc}).") from exc


def _name_list(text: str, key: str, source: str) -> list:
    stripped = text.strip()
    if stripped.startswith("["):
        value = _json(stripped, key, source)
    else:  # a comma-separated list is accepted too
        value = [v.strip() for v in stripped.split(",")]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ModelContractError(f"{source}: {key} must be a non-empty list of band names, got {text!r}.")
    return [v.strip() for v in value]


def _units(text: str, count: int, source: str) -> tuple:
    stripped = text.strip()
    if stripped.startswith("["):
        units = _json(stripped, "output_units", source)
        if not isinstance(units, list) or len(units) != count:
            raise ModelContractError(f"{source}: output_units lists {len(units) if isinstance(units, list) else '?'} "
                                     f"units for {count} output bands.")
        return tuple(str(u) for u in units)
    return (stripped,) * count


def _number(value, key: str, source: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ModelContractError(f"{source}: {key} must be a number, got {value!r}.") from None
    if not math.isfinite(out):
        raise ModelContractError(f"{source}: {key} must be finite, got {value!r}.")
    return out


def _per_band(value, count: int, key: str, source: str) -> tuple:
    if isinstance(value, (int, float)):
        return (_number(value, key, source),) * count
    if not isinstance(value, list) or len(value) != count:
        got = len(value) if isinstance(value, list) else value
        raise ModelContractError(f"{source}: {key} must list one value per input band ({count}), got {got!r}.")
    return tuple(_number(v, key, source) for v in value)


def _positive_int(text, key: str, source: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ModelContractError(f"{source}: {key} must be a positive integer, got {text!r}.") from None
    if value < 1:
        raise ModelContractError(f"{source}: {key} must be a positive integer, got {value}.")
    return value


def _input_resolutions(meta: dict, model_type: str, scale: int, count: int, source: str) -> Optional[tuple]:
    text = meta.get("input_resolutions", "").strip()
    if model_type != "band-sharpening":
        if text:
            raise ModelContractError(f"{source}: input_resolutions is for band-sharpening models; this one is "
                                     f"{model_type}.")
        return None
    if scale != 1:
        raise ModelContractError(f"{source}: a band-sharpening model keeps the grid: its scale must be 1, not {scale}.")
    if not text:
        raise ModelContractError(f"{source} is a band-sharpening model but lacks input_resolutions (the native "
                                 "resolution in metres of each input band).")
    values = _per_band(_json(text, "input_resolutions", source), count, "input_resolutions", source)
    finest = min(values)
    if finest <= 0 or any(abs(v / finest - round(v / finest)) > 1e-6 for v in values):
        raise ModelContractError(f"{source}: input_resolutions must be positive multiples of the finest one, got "
                                 f"{list(values)}.")
    return values


def _revisits(text: str, source: str) -> Optional[int]:
    if text.strip().lower() == "dynamic":
        return None
    return _positive_int(text, "revisits", source)
