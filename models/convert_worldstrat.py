"""Convert a WorldStrat Lightning checkpoint (HighRes-net or SRCNN) to an ONNX model the plugin runs.

    .venv/bin/python models/convert_worldstrat.py CKPT.ckpt OUT.onnx [--arch auto|highresnet|srcnn]

The checkpoint is what WorldStrat's training writes (``pretrained_model/model.ckpt`` and the
benchmark runs): a dict with ``state_dict`` (the network under the Lightning module's
``backbone.`` attribute, plus the weightless shifters' kernels), ``hyper_parameters``,
``epoch``, ``global_step``, ``callbacks``, ``pytorch-lightning_version``. The network is
rebuilt by :mod:`models.worldstrat` from the *shapes* of the weights (hidden size, revisits,
bands, zoom, kernels), checked against ``hyper_parameters``, loaded strictly and exported
with :func:`models.onnx_export.export_onnx` with the full contract metadata.

Only convert checkpoints you trust: a Lightning checkpoint is a pickle, and loading it
(``weights_only=False``, as its pickled hyper-parameters require) can run code. Classes
that the pickle names but this environment lacks (WorldStrat's ``src.modules``,
``pytorch_lightning``'s ``AttributeDict``, kornia, wandb) are replaced by inert
placeholders, so neither WorldStrat's code nor Lightning has to be installed.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import math
import pickle
import sys
import types
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout: models/ and the core are importable
    sys.path.insert(0, str(ROOT))

from models import worldstrat as ws  # noqa: E402

ARCHS = ("auto", "highresnet", "srcnn")
# Lightning-module attributes that hold buffers but no part of the network (src/lightning_modules.py:
# the Shift layers used by the registered losses, and the bicubic baseline).
IGNORED_PREFIXES = ("shifter.", "baseline_shifter.", "baseline.")
ENCODER_KEY = "encoder.doubleconv2d.0.weight"
EXAMPLE_SIZE = 32  # height and width of the export example (dynamic in the exported model)

TRAINING_DATA = (
    "WorldStrat (Cornebise, Orsolic and Kalaitzis, NeurIPS 2022 Datasets and Benchmarks; "
    "zenodo.org/record/6810792): Sentinel-2 L2A revisits (Sentinel Hub reflectance, bands resampled to 10 m, "
    "areas of about 1.6 km resized to 160 x 160 px and cut into 50 x 50 chips) against SPOT 6/7 RGB targets "
    "(12-bit, DN/10000, resized to 500 x 500 px), stratified train/val/test split of "
    "pretrained_model/stratified_train_val_test_split.csv")
LICENSE = ("CC-BY-4.0 (WorldStrat's trained weights, as its README states; its code is BSD-3-Clause; "
           "the SPOT target imagery is CC-BY-NC-4.0)")


class CheckpointError(ValueError):
    """The file is not a WorldStrat Lightning checkpoint this converter understands."""


# --------------------------------------------------------------------------- loading


class _Placeholder(dict):
    """Stands in for a pickled object whose class is not importable here; keeps its state."""

    def __init__(self, *args, **kwargs):  # accepts any constructor call; holds nothing
        pass

    def __setstate__(self, state):
        self.__dict__["_pickled_state"] = state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], (dict, type(None))):
            state = state[0]
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __call__(self, *args, **kwargs):  # a placeholder used as a function in a REDUCE
        return _Placeholder()


def _tolerant_pickle_module(missing: set) -> types.ModuleType:
    """A ``pickle``-like module for ``torch.load`` whose unpickler replaces unimportable classes."""

    class TolerantUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            try:
                return super().find_class(module, name)
            except (ImportError, AttributeError):
                missing.add(f"{module}.{name}")
                return type(name, (_Placeholder,), {"__module__": f"placeholder:{module}"})

    mod = types.ModuleType("tolerant_pickle")
    mod.Unpickler = TolerantUnpickler
    mod.Pickler = pickle.Pickler
    mod.load = lambda f, **kw: TolerantUnpickler(f, **kw).load()
    mod.loads = lambda data, **kw: TolerantUnpickler(io.BytesIO(data), **kw).load()
    mod.dump, mod.dumps = pickle.dump, pickle.dumps
    mod.HIGHEST_PROTOCOL, mod.DEFAULT_PROTOCOL = pickle.HIGHEST_PROTOCOL, pickle.DEFAULT_PROTOCOL
    mod.UnpicklingError = pickle.UnpicklingError
    return mod


def load_checkpoint(path) -> tuple:
    """``(checkpoint dict, names of classes replaced by placeholders)``; a clear error otherwise."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist or is not a file.")
    missing: set = set()
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False,
                          pickle_module=_tolerant_pickle_module(missing))
    except Exception as exc:  # noqa: BLE001 - any failure here means "not a checkpoint"
        raise CheckpointError(
            f"{path} is not a PyTorch Lightning checkpoint (torch.load could not read it: {_first_line(exc)}).") from exc
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("state_dict"), Mapping):
        what = f"a dict with keys {', '.join(map(str, list(ckpt)[:8]))}" if isinstance(ckpt, Mapping) \
            else f"a {type(ckpt).__name__}"
        raise CheckpointError(
            f"{path} is not a PyTorch Lightning checkpoint: it holds {what}, not a dict with a state_dict.")
    return ckpt, sorted(missing)


