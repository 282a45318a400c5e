"""Train the band-sharpening network (20 m bands -> 10 m grid), export it to ONNX, evaluate it.

    .venv/bin/python models/train_sharpen.py --out qgis_satplugin/core/resources/superres/s2_sharpen_20m.onnx

Training data (:mod:`sharpen_data`, Wald's protocol, real data only): Slovenia scenes 0..3 and
the 29RKH L2A product, each degraded by 2; the target is their native 20 m bands. Scene 4 is
read only after training, by :mod:`evaluate_sharpen`, to write the metrics into the model
(``--val-scene`` holds out a training scene instead, for development). The loss is L1 on the
output as the runtime delivers it by default, corrected so that its 2 x 2 block means are the
coarse input's native (40 m) values (PRESERVE_REFLECTANCE, :func:`networks.consistent`), plus
``raw_weight`` times L1 on the uncorrected output: trained on the corrected one alone, the
network leaves the block means to the correction and its raw output is worse than bicubic.

Runs on the CPU in minutes; CUDA when torch sees one. Seeds are fixed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models import data, sharpen_data as sd  # noqa: E402
from models.train import LICENSE, RKH_LICENSE, pick_device, seed_everything  # noqa: E402

VERSION = "1.0.0"
NAME = "s2_sharpen_20m"


@dataclass
class SharpenConfig:
    channels: int = 48
    blocks: int = 4
    steps: int = 3000
    batch: int = 16
    patch: int = 32  # pixels per side on the training grid (even: whole 2 x 2 blocks)
    lr: float = 1e-3
    slovenia_share: float = 0.5  # of the patches; the rest from 29RKH
    consistent: bool = True  # train through the runtime's PRESERVE_REFLECTANCE correction
    raw_weight: float = 0.5  # and on the raw output too, so that PRESERVE_REFLECTANCE off still gives a good one
    seed: int = 0
    device: str = "auto"
    val_scene: int = None


def training_pairs(config: SharpenConfig, folder: Path = None) -> tuple:
    scenes = [i for i in data.TRAIN_SCENES if i != config.val_scene]
    slovenia = [sd.wald_pair(sd.slovenia_native(i, folder)) for i in scenes]
    rkh = sd.wald_pair(sd.rkh_native(folder))
    pairs = [*slovenia, rkh]
    weights = [config.slovenia_share / len(slovenia)] * len(slovenia) + [1.0 - config.slovenia_share]
    return pairs, weights, scenes


def band_statistics(pairs, weights) -> tuple:
    """Per input band mean and std over the training inputs, each pair weighted as it is sampled."""
    mean = sum(w * p.inputs.reshape(p.inputs.shape[0], -1).mean(axis=1) for p, w in zip(pairs, weights))
    var = sum(w * ((p.inputs.reshape(p.inputs.shape[0], -1) - mean[:, None]) ** 2).mean(axis=1)
              for p, w in zip(pairs, weights))
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in np.sqrt(var)]


def make_network(config: SharpenConfig, mean, std):
    from models.networks import BandSharpener

    return BandSharpener(mean, std, outputs=range(len(sd.FINE_BANDS), len(sd.INPUT_BANDS)), channels=config.channels,
                         blocks=config.blocks)


def validate(network, pair, mean, std, device) -> dict:
    """PSNR on a held-out training scene's Wald pair (development only): network vs bicubic."""
    import torch

    from models.evaluate import psnr, upsample_opencv
    from models.networks import consistent

    x = torch.from_numpy(((pair.inputs - mean) / std)[None].astype(np.float32)).to(device)
    network.eval()
    with torch.no_grad():
        raw = network(x)
        fixed = consistent(raw, torch.from_numpy(pair.coarse_blocks[None]).to(device), sd.RATIO)
    network.train()
    return {"psnr": round(psnr(fixed[0].cpu().numpy(), pair.target), 3),
            "psnr_raw": round(psnr(raw[0].cpu().numpy(), pair.target), 3),
            "bicubic": round(psnr(upsample_opencv(pair.coarse_low, sd.RATIO, "bicubic"), pair.target), 3)}


def train(config: SharpenConfig, pairs, weights, log=print):
    import torch

    from models.networks import consistent

    deterministic = torch.are_deterministic_algorithms_enabled()
    seed_everything(config.seed)
    try:
        device = pick_device(config.device)
        if device.type == "cpu":
            torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
        val = None
        if config.val_scene is not None:
            val = sd.wald_pair(sd.slovenia_native(config.val_scene))
        mean, std = band_statistics(pairs, weights)
        mean_np, std_np = np.asarray(mean, np.float32)[:, None, None], np.asarray(std, np.float32)[:, None, None]
        sampler = sd.SharpenSampler(pairs, patch=config.patch, weights=weights, seed=config.seed)
        network = make_network(config, mean, std).to(device)
        optimiser = torch.optim.Adam(network.parameters(), lr=config.lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps,
                                                       pct_start=0.1, anneal_strategy="cos")
        started, losses, history = time.time(), [], []
        network.train()
        for step in range(1, config.steps + 1):
            inputs, target, blocks = sampler.sample(config.batch)
            x = torch.from_numpy((inputs - mean_np[None]) / std_np[None]).to(device)
            raw, t = network(x), torch.from_numpy(target).to(device)
            if config.consistent:
                # What the runtime holds the output to: the native 40 m values (recovered from the bilinear input).
                fixed = consistent(raw, torch.from_numpy(blocks).to(device), sd.RATIO)
                loss = torch.nn.functional.l1_loss(fixed, t) + config.raw_weight * torch.nn.functional.l1_loss(raw, t)
            else:
                loss = torch.nn.functional.l1_loss(raw, t)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(loss.item())
            if step % 250 == 0 or step == config.steps:
                entry = {"step": step, "l1": round(float(np.mean(losses)), 6), "seconds": round(time.time() - started, 1)}
                losses = []
                if val is not None:
                    entry["val"] = validate(network, val, mean_np, std_np, device)
                history.append(entry)
                log(json.dumps(entry))
        return network.cpu().eval(), mean, std, history, time.time() - started
    finally:
        torch.use_deterministic_algorithms(deterministic)


