"""Train a super-resolution network on real Sentinel-2 scenes, export it to ONNX, evaluate it.

    .venv/bin/python models/train.py --arch multiframe --out qgis_satplugin/core/resources/superres/s2_sr_x2_rgbn.onnx
    .venv/bin/python models/train.py --arch single --out qgis_satplugin/core/resources/superres/s2_sr_x2_rgbn_single.onnx

Training data: scenes 0..3 of ``slovenia_s2_l1c`` (B02, B03, B04, B08), degraded 10 m -> 20 m
(:mod:`data`); the target is the 10 m original. The held-out scene 4 is read only after
training, by :mod:`evaluate`, to write the metrics into the model; nothing is tuned on it
(``--val-scene`` holds out one of the training scenes instead, for development).

Runs on the CPU in a few minutes; uses CUDA when torch sees a GPU (``--device``). Seeds are
fixed, so a rerun on the same machine and device gives the same weights.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models import data  # noqa: E402

VERSION = "1.0.0"
MULTI_FRAME_STEPS = 25  # default steps per epoch of the multi-frame network: ~4x the cost of a single step
LICENSE = ("GPL-2.0-or-later (the weights, like the plugin). Trained on eo-learn example data (MIT, "
           "https://github.com/sentinel-hub/eo-learn), which contains modified Copernicus Sentinel data.")
# Tile 29RKH's product, where a model also trains on it (--rkh-share, and the sharpening model).
RKH_LICENSE = " Also trained on Copernicus Sentinel data 2020 (rio-tiler-pds test fixtures, Apache-2.0)."


@dataclass
class TrainConfig:
    arch: str = "multiframe"  # "multiframe" | "single"
    revisits: int = 4
    channels: int = 32
    depth: int = 4  # single-image: convolutions in all
    encoder_blocks: int = 2  # multi-frame: residual blocks in the shared encoder
    epochs: int = 30
    steps_per_epoch: int = 50
    batch: int = 16
    patch: int = 24  # low-resolution pixels per side
    lr: float = 1e-3
    blur_sigma: float = 0.0
    p_repeat: float = 0.15
    p_alone: float = 0.1
    rkh_share: float = 0.0  # of the crops: from tile 29RKH's training rows (single date), see data.load_rkh
    seed: int = 0
    device: str = "auto"
    train_scenes: list = field(default_factory=lambda: list(data.TRAIN_SCENES))
    val_scene: int = None


def pick_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def make_network(config: TrainConfig, mean, std):
    from models.networks import build

    if config.arch == "multiframe":
        return build("multiframe", mean, std, revisits=config.revisits, channels=config.channels,
                     encoder_blocks=config.encoder_blocks)
    return build("single", mean, std, channels=config.channels, depth=config.depth)


def _to_input(lr, mean, std, multi_frame: bool):
    """Normalised network input from LR reflectance ``[batch, revisits, bands, h, w]``."""
    x = (lr - mean[None, None]) / std[None, None]
    return x if multi_frame else x[:, 0]


def validate(network, hr_images, index: int, config: TrainConfig, mean, std, device) -> dict:
    """PSNR on one whole training-set scene (development only): the network vs bicubic."""
    import torch

    from models.evaluate import psnr, upsample_opencv

    lrs = [data.degrade(im, data.SCALE, config.blur_sigma) for im in hr_images]
    order = [index] + [i for i in data.clearest_first(list(range(len(lrs))), lrs) if i != index]
    frames = [lrs[i] for i in order][: config.revisits] if config.arch == "multiframe" else [lrs[index]]
    while len(frames) < (config.revisits if config.arch == "multiframe" else 1):
        frames.append(frames[0])
    multi = config.arch == "multiframe"

    def predict(stack):
        x = _to_input(np.stack(stack)[None], mean, std, multi)
        with torch.no_grad():
            return network(torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device))[0].cpu().numpy()

    network.eval()
    out = {"psnr": round(psnr(predict(frames), hr_images[index]), 3)}
    if multi:  # what the auxiliary revisits add: the reference alone in every slot
        out["psnr_no_auxiliary"] = round(psnr(predict([frames[0]] * len(frames)), hr_images[index]), 3)
    network.train()
    out["bicubic"] = round(psnr(upsample_opencv(lrs[index], data.SCALE, "bicubic"), hr_images[index]), 3)
    return out


def train(config: TrainConfig, hr_images, log=print, single_dates=()):
    """Train on ``hr_images`` (a list of co-registered ``[bands, H, W]`` reflectance scenes) and,
    a share ``config.rkh_share`` of the crops, on ``single_dates`` (scenes of other areas, one date each).

    Returns ``(network, mean, std, history)``; the network is on the CPU, in eval mode.
    """
    import torch

    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        return _train(config, hr_images, log, single_dates)
    finally:  # the flag is process-wide: leave it as it was found
        torch.use_deterministic_algorithms(deterministic)


def _train(config: TrainConfig, hr_images, log, single_dates=()):
    import torch

    seed_everything(config.seed)
    device = pick_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    val = None
    if config.val_scene is not None:
        val = config.train_scenes.index(config.val_scene)
        fit_images = [im for i, im in enumerate(hr_images) if i != val]
    else:
        fit_images = list(hr_images)
    mean, std = data.band_statistics(fit_images)
    mean_np = np.asarray(mean, np.float32)[:, None, None]
    std_np = np.asarray(std, np.float32)[:, None, None]
    multi = config.arch == "multiframe"
    sampler = data.PatchSampler(fit_images, revisits=config.revisits if multi else 1, patch=config.patch,
                                blur_sigma=config.blur_sigma, p_repeat=config.p_repeat, p_alone=config.p_alone,
                                seed=config.seed, single_dates=single_dates, p_single_dates=config.rkh_share)
    network = make_network(config, mean, std).to(device)
    optimiser = torch.optim.Adam(network.parameters(), lr=config.lr)
    total = config.epochs * config.steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=total,
                                                   pct_start=0.1, anneal_strategy="cos")
    history, started = [], time.time()
    network.train()
    for epoch in range(config.epochs):
        losses = []
        for _ in range(config.steps_per_epoch):
            lr, hr = sampler.sample(config.batch)
            x = torch.from_numpy(_to_input(lr, mean_np, std_np, multi)).to(device)
            y = torch.from_numpy(hr).to(device)
            # L1 on reflectance: the metric's units; L1 keeps edges sharper than L2.
            loss = torch.nn.functional.l1_loss(network(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
        entry = {"epoch": epoch + 1, "l1": round(float(np.mean(losses)), 6), "seconds": round(time.time() - started, 1)}
        if val is not None:
            entry["val"] = validate(network, hr_images, val, config, mean_np, std_np, device)
        history.append(entry)
        log(json.dumps(entry))
    return network.cpu().eval(), mean, std, history


def training_data_text(config: TrainConfig, seconds: float) -> str:
    scenes = ", ".join(str(i) for i in config.train_scenes if i != config.val_scene)
    return (f"Sentinel-2 L1C TOA reflectance (eo-learn example data, one area in Slovenia, EPSG:32633), "
            f"scenes {scenes}: 100 x 100 px at 10 m, bands B02 B03 B04 B08. Each 10 m image is the target; the "
            f"input is the same image degraded to 20 m by 2x2 block mean"
            + (f" after a Gaussian blur of sigma {config.blur_sigma} px" if config.blur_sigma else "")
            + f". {config.epochs} epochs x {config.steps_per_epoch} steps of {config.batch} random "
            f"{config.patch}x{config.patch} px (20 m) crops with flips and rot90"
            + (f"; stacks of {config.revisits} revisits: the reference (also the target) first, then the other "
               f"training scenes in random order, a slot repeating an earlier revisit with p={config.p_repeat}, the "
               f"reference alone in every slot with p={config.p_alone}" if config.arch == "multiframe" else "")
            + (f"; a share {config.rkh_share} of the crops from the top {data.RKH_TRAIN_ROWS} rows of tile 29RKH "
               f"(L2A BOA, 2020-02-19, its 10 m bands stored at 100 m, degraded to 200 m; single date, so in every "
               f"slot), its rows below held out" if config.rkh_share else "")
            + f". L1 loss on reflectance, Adam, one-cycle lr {config.lr}, seed {config.seed}; "
            f"{seconds:.0f} s. Scene 4 (another date of the same area) is held out for evaluation only.")


def export(network, config: TrainConfig, mean, std, path, metrics: dict, seconds: float):
    import torch

    from models.onnx_export import export_onnx

    multi = config.arch == "multiframe"
    example = torch.zeros((1, config.revisits, len(data.BANDS), 16, 16) if multi else (1, len(data.BANDS), 16, 16))
    kind = "multi-frame" if multi else "single-image"
    metadata = dict(
        model_type="multi-frame" if multi else "single",
        scale=data.SCALE,
        revisits=config.revisits if multi else None,
        revisit_order="clearest_first",
        input_bands=list(data.BANDS),
        input_scaling={"dn_scale": data.DN_SCALE, "dn_offset": 0.0, "mean": list(mean), "std": list(std)},
        output_bands=list(data.BANDS),
        output_units="reflectance",
        training_data=training_data_text(config, seconds),
        metrics=metrics,
        license=LICENSE + (RKH_LICENSE if config.rkh_share else ""),
        version=VERSION,
        name=f"s2_sr_x2_rgbn{'' if multi else '_single'}",
        description=(f"Sentinel-2 x2 super-resolution of B02, B03, B04, B08, {kind}"
                     + (f" ({config.revisits} revisits, HighRes-net-style recursive fusion)" if multi else
                        " (residual CNN over bilinear)")
                     + "; outputs reflectance. See qgis_satplugin/core/resources/superres/s2_sr_x2_rgbn.md."),
        receptive_field=str(network.receptive_field),
    )
    return export_onnx(network, example, path, metadata, multi_frame=multi)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train, export and evaluate a Sentinel-2 x2 super-resolution model.")
    parser.add_argument("--arch", choices=("multiframe", "single"), default="multiframe")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    defaults = TrainConfig()
    for name in ("revisits", "channels", "depth", "encoder_blocks", "epochs", "batch", "patch", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "blur_sigma", "p_repeat", "p_alone", "rkh_share"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help=f"default {MULTI_FRAME_STEPS} (multiframe: each step encodes every revisit) or "
                             f"{defaults.steps_per_epoch} (single)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    parser.add_argument("--val-scene", type=int, default=None,
                        help="development only: hold out this training scene (0-3) and report its PSNR per epoch")
    parser.add_argument("--data", type=Path, default=None, help="real-data folder (default ../shared/data)")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation (metrics stay empty)")
    args = parser.parse_args(argv)
    if args.val_scene is not None and args.val_scene not in data.TRAIN_SCENES:
        parser.error(f"--val-scene must be one of the training scenes {data.TRAIN_SCENES}; scene 4 is held out")
    if args.steps_per_epoch is None:
        args.steps_per_epoch = MULTI_FRAME_STEPS if args.arch == "multiframe" else defaults.steps_per_epoch
    config = TrainConfig(**{k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__})

    hr_images = data.load_scenes(config.train_scenes, args.data)  # scene 4 is not read here
    started = time.time()
    single_dates = [data.load_rkh("train", args.data)] if config.rkh_share else []  # its held-out rows are not read
    network, mean, std, history = train(config, hr_images, single_dates=single_dates)
    seconds = time.time() - started
    from models.networks import parameter_count

    print(f"trained in {seconds:.1f} s; {parameter_count(network)} parameters; "
          f"receptive field {network.receptive_field} px")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    metrics = {}
    if not args.no_eval:
        from models import evaluate

        export(network, config, mean, std, args.out, {}, seconds)  # evaluated as ONNX, as users run it
        metrics = {"held_out": evaluate.summary(evaluate.evaluate_held_out(args.out, args.data))}
    metrics["training"] = {"seconds": round(seconds, 1), "final_l1": history[-1]["l1"],
                           "config": {k: v for k, v in asdict(config).items() if k != "device"}}
    export(network, config, mean, std, args.out, metrics, seconds)
    if not args.no_eval:
        from models import evaluate

        result = evaluate.evaluate_held_out(args.out, args.data)
        print(evaluate.format_table(result, f"{result['name']}, held-out date"))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
