"""Export a torch super-resolution network to ONNX with the plugin's model contract.

The runtime (``qgis_satplugin/core/superres``) reads nothing but the ``.onnx`` file, so
the contract metadata (``metadata_props``, see ``contract.py``) is written into it here,
built by :func:`contract.metadata_props` so that exporters cannot write what the runtime
would refuse. Height and width (and the batch, and a dynamic revisit count) are dynamic
axes: the runtime feeds tiles of any size.

Tensors: multi-frame ``[batch, revisits, bands, height, width]``, single-image
``[batch, bands, height, width]``; output ``[batch, out_bands, height*scale, width*scale]``.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout: the core is importable
    sys.path.insert(0, str(ROOT))

from qgis_satplugin.core.superres.contract import ModelContract, metadata_props  # noqa: E402

INPUT_NAME = "revisits"
SINGLE_INPUT_NAME = "image"
OUTPUT_NAME = "super_resolved"
OPSET = 17


def export_onnx(module, example, path, metadata: dict, *, multi_frame: bool, dynamic_revisits: bool = False) -> Path:
    """Write ``module`` to ``path`` (atomically) with ``metadata`` as its contract.

    ``example`` is an input tensor of the right rank; ``metadata`` holds the keyword
    arguments of :func:`metadata_props` (validated before anything is written).
    """
    import onnx
    import torch

    props = metadata_props(**metadata)
    contract = ModelContract.from_metadata(props, "the exported model")
    if contract.multi_frame != multi_frame:
        raise ValueError("metadata model_type does not match multi_frame")
    name = INPUT_NAME if multi_frame else SINGLE_INPUT_NAME
    axes = {0: "batch", 3: "height", 4: "width"} if multi_frame else {0: "batch", 2: "height", 3: "width"}
    if multi_frame and dynamic_revisits:
        axes[1] = "revisits"
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    module = module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # Replicate padding traces to reversed slices, which the legacy exporter cannot fold;
        # the graph is right all the same (ONNX Runtime parity is tested), so the notice is noise.
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        # dynamo=False: the TorchScript exporter; torch 2.13 still accepts it, and the dynamo
        # exporter needs onnxscript, which the project does not install.
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            input_names=[name],
            output_names=[OUTPUT_NAME],
            dynamic_axes={name: axes, OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"}},
            opset_version=OPSET,
            dynamo=False,
        )
    try:
        model = onnx.load(str(tmp))
        del model.metadata_props[:]
        for key, value in props.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        model.producer_name = "satplugin models/onnx_export.py"
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
    finally:  # never leave a partial file behind
        if tmp.exists():
            tmp.unlink()
    return path