def network_state_dict(state_dict: Mapping, source: str = "the checkpoint") -> tuple:
    """``(prefix, network state_dict without it)``: WorldStrat's is ``backbone.``.

    Keys of the Lightning module's shifters and baseline are dropped; any other key that is
    not under the network's prefix is an error.
    """
    import torch

    candidates = [k for k in state_dict if str(k).endswith(ENCODER_KEY) and not str(k).endswith("mask_" + ENCODER_KEY)]
    if not candidates:
        raise CheckpointError(
            f"{source} is not a WorldStrat HighRes-net or SRCNN checkpoint: no '{ENCODER_KEY}' weight in its "
            f"state_dict (it has {_sample(state_dict)}).")
    prefix = min(candidates, key=len)[: -len(ENCODER_KEY)]
    net, unknown = {}, []
    for key, value in state_dict.items():
        key = str(key)
        if prefix and key.startswith(prefix):
            net[key[len(prefix):]] = value
        elif not prefix and not key.startswith(IGNORED_PREFIXES):
            net[key] = value
        elif not key.startswith(IGNORED_PREFIXES):
            unknown.append(key)
    if unknown:
        raise CheckpointError(
            f"{source} has state_dict keys outside the network ('{prefix}...') that WorldStrat's Lightning module "
            f"does not have: {', '.join(unknown[:6])}{' ...' if len(unknown) > 6 else ''}.")
    bad = [k for k, v in net.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: state_dict entries {', '.join(bad[:4])} are not tensors.")
    return prefix, net


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0][:200].rstrip(".") if text else type(exc).__name__)


def _sample(keys) -> str:
    keys = [str(k) for k in keys]
    return ", ".join(keys[:5]) + (" ..." if len(keys) > 5 else "") if keys else "no keys"


def detect_arch(net_sd: Mapping, source: str = "the checkpoint") -> str:
    """``highresnet`` (recursive fusion weights), ``srcnn`` (a fusion Sequential), else an error."""
    if any(k.startswith("fusion.fusion.") for k in net_sd):
        return "highresnet"
    if "fusion.0.doubleconv2d.0.weight" in net_sd:
        return "srcnn"
    if not any(k.startswith("fusion.") for k in net_sd) and "doubleconv2d.doubleconv2d.0.weight" in net_sd:
        return "highresnet"  # HighRes-net on one revisit: no fusion level at all
    raise CheckpointError(
        f"{source}: its network is neither WorldStrat's HighRes-net (fusion.fusion.*) nor its SRCNN "
        f"(fusion.0.*); its weights are {_sample(net_sd)}.")


