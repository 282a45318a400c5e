"""Evaluate the band-sharpening model through the plugin's runtime, and every model's consistency.

Held out (Wald's protocol, :mod:`sharpen_data`): ``slovenia_s2_l1c/scene_4`` degraded by 2 is
written as a GeoTIFF on its 20 m grid (the 10 m bands at 20 m, the 20 m bands at 40 m
information resampled onto that grid bilinearly by GDAL) and run through
``satplugin:superresolve``'s core (``superres.run``), with PRESERVE_REFLECTANCE (the default)
and without; the output's six bands are scored against the native 20 m bands, as are OpenCV's
bicubic and Lanczos x2 of the 40 m information and the bilinear input itself. PSNR and SSIM
as in :mod:`evaluate` (reflectance, data range 1, whole image), per band and as the mean of
the six bands' PSNR.

Consistency (no reference needed, as opensr-test scores it): each real scene at full
resolution through the runtime; the output degraded back by its blocks (2 x 2 output pixels:
a 20 m band's pixel, or one input pixel of a x2 model) against the input degraded alike: the
mean absolute reflectance difference per band, and the mean spectral angle (degrees) between
the two vectors of bands.

    .venv/bin/python models/evaluate_sharpen.py qgis_satplugin/core/resources/superres/s2_sharpen_20m.onnx
    .venv/bin/python models/evaluate_sharpen.py --consistency MODEL.onnx [MODEL.onnx ...]

``--save-pairs DIR`` also writes each (input, output) pair of the consistency runs as an ``.npz``,
for ``models/opensr_consistency.py`` to score with opensr-test in an environment of its own.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models import data, sharpen_data as sd  # noqa: E402
from models.evaluate import scores, upsample_opencv  # noqa: E402


def write_raster(path: Path, image: np.ndarray, bands, pixel: float, crs: str = "EPSG:32633",
                 origin=(465181.0, 5080244.6)) -> Path:
    """``image`` [bands, H, W] reflectance as a float32 GeoTIFF with band names (no date: none is needed)."""
    import rasterio
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", width=image.shape[2], height=image.shape[1], count=image.shape[0],
                       dtype="float32", crs=crs, transform=from_origin(*origin, pixel, pixel)) as ds:
        ds.write(image.astype(np.float32))
        for i, name in enumerate(bands, start=1):
            ds.set_band_description(i, name)
    return path


def run_model(model, raster: Path, output: Path, **options) -> np.ndarray:
    """The output of ``superres.run`` (what satplugin:superresolve runs) as [bands, H, W] float64."""
    import rasterio

    from qgis_satplugin.core.feedback import Feedback
    from qgis_satplugin.core.superres import SuperResolveOptions, run

    run(SuperResolveOptions(inputs=[str(raster)], output=str(output), model=str(model), **options), Feedback())
    with rasterio.open(output) as ds:
        return ds.read().astype(np.float64)


def evaluate_held_out(model_path, folder: Path = None, **options) -> dict:
    pair = sd.wald_pair(sd.slovenia_native(data.HELD_OUT_SCENE, folder))
    result = {
        "name": Path(model_path).stem,
        "protocol": f"slovenia scene_{data.HELD_OUT_SCENE} (held out), Wald: every band degraded by 2 x 2 block mean, "
                    "the 20 m bands (then 40 m information) resampled bilinearly by GDAL onto the 20 m grid; target: "
                    f"the native 20 m bands ({pair.target.shape[2]} x {pair.target.shape[1]} px); through "
                    "satplugin:superresolve; reflectance, data range 1.0, whole image",
        "bands": list(sd.COARSE_BANDS),
        "bicubic": scores(upsample_opencv(pair.coarse_low, sd.RATIO, "bicubic"), pair.target),
        "lanczos": scores(upsample_opencv(pair.coarse_low, sd.RATIO, "lanczos"), pair.target),
        "bilinear_input": scores(pair.inputs[len(sd.FINE_BANDS):], pair.target),
    }
    with tempfile.TemporaryDirectory() as tmp:
        raster = write_raster(Path(tmp) / "scene_4_wald.tif", pair.inputs, sd.INPUT_BANDS, 20.0)
        result["model"] = scores(run_model(model_path, raster, Path(tmp) / "on.tif", **options), pair.target)
        result["model_uncorrected"] = scores(
            run_model(model_path, raster, Path(tmp) / "off.tif", preserve_reflectance=False, **options), pair.target)
    return result


def summary(result: dict) -> dict:
    keep = ("model", "model_uncorrected", "bicubic", "lanczos", "bilinear_input")
    out = {k: {"psnr_band_mean": result[k]["psnr_band_mean"], "ssim": result[k]["ssim"],
               "psnr_bands": result[k]["psnr_bands"]} for k in keep}
    out["protocol"] = result["protocol"]
    return out


LABELS = {"model": "model (PRESERVE_REFLECTANCE, the default)", "model_uncorrected": "model, PRESERVE_REFLECTANCE off",
          "bicubic": "bicubic x2 of the 40 m information (OpenCV)", "lanczos": "Lanczos x2 (OpenCV)",
          "bilinear_input": "the input as given (GDAL bilinear)"}


def format_table(result: dict) -> str:
    bands = result["bands"]
    lines = [f"{result['name']}, held-out date: {result['protocol']}", "",
             "| method | mean PSNR dB | SSIM | " + " | ".join(f"PSNR {b}" for b in bands) + " |",
             "|" + "---|" * (3 + len(bands))]
    for key, label in LABELS.items():
        s = result[key]
        lines.append(f"| {label} | {s['psnr_band_mean']:.2f} | {s['ssim']:.4f} | "
                     + " | ".join(f"{v:.2f}" for v in s["psnr_bands"]) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- consistency at full resolution

def real_scenes(folder: Path = None) -> list:
    """(name, [10, H, W] reflectance on the finest grid, [6, H/2, W/2] native 20 m values, pixel metres)
    of every real scene: the Slovenia ones as stored (their 20 m bands in whole 2 x 2 blocks), 29RKH
    with its 20 m bands resampled bilinearly onto the 10 m bands' grid, as the download step does."""
    scenes = []
    for i in (*data.TRAIN_SCENES, data.HELD_OUT_SCENE):  # no tuning happens here: figures only
        native = sd.slovenia_native(i, folder)
        image = np.concatenate([native.fine, np.repeat(np.repeat(native.coarse, 2, axis=1), 2, axis=2)])
        scenes.append((f"slovenia scene_{i}", image, native.coarse, 10.0))
    rkh = sd.rkh_native(folder)
    scenes.append(("29RKH (100 m grid)", sd.full_resolution_input(rkh), rkh.coarse, 100.0))
    return scenes


