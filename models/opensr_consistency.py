"""opensr-test's consistency metrics of the runtime's outputs (``evaluate_sharpen.py --save-pairs``).

opensr-test (Aybar et al. 2024) scores super-resolution without a high-resolution reference:
the output, downsampled bilinearly with antialiasing to the input's grid, against the input,
as the reflectance error (L1), the spectral error (spectral angle, SAD, in degrees) and the
spatial error (the shift that phase correlation finds, in input pixels), 16 output pixels of
border left out. It is not in the project's environments: it pins numpy 2 (which the
project's numba and rasterio builds do not take) and brings CLIP and LPIPS for its other
metrics; so the pairs are written by the project's environment and scored in one of its own:

    .venv/bin/python models/evaluate_sharpen.py --consistency --save-pairs /tmp/pairs MODEL.onnx [...]
    python3 -m venv /tmp/osr && /tmp/osr/bin/pip install torch==2.14.1 torchvision==0.29.1 opensr-test==1.3.3
    /tmp/osr/bin/python models/opensr_consistency.py /tmp/pairs

This file imports only numpy, torch and opensr_test: it runs in that environment alone. (That
pair of torch and torchvision, several GB with its CUDA libraries, is what worked here: the
torchvision 0.28.0 wheel for the project's CPU torch 2.13.0 is a CUDA build that does not load.)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def score(lr: np.ndarray, sr: np.ndarray) -> dict:
    import opensr_test
    import torch

    metrics = opensr_test.Metrics(device="cpu")
    values = metrics.consistency(lr=torch.from_numpy(lr), sr=torch.from_numpy(sr))
    return {k: float(v) for k, v in values.items()}


def blocks(lr: np.ndarray, scale: int) -> np.ndarray:
    """Each input pixel repeated over its block: exactly consistent under the block mean the
    models are held to, so its figures are what opensr-test's other degradation alone gives."""
    return np.repeat(np.repeat(lr, scale, axis=1), scale, axis=2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pairs", type=Path, help="the folder evaluate_sharpen.py --save-pairs wrote")
    args = parser.parse_args(argv)
    print("| model | scene | run | reflectance (L1) | spectral (SAD, deg) | spatial (px) |")
    print("|---|---|---|---|---|---|")
    baselines = set()
    for path in sorted(args.pairs.glob("*.npz")):
        model, scene, run = path.stem.split("__")
        pair = np.load(path)
        rows = [(model, run, pair["sr"])]
        if (scene, pair["lr"].shape) not in baselines:  # once per input: its own blocks
            baselines.add((scene, pair["lr"].shape))
            rows.append(("input blocks (nearest)", "-", blocks(pair["lr"], pair["sr"].shape[-1] // pair["lr"].shape[-1])))
        for name, what, sr in rows:
            v = score(pair["lr"], sr)
            print(f"| {name} | {scene} | {what} | {v['reflectance']:.2e} | {v['spectral']:.3f} | {v['spatial']:.3f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