def _hparams(ckpt: Mapping) -> dict:
    hp = ckpt.get("hyper_parameters")
    if isinstance(hp, Mapping):
        return dict(hp)
    if hp is not None and isinstance(getattr(hp, "__dict__", None), dict):
        return {k: v for k, v in vars(hp).items() if not k.startswith("_")}
    return {}


def infer_config(net_sd: Mapping, arch: str, hparams: Mapping, source: str = "the checkpoint") -> dict:
    """Constructor arguments for :mod:`models.worldstrat`, from the weights' shapes, checked against hparams."""

    def shape(key):
        if key not in net_sd:
            raise CheckpointError(f"{source} is not a WorldStrat {arch} checkpoint: it lacks the weight '{key}'.")
        return tuple(net_sd[key].shape)

    hidden, in_channels, kernel, _ = shape(ENCODER_KEY)
    fusion_in = shape("doubleconv2d.doubleconv2d.0.weight")[1]
    if fusion_in % hidden:
        raise CheckpointError(f"{source}: doubleconv2d takes {fusion_in} channels, not a multiple of hidden {hidden}.")
    mid, _, sr_kernel, _ = shape("sr.upsample.1.weight")
    zoom = math.isqrt(hidden // mid) if mid and hidden % mid == 0 else 0
    if zoom < 1 or zoom * zoom * mid != hidden:
        raise CheckpointError(f"{source}: the upsampler's {mid} channels do not divide hidden {hidden} by a square.")
    residual = {int(k.split(".")[1]) for k in net_sd if k.startswith("residualblocks.")}
    config = {
        "in_channels": in_channels,
        "revisits": fusion_in // hidden,
        "hidden_channels": hidden,
        "out_channels": shape("sr.upsample.4.weight")[0],
        "kernel_size": kernel,
        "residual_layers": len(residual),
        "zoom_factor": zoom,
        "sr_kernel_size": sr_kernel,
        "mask_channels": shape("mask_encoder.1.doubleconv2d.0.weight")[1],
    }
    if arch == "highresnet":
        levels = {int(k.split(".")[2]) for k in net_sd if k.startswith("fusion.fusion.")}
        expected = math.ceil(math.log2(config["revisits"])) if config["revisits"] > 1 else 0
        if len(levels) != expected:
            raise CheckpointError(
                f"{source}: HighRes-net on {config['revisits']} revisits has {expected} fusion levels, "
                f"the checkpoint has {len(levels)}.")

    if hparams.get("use_reference_frame"):
        raise CheckpointError(
            f"{source} was trained with --use_reference_frame (a median frame paired with every revisit), "
            "which this converter does not reproduce.")
    if hparams.get("use_masks"):
        raise CheckpointError(
            f"{source} was trained with --use_masks (cloud masks as extra input bands), "
            "which the plugin's runtime cannot feed.")
    named = str(hparams.get("model", "")).strip().lower()
    if named in ws.ARCHITECTURES and named != arch:
        raise CheckpointError(f"{source}: its hyper_parameters say model={named!r} but its weights are a {arch}.")
    for key in ("hidden_channels", "revisits", "zoom_factor", "kernel_size", "residual_layers", "sr_kernel_size"):
        if key in hparams and hparams[key] is not None:
            try:
                value = int(hparams[key])
            except (TypeError, ValueError):
                continue
            if value != config[key]:
                raise CheckpointError(
                    f"{source}: hyper_parameters {key}={value} but the weights' shapes give {config[key]}.")
    ws.input_bands_for(in_channels)  # raises for 13+ bands (masks, reference frame)
    wanted = {"all": len(ws.L2A_BANDS), "true_color": len(ws.TRUE_COLOR_BANDS)}.get(str(hparams.get("lr_bands_to_use")))
    if wanted is not None and wanted != in_channels:
        raise CheckpointError(
            f"{source}: hyper_parameters lr_bands_to_use={hparams['lr_bands_to_use']!r} means {wanted} bands "
            f"but the encoder takes {in_channels}.")
    if config["out_channels"] != len(ws.OUTPUT_BANDS):
        raise CheckpointError(f"{source}: the network outputs {config['out_channels']} bands, not WorldStrat's RGB.")
    return config


def checkpoint_metrics(ckpt: Mapping) -> dict:
    """The best monitored score(s) the checkpoint records (Lightning's ModelCheckpoint state), else {}."""
    metrics = {}
    callbacks = ckpt.get("callbacks")
    if isinstance(callbacks, Mapping):
        for state in callbacks.values():
            if not isinstance(state, Mapping) or state.get("best_model_score") is None:
                continue
            try:
                score = float(state["best_model_score"])
            except (TypeError, ValueError):
                continue
            if math.isfinite(score):
                metrics[str(state.get("monitor") or "best_model_score")] = score
    if metrics:
        metrics["note"] = ("WorldStrat's own validation figures: its loss is 0.3 MSE + 0.4 MAE + 0.3 SSIM loss on "
                           "DN/10000 after a +-2 px sub-pixel shift search and a per-image brightness correction "
                           "against the target, on chips; not comparable with metrics computed without them.")
    return metrics


# --------------------------------------------------------------------------- conversion


def build_network(ckpt: Mapping, arch: str = "auto", source: str = "the checkpoint"):
    """``(WorldStratForContract, info dict)`` with the checkpoint's weights loaded strictly."""
    import torch

    if arch not in ARCHS:
        raise CheckpointError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}.")
    prefix, net_sd = network_state_dict(ckpt["state_dict"], source)
    detected = detect_arch(net_sd, source)
    if arch != "auto" and arch != detected:
        raise CheckpointError(f"{source} holds a WorldStrat {detected}, not a {arch} (drop --arch or use auto).")
    hparams = _hparams(ckpt)
    config = infer_config(net_sd, detected, hparams, source)
    net = ws.ARCHITECTURES[detected](**config)
    try:
        result = net.load_state_dict(net_sd, strict=False)
    except RuntimeError as exc:  # a shape that does not fit
        raise CheckpointError(f"{source}: its weights do not fit WorldStrat's {detected} ({_first_line(exc)}).") from exc
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{source}: its weights do not fit WorldStrat's {detected} "
            f"(missing {_sample(result.missing_keys)}; unexpected {_sample(result.unexpected_keys)}).")
    # Shared modules appear under several keys (HighRes-net's fusion levels, SRCNN's fusion.0/fusion.1
    # and doubleconv2d/residualblocks): every copy must hold what was loaded, or the file was edited.
    loaded = net.state_dict()
    with torch.no_grad():
        for key, value in net_sd.items():
            if not torch.equal(loaded[key], value.to(loaded[key].dtype)):
                raise CheckpointError(
                    f"{source}: '{key}' differs from the other copy of the same shared weights in the checkpoint.")
    wrapper = ws.WorldStratForContract(net, single_image=config["revisits"] == 1).eval()
    info = {"arch": detected, "prefix": prefix, "config": config, "hparams": hparams}
    return wrapper, info