def training_data_text(config: SharpenConfig, scenes, seconds: float) -> str:
    return ("Real Sentinel-2 data only, Wald's reduced-resolution protocol (every band degraded by 2 x 2 block "
            "mean; the 20 m bands, at 40 m information, resampled bilinearly by GDAL onto the 20 m grid as the "
            "download step writes them; target: the native 20 m bands): Sentinel-2 L1C TOA reflectance of one area "
            f"in Slovenia (eo-learn example data, EPSG:32633), scenes {', '.join(map(str, scenes))}, 50 x 50 target "
            "pixels each; and the L2A product S2A 29RKH 2020-02-19 (rio-tiler-pds fixtures: 10 m bands stored at "
            f"100 m, 20 m at 200 m; 548 x 548 target pixels, desert). {config.steps} steps of {config.batch} random "
            f"{config.patch} x {config.patch} px crops at even offsets with flips and rot90, "
            f"{config.slovenia_share:.0%} of them from the Slovenia scenes; L1 loss on reflectance"
            + (f" after the runtime's PRESERVE_REFLECTANCE correction, plus {config.raw_weight} x the same loss "
               "without it" if config.consistent else "")
            + f", Adam, one-cycle lr {config.lr}, seed {config.seed}; {seconds:.0f} s. Scene 4 (another date of the "
            "Slovenia area) is held out for evaluation only.")


def export(network, config: SharpenConfig, mean, std, path, metrics: dict, scenes, seconds: float):
    import torch

    from models.onnx_export import export_onnx

    metadata = dict(
        model_type="band-sharpening",
        scale=1,
        input_bands=list(sd.INPUT_BANDS),
        input_resolutions=list(sd.RESOLUTIONS),
        input_scaling={"dn_scale": data.DN_SCALE, "dn_offset": 0.0, "mean": list(mean), "std": list(std)},
        output_bands=list(sd.COARSE_BANDS),
        output_units="reflectance",
        training_data=training_data_text(config, scenes, seconds),
        metrics=metrics,
        license=LICENSE + RKH_LICENSE,
        version=VERSION,
        name=NAME,
        description=("Sentinel-2 band sharpening: B05, B06, B07, B8A, B11, B12 (20 m) sharpened on the 10 m grid "
                     "of B02, B03, B04, B08, one date, DSen2-style residual CNN; outputs reflectance. See "
                     "qgis_satplugin/core/resources/superres/s2_sharpen_20m.md."),
        receptive_field=str(network.receptive_field),
    )
    example = torch.zeros((1, len(sd.INPUT_BANDS), 16, 16))
    return export_onnx(network, example, path, metadata, multi_frame=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train, export and evaluate the Sentinel-2 band-sharpening model.")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    defaults = SharpenConfig()
    for name in ("channels", "blocks", "steps", "batch", "patch", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "slovenia_share", "raw_weight"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--no-consistent", dest="consistent", action="store_false",
                        help="train on the raw output, without the PRESERVE_REFLECTANCE correction")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--val-scene", type=int, default=None, help="development only: hold out a training scene (0-3)")
    parser.add_argument("--data", type=Path, default=None, help="real-data folder (default ../shared/data)")
    parser.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    args = parser.parse_args(argv)
    if args.val_scene is not None and args.val_scene not in data.TRAIN_SCENES:
        parser.error(f"--val-scene must be one of {data.TRAIN_SCENES}; scene 4 is held out")
    if args.patch % 2:
        parser.error("--patch must be even (whole 2 x 2 blocks)")
    config = SharpenConfig(**{k: v for k, v in vars(args).items() if k in SharpenConfig.__dataclass_fields__})
    pairs, weights, scenes = training_pairs(config, args.data)  # scene 4 is not read here
    network, mean, std, history, seconds = train(config, pairs, weights)
    from models.networks import parameter_count

    print(f"trained in {seconds:.1f} s; {parameter_count(network)} parameters; receptive field "
          f"{network.receptive_field} px")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    metrics = {"training": {"seconds": round(seconds, 1), "final_l1": history[-1]["l1"],
                            "config": {k: v for k, v in asdict(config).items() if k != "device"}}}
    export(network, config, mean, std, args.out, metrics, scenes, seconds)
    if not args.no_eval:
        from models import evaluate_sharpen

        result = evaluate_sharpen.evaluate_held_out(args.out, args.data)  # as ONNX, through the runtime
        metrics["held_out"] = evaluate_sharpen.summary(result)
        export(network, config, mean, std, args.out, metrics, scenes, seconds)
        print(evaluate_sharpen.format_table(result))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
