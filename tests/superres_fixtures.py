"""Small ONNX models with known outputs, and revisit rasters, for the super-resolution tests.

The models are built node by node with ``onnx.helper`` (no torch), so what they compute
is known exactly: upsample one revisit (or the mean of all) by ``scale``, optionally
smooth it with a 3 x 3 box (a receptive field of 1 input pixel, with zero padding at the
tile edges: what makes naive tiling show seams), and turn the normalised input back into
reflectance. They carry the real contract metadata.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

BANDS = ["B02", "B03", "B04", "B08"]
MEAN = [0.05, 0.07, 0.06, 0.25]
STD = [0.03, 0.04, 0.05, 0.1]


def contract_metadata(**overrides) -> dict:
    meta = dict(
        model_type="multi-frame",
        scale=2,
        revisits="dynamic",
        revisit_order="clearest_first",
        input_bands=BANDS,
        input_scaling={"dn_scale": 0.0001, "dn_offset": 0.0, "mean": MEAN, "std": STD},
        output_bands=BANDS,
        output_units="reflectance",
        training_data="none: a fixed test graph",
        metrics={},
        license="GPL-2.0-or-later",
        version="0.0-test",
        receptive_field=1,
        name="test-model",
    )
    meta.update(overrides)
    return meta


def make_model(path, *, combine="reference", resize="nearest", box=False, scale=2, bands=BANDS, out_bands=None,
               multi_frame=True, fixed_revisits=None, fixed_size=None, metadata=None, drop_keys=(), opset=17):
    """Write an ONNX model to ``path``; returns the path.

    combine: "reference" (revisit 0) or "mean" (over revisits); resize: "nearest" or "linear".
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from satplugin.qgis_satplugin.core.superres.contract import metadata_props

    c = len(bands)
    out_bands = list(out_bands or bands)
    h, w = (fixed_size if fixed_size else ("height", "width"))
    if multi_frame:
        shape = ["batch", fixed_revisits or "revisits", c, h, w]
    else:
        shape = ["batch", c, h, w]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", len(out_bands), "oh", "ow"])
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32 if np.asarray(array).dtype.kind == "f" else np.int64), name))
        return name

    current = "x"
    if multi_frame:
        if combine == "reference":
            nodes.append(helper.make_node("Gather", ["x", const("zero", np.array(0, dtype=np.int64))], ["ref"], axis=1))
        else:
            nodes.append(helper.make_node("ReduceMean", ["x"], ["ref"], axes=[1], keepdims=0))
        current = "ref"
    scales = const("scales", np.array([1, 1, scale, scale], dtype=np.float32))
    if resize == "nearest":
        nodes.append(helper.make_node("Resize", [current, "", scales], ["up"], mode="nearest",
                                      coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
    else:
        nodes.append(helper.make_node("Resize", [current, "", scales], ["up"], mode="linear",
                                      coordinate_transformation_mode="half_pixel"))
    current = "up"
    if box:
        weights = const("box", np.full((c, 1, 3, 3), 1.0 / 9.0, dtype=np.float32))
        nodes.append(helper.make_node("Conv", [current, weights], ["smooth"], group=c, pads=[1, 1, 1, 1]))
        current = "smooth"
    std = const("std", np.array(STD[:c], dtype=np.float32).reshape(1, c, 1, 1))
    mean = const("mean", np.array(MEAN[:c], dtype=np.float32).reshape(1, c, 1, 1))
    nodes.append(helper.make_node("Mul", [current, std], ["scaled"]))
    nodes.append(helper.make_node("Add", ["scaled", mean], ["refl"]))
    current = "refl"
    if len(out_bands) != c:
        nodes.append(helper.make_node("Slice", [current, const("s0", np.array([0], dtype=np.int64)),
                                                const("s1", np.array([len(out_bands)], dtype=np.int64)),
                                                const("sa", np.array([1], dtype=np.int64))], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [current], ["y"]))
    graph = helper.make_graph(nodes, "test-sr", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    if metadata is None:
        meta = contract_metadata(scale=scale, input_bands=list(bands), output_bands=out_bands,
                                 model_type="multi-frame" if multi_frame else "single",
                                 revisits=fixed_revisits or "dynamic",
                                 input_scaling={"dn_scale": 0.0001, "dn_offset": 0.0, "mean": MEAN[:c], "std": STD[:c]},
                                 receptive_field=1 if box else None)
        if not multi_frame:
            meta.pop("revisits")
        props = metadata_props(**meta)
    else:
        props = dict(metadata)
    for key in drop_keys:
        props.pop(key, None)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return Path(path)


def write_revisit(path, dn: np.ndarray, when: datetime | None, *, origin=(500000.0, 5000000.0), pixel=10.0,
                  crs="EPSG:32633", bands=BANDS, scl: np.ndarray | None = None, nodata=0):
    """A uint16 image (``dn``: [bands, h, w]) with band names and its date tag (none: undated); optionally ``_SCL``."""
    import rasterio
    from rasterio.transform import from_origin

    path = Path(path)
    count, height, width = dn.shape
    profile = dict(driver="GTiff", width=width, height=height, count=count, dtype="uint16", nodata=nodata,
                   crs=crs, transform=from_origin(origin[0], origin[1], pixel, pixel))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(dn.astype(np.uint16))
        for i, name in enumerate(bands, start=1):
            ds.set_band_description(i, name)
        if when is not None:
            ds.update_tags(ACQUISITION_DATETIME=when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if scl is not None:
        profile.update(count=1, dtype="uint8", nodata=0)
        with rasterio.open(path.with_name(path.stem + "_SCL.tif"), "w", **profile) as ds:
            ds.write(scl.astype(np.uint8), 1)
    return path


def dated_series(folder, stacks, start=datetime(2023, 5, 1, 10, 30, tzinfo=timezone.utc), scls=None, **kwargs):
    """Write one revisit per ``stacks`` entry, 10 days apart; returns their paths."""
    folder = Path(folder)
    paths = []
    for i, dn in enumerate(stacks):
        when = start + timedelta(days=10 * i)
        scl = None if scls is None else scls[i]
        paths.append(write_revisit(folder / f"S2_{when:%Y%m%d}.tif", dn, when, scl=scl, **kwargs))
    return paths


def model_json(path) -> dict:
    import onnx

    return {p.key: json.loads(p.value) if p.value[:1] in "[{" else p.value for p in onnx.load(str(path)).metadata_props}