def contract_metadata(wrapper, info: dict, ckpt: Mapping, *, source_name: str = "", sha256: str = "",
                      version: str = "", name: str = "") -> dict:
    """Keyword arguments of ``contract.metadata_props`` for a converted WorldStrat network."""
    net = wrapper.net
    cfg = info["config"]
    bands = ws.input_bands_for(cfg["in_channels"])
    epoch, step = ckpt.get("epoch"), ckpt.get("global_step")
    pl_version = ckpt.get("pytorch-lightning_version")
    title = {"highresnet": "HighRes-net", "srcnn": "SRCNN"}[info["arch"]]
    single = wrapper.single_image
    name = name or f"WorldStrat {title}{' (single image)' if single else ''}"
    version = version or "worldstrat-{}{}{}".format(
        info["arch"], f"-epoch{epoch}" if epoch is not None else "", f"-step{step}" if step is not None else "")
    description = (
        f"WorldStrat's {title} ({cfg['hidden_channels']} hidden channels, {cfg['residual_layers']} residual "
        f"layer(s), {cfg['revisits']} revisit(s), {len(bands)} L2A bands in, RGB out) converted by "
        "models/convert_worldstrat.py. Output is WorldStrat's network output at its x"
        f"{cfg['zoom_factor']} PixelShuffle stage: WorldStrat's fixed-size bilinear resize (50x50 chips to 156x156) "
        "is dropped, so any tile size works and output pixels are 1/" + str(cfg["zoom_factor"]) + " the input's size. "
        "Input normalisation is WorldStrat's own, (reflectance - JIF_S2_MEAN) / JIF_S2_STD, reflectance = "
        "0.0001 x harmonised L2A DN. "
        + ("" if single else
           "Revisit order: WorldStrat ranks revisits by rank of |days from the SPOT acquisition| plus rank of "
           "cloud cover and feeds the best first; without a target date the nearest order the runtime can "
           "reproduce is clearest_first (least cloudy first), declared here. ")
        + (f"Checkpoint: {source_name}" if source_name else "Checkpoint")
        + (f", sha256 {sha256}" if sha256 else "")
        + (f", epoch {epoch}, step {step}" if epoch is not None else "")
        + (f", pytorch-lightning {pl_version}" if pl_version else "") + "."
    )
    meta = {
        "model_type": "single" if single else "multi-frame",
        "scale": cfg["zoom_factor"],
        "input_bands": list(bands),
        "input_scaling": ws.input_scaling_for(bands),
        "output_bands": list(ws.OUTPUT_BANDS),
        "output_units": ws.OUTPUT_UNITS,
        "training_data": TRAINING_DATA,
        "metrics": checkpoint_metrics(ckpt),
        "license": LICENSE,
        "version": str(version),
        "name": name,
        "description": description,
        "receptive_field": str(net.receptive_field()),
    }
    if not single:
        meta["revisits"] = cfg["revisits"]
        meta["revisit_order"] = "clearest_first"
    return meta