def consistency(model_path, folder: Path = None, save_pairs: Path = None) -> list:
    """Per scene: mean |D(output) - input| per band and the mean spectral angle, corrected and not.

    D is the 2 x 2 block mean; the input, what the output should degrade back to: the native
    20 m values for band sharpening, the input pixels for a x2 model. ``save_pairs``: a folder
    for each run's ``lr`` (that input) and ``sr`` (the output), one ``.npz`` per model, scene and run.
    """
    from models.evaluate import OnnxModel
    from qgis_satplugin.core.superres.contract import band_match_key

    contract = OnnxModel(model_path).contract
    wanted = [sd.INPUT_BANDS.index(band_match_key(b)) for b in contract.output_bands]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, image, native, pixel in real_scenes(folder):
            raster = write_raster(Path(tmp) / "scene.tif", image, sd.INPUT_BANDS, pixel)
            reference = native if contract.scale == 1 else image[wanted]
            row = {"scene": name}
            for key, preserve in (("corrected", True), ("uncorrected", False)):
                out = run_model(model_path, raster, Path(tmp) / f"{key}.tif", preserve_reflectance=preserve)
                if save_pairs is not None:
                    slug = name.split(" (")[0].replace(" ", "_")
                    Path(save_pairs).mkdir(parents=True, exist_ok=True)
                    np.savez(Path(save_pairs) / f"{Path(model_path).stem}__{slug}__{key}.npz",
                             lr=reference.astype(np.float32), sr=out.astype(np.float32))
                degraded = data.degrade(out, 2).astype(np.float64)
                row[key] = {"mean_abs": [float(v) for v in np.abs(degraded - reference).mean(axis=(1, 2))],
                            "spectral_angle_deg": spectral_angle(degraded, reference)}
            rows.append(row)
    return rows


def spectral_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Mean angle (degrees) between the band vectors of ``a`` and ``b`` [bands, H, W], per pixel.

    As 2 arcsin(|a/|a| - b/|b|| / 2), which stays exact for tiny angles where arccos of the
    cosine loses them to rounding.
    """
    unit_a = a / np.maximum(np.linalg.norm(a, axis=0), 1e-12)
    unit_b = b / np.maximum(np.linalg.norm(b, axis=0), 1e-12)
    chord = np.linalg.norm(unit_a - unit_b, axis=0)
    return float(np.degrees(2 * np.arcsin(np.clip(chord / 2, 0.0, 1.0))).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="exported .onnx models")
    parser.add_argument("--data", type=Path, default=None, help="real-data folder (default ../shared/data)")
    parser.add_argument("--consistency", action="store_true", help="consistency at full resolution on every real scene")
    parser.add_argument("--save-pairs", type=Path, default=None, help="with --consistency: a folder for the pairs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for model in args.models:
        if args.consistency:
            rows = consistency(model, args.data, args.save_pairs)
            if args.json:
                print(json.dumps(rows, indent=1))
                continue
            print(f"{Path(model).stem}: consistency (mean |degraded output - input| per band, largest band; "
                  "spectral angle)")
            for row in rows:
                on, off = row["corrected"], row["uncorrected"]
                print(f"  {row['scene']}: corrected {max(on['mean_abs']):.2e}, {on['spectral_angle_deg']:.1e} deg; "
                      f"uncorrected {max(off['mean_abs']):.2e}, {off['spectral_angle_deg']:.3f} deg")
        else:
            result = evaluate_held_out(model, args.data)
            print(json.dumps(result, indent=1) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
