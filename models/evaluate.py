"""Evaluate an exported super-resolution model (ONNX Runtime, CPU) against bicubic and Lanczos.

Protocol: the held-out scene ``slovenia_s2_l1c/scene_4`` (never used in training or tuning)
is degraded 10 m -> 20 m as in :mod:`data` (2 x 2 block mean); the model, OpenCV's bicubic
(``INTER_CUBIC``) and Lanczos (``INTER_LANCZOS4``) upsample that 20 m input x2 and each result
is scored against the 10 m original. Multi-frame models get scene 4 as the reference and the
auxiliary revisits from scenes 0..3 (degraded the same way) ranked clearest first (by mean blue
reflectance; scene 0 is thick haze and ranks last), as the runtime would rank them; they are also
scored on scene 4 repeated in every slot, which shows what the auxiliary revisits add.

Metrics, on reflectance (DN / 10000) with a data range of 1.0, over the whole image (borders
included):
    PSNR = 10 log10(1 / MSE), MSE over every pixel of every band ("psnr"), and per band;
    SSIM with an 11 x 11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, computed per band on
    the window positions that fit inside the image ("valid"), then averaged over bands ("ssim").

Scenes 0-4 are one area on five dates: scene 4 is a new date, not a new area, so these figures
are optimistic for areas unlike it. ``--cross-area`` adds tile 29RKH (another continent), whose
10 m bands are stored at 100 m, degraded to 200 m: its rows below ``data.RKH_TRAIN_ROWS``, which
no training reads (``train.py --rkh-share`` may train on the rows above).

    .venv/bin/python models/evaluate.py qgis_satplugin/core/resources/superres/s2_sr_x2_rgbn.onnx [--cross-area]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models import data  # noqa: E402
from qgis_satplugin.core.superres.contract import ModelContract  # noqa: E402

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
DATA_RANGE = 1.0


# ---------------------------------------------------------------- metrics (numpy only)

def psnr(pred: np.ndarray, target: np.ndarray, data_range: float = DATA_RANGE) -> float:
    mse = np.mean((pred.astype(np.float64) - target.astype(np.float64)) ** 2)
    return float(10 * np.log10(data_range ** 2 / mse)) if mse > 0 else float("inf")


def _filter_valid(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Separable correlation of a 2-D image with ``kernel``, valid positions only."""
    rows = np.lib.stride_tricks.sliding_window_view(image, len(kernel), axis=0) @ kernel
    return np.lib.stride_tricks.sliding_window_view(rows, len(kernel), axis=1) @ kernel


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float = DATA_RANGE) -> float:
    """Mean SSIM of two 2-D images (Wang et al. 2004: Gaussian window 11, sigma 1.5)."""
    x, y = pred.astype(np.float64), target.astype(np.float64)
    kernel = data.gaussian_kernel(SSIM_SIGMA, radius=SSIM_WINDOW // 2)
    mx, my = _filter_valid(x, kernel), _filter_valid(y, kernel)
    sxx = _filter_valid(x * x, kernel) - mx * mx
    syy = _filter_valid(y * y, kernel) - my * my
    sxy = _filter_valid(x * y, kernel) - mx * my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    index = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(index.mean())


def scores(pred: np.ndarray, target: np.ndarray) -> dict:
    """PSNR (all bands together) and SSIM (band mean) of ``[bands, H, W]`` arrays, plus per band."""
    psnr_bands = [round(psnr(p, t), 4) for p, t in zip(pred, target)]
    ssim_bands = [round(ssim(p, t), 5) for p, t in zip(pred, target)]
    return {
        "psnr": round(psnr(pred, target), 4),
        "ssim": round(float(np.mean(ssim_bands)), 5),
        "psnr_band_mean": round(float(np.mean(psnr_bands)), 4),
        "psnr_bands": psnr_bands,
        "ssim_bands": ssim_bands,
    }


# ---------------------------------------------------------------- predictions

def upsample_opencv(lr: np.ndarray, scale: int, method: str) -> np.ndarray:
    import cv2

    flag = {"bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}[method]
    h, w = lr.shape[-2:]
    return np.stack([cv2.resize(band, (w * scale, h * scale), interpolation=flag) for band in lr])


class OnnxModel:
    """An exported model run by ONNX Runtime on the CPU, fed normalised reflectance."""

    def __init__(self, path):
        import onnx
        import onnxruntime as ort

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        self.contract = ModelContract.from_metadata(meta, str(path))
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.mean = np.asarray(self.contract.mean, np.float32)[:, None, None]
        self.std = np.asarray(self.contract.std, np.float32)[:, None, None]

    def __call__(self, frames) -> np.ndarray:
        """Reflectance ``[bands, H*s, W*s]`` from a list of LR reflectance frames (reference first)."""
        normalised = [(f - self.mean) / self.std for f in frames]
        if self.contract.multi_frame:
            feed = np.stack(normalised)[None]
        else:
            feed = normalised[0][None]
        return self.session.run(None, {self.input_name: feed.astype(np.float32)})[0][0]

    def stack(self, reference, auxiliaries) -> list:
        """The revisit stack the runtime would build: reference, then auxiliaries, padded by repeats."""
        if not self.contract.multi_frame:
            return [reference]
        n = self.contract.revisits
        frames = [reference, *auxiliaries][:n]
        distinct = len(frames)
        while len(frames) < n:  # cycle through the frames there are: reference, aux 1, ...
            frames.append(frames[len(frames) % distinct])
        return frames


# ---------------------------------------------------------------- protocols

def evaluate_held_out(model_path, folder: Path = None, blur_sigma: float = 0.0) -> dict:
    """Figures on scene 4 degraded to 20 m: the model (with and without auxiliaries) and baselines."""
    model = OnnxModel(model_path)
    bands, scale = list(model.contract.input_bands), model.contract.scale
    hr = data.load_scenes([data.HELD_OUT_SCENE], folder, bands)[0]
    lr = data.degrade(hr, scale, blur_sigma)
    result = {
        "name": model.contract.name or Path(model_path).stem,
        "protocol": f"slovenia scene_{data.HELD_OUT_SCENE} (held out) 10 m -> 20 m by {scale}x{scale} block mean"
                    + (f" after Gaussian sigma {blur_sigma}" if blur_sigma else "")
                    + ", reflectance, data range 1.0, whole image",
        "bands": bands,
        "bicubic": scores(upsample_opencv(lr, scale, "bicubic"), hr),
        "lanczos": scores(upsample_opencv(lr, scale, "lanczos"), hr),
    }
    if model.contract.multi_frame:
        aux_lr = [data.degrade(im, scale, blur_sigma) for im in data.load_scenes(data.TRAIN_SCENES, folder, bands)]
        order = data.clearest_first(list(data.TRAIN_SCENES), aux_lr)
        used = order[: model.contract.revisits - 1]
        result["auxiliary_scenes"] = used
        result["model"] = scores(model(model.stack(lr, [aux_lr[i] for i in used])), hr)
        result["model_no_auxiliary"] = scores(model([lr] * model.contract.revisits), hr)
    else:
        result["model"] = scores(model([lr]), hr)
    return result


def evaluate_cross_area(model_path, folder: Path = None) -> dict:
    """Figures on tile 29RKH's 10 m bands stored at 100 m, degraded to 200 m (single date)."""
    model = OnnxModel(model_path)
    bands, scale = list(model.contract.input_bands), model.contract.scale
    hr = data.even_crop(data.load_rkh("held_out", folder, bands), scale)  # the rows training never sees
    lr = data.degrade(hr, scale)
    return {
        "name": model.contract.name or Path(model_path).stem,
        "bands": bands,
        "protocol": f"tile 29RKH below row {data.RKH_TRAIN_ROWS} (held out), 10 m bands stored at 100 m, "
                    f"100 m -> 200 m by {scale}x{scale} block mean (another area, at a 10x coarser scale), single date",
        "bicubic": scores(upsample_opencv(lr, scale, "bicubic"), hr),
        "lanczos": scores(upsample_opencv(lr, scale, "lanczos"), hr),
        "model": scores(model(model.stack(lr, [])), hr),
    }


def summary(result: dict) -> dict:
    """The compact figures that go into the model's metadata."""
    keep = ("model", "model_no_auxiliary", "bicubic", "lanczos")
    out = {k: {"psnr": result[k]["psnr"], "ssim": result[k]["ssim"]} for k in keep if k in result}
    out["protocol"] = result["protocol"]
    if "auxiliary_scenes" in result:
        out["auxiliary_scenes"] = result["auxiliary_scenes"]
    return out


def format_table(result: dict, title: str) -> str:
    bands = result.get("bands", list(data.BANDS))
    head = f"| method | PSNR dB | SSIM | " + " | ".join(f"PSNR {b}" for b in bands) + " | " + \
        " | ".join(f"SSIM {b}" for b in bands) + " |"
    lines = [f"{title}: {result['protocol']}", "", head, "|" + "---|" * (3 + 2 * len(bands))]
    labels = {"model": "model", "model_no_auxiliary": "model, scene 4 repeated (no auxiliary)",
              "bicubic": "bicubic (OpenCV INTER_CUBIC)", "lanczos": "Lanczos (OpenCV INTER_LANCZOS4)"}
    for key, label in labels.items():
        if key not in result:
            continue
        s = result[key]
        if key == "model" and "auxiliary_scenes" in result:
            label = f"model, auxiliary scenes {', '.join(map(str, result['auxiliary_scenes']))}"
        lines.append(f"| {label} | {s['psnr']:.2f} | {s['ssim']:.4f} | "
                     + " | ".join(f"{v:.2f}" for v in s["psnr_bands"]) + " | "
                     + " | ".join(f"{v:.4f}" for v in s["ssim_bands"]) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="an exported .onnx model")
    parser.add_argument("--data", type=Path, default=None, help="real-data folder (default ../shared/data)")
    parser.add_argument("--cross-area", action="store_true", help="also evaluate on tile 29RKH (100 m -> 200 m)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    results = {"held_out": evaluate_held_out(args.model, args.data)}
    if args.cross_area:
        results["cross_area"] = evaluate_cross_area(args.model, args.data)
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        held_out = results["held_out"]
        print(format_table(held_out, f"{held_out['name']}, held-out date"))
        if "cross_area" in results:
            print()
            print(format_table(results["cross_area"], f"{held_out['name']}, cross-area"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