def convert(ckpt_path, out_path, arch: str = "auto", *, version: str = "", name: str = "") -> dict:
    """Convert ``ckpt_path`` to ``out_path``; returns a summary (arch, config, metadata, placeholders)."""
    import torch

    from models.onnx_export import export_onnx

    ckpt_path = Path(ckpt_path)
    ckpt, placeholders = load_checkpoint(ckpt_path)
    source = str(ckpt_path.name)
    wrapper, info = build_network(ckpt, arch, source)
    digest = hashlib.sha256(ckpt_path.read_bytes()).hexdigest()
    meta = contract_metadata(wrapper, info, ckpt, source_name=source, sha256=digest, version=version, name=name)
    cfg = info["config"]
    shape = ([1, cfg["in_channels"]] if wrapper.single_image else [1, cfg["revisits"], cfg["in_channels"]])
    example = torch.zeros(*shape, EXAMPLE_SIZE, EXAMPLE_SIZE)
    export_onnx(wrapper, example, out_path, meta, multi_frame=not wrapper.single_image)
    return {"arch": info["arch"], "config": cfg, "metadata": meta, "placeholders": placeholders,
            "output": str(out_path), "wrapper": wrapper}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="WorldStrat Lightning checkpoint (.ckpt)")
    parser.add_argument("output", help="ONNX file to write")
    parser.add_argument("--arch", choices=ARCHS, default="auto", help="network (default: detected from the weights)")
    parser.add_argument("--version", default="", help="metadata version (default: from the checkpoint's epoch/step)")
    parser.add_argument("--name", default="", help="metadata name")
    args = parser.parse_args(argv)
    try:
        summary = convert(args.checkpoint, args.output, args.arch, version=args.version, name=args.name)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cfg = summary["config"]
    print(f"{summary['output']}: WorldStrat {summary['arch']}, {cfg['revisits']} revisit(s), "
          f"{cfg['in_channels']} bands, x{cfg['zoom_factor']}, hidden {cfg['hidden_channels']}, "
          f"receptive field {summary['metadata']['receptive_field']} px")
    if summary["placeholders"]:
        print("ignored pickled objects of classes not installed here: " + ", ".join(summary["placeholders"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
