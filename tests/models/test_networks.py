"""The super-resolution networks: ONNX export parity, dynamic sizes, metadata, receptive field."""
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from tests.conftest import ROOT  # noqa: E402

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models.networks import MultiFrameSR, SingleImageSR, build, parameter_count  # noqa: E402
from models.onnx_export import export_onnx  # noqa: E402
from qgis_satplugin.core.superres.contract import ModelContract  # noqa: E402

MEAN, STD = [0.08, 0.07, 0.05, 0.25], [0.01, 0.012, 0.015, 0.05]
BANDS = ["B02", "B03", "B04", "B08"]


def _randomised(module, seed=0):
    """Random weights everywhere, the zero-initialised last layer included (so nothing is trivially 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return module.eval()


def _metadata(multi, receptive_field):
    return dict(
        model_type="multi-frame" if multi else "single", scale=2, revisits=4 if multi else None,
        input_bands=BANDS, input_scaling={"dn_scale": 1e-4, "dn_offset": 0.0, "mean": MEAN, "std": STD},
        output_bands=BANDS, output_units="reflectance", training_data="random weights (test)",
        metrics={"held_out": {"model": {"psnr": 1.0}}}, license="GPL-2.0-or-later", version="0.0.1",
        name="test", receptive_field=str(receptive_field))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    folder = tmp_path_factory.mktemp("onnx")
    for arch in ("single", "multiframe"):
        net = _randomised(build(arch, MEAN, STD))
        multi = arch == "multiframe"
        example = torch.zeros((1, 4, 4, 16, 16) if multi else (1, 4, 16, 16))
        path = export_onnx(net, example, folder / f"{arch}.onnx", _metadata(multi, net.receptive_field),
                           multi_frame=multi)
        out[arch] = (net, path)
    return out


@pytest.mark.parametrize("arch,shape", [
    ("single", (2, 4, 23, 37)),
    ("single", (1, 4, 9, 9)),
    ("multiframe", (2, 4, 4, 21, 30)),
    ("multiframe", (1, 4, 4, 40, 13)),
])
def test_onnx_runtime_matches_torch_on_sizes_not_used_at_export(exported, arch, shape):
    net, path = exported[arch]
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = net(x).numpy()
    assert got.shape == (shape[0], 4, shape[-2] * 2, shape[-1] * 2)
    assert got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-4


def test_exported_axes_are_dynamic_and_revisits_fixed(exported):
    model = onnx.load(str(exported["multiframe"][1]))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 4, 4, "height", "width"]
    dims = onnx.load(str(exported["single"][1])).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 4, "height", "width"]


@pytest.mark.parametrize("arch", ["single", "multiframe"])
def test_metadata_is_written_and_parsed_by_the_contract(exported, arch):
    net, path = exported[arch]
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    contract = ModelContract.from_metadata(meta, str(path))
    assert contract.multi_frame == (arch == "multiframe")
    assert contract.revisits == (4 if arch == "multiframe" else 1)
    assert contract.scale == 2
    assert contract.input_bands == tuple(BANDS) == contract.output_bands
    assert contract.mean == tuple(MEAN) and contract.std == tuple(STD)
    assert contract.receptive_field == net.receptive_field
    assert contract.metrics["held_out"]["model"]["psnr"] == 1.0


def test_untrained_networks_are_bilinear_upsampling_in_reflectance():
    """The last layer starts at zero: output = bilinear of the de-normalised (reference) input."""
    refl = torch.rand(1, 4, 12, 12) * 0.3
    norm = (refl - torch.tensor(MEAN).view(1, 4, 1, 1)) / torch.tensor(STD).view(1, 4, 1, 1)
    want = torch.nn.functional.interpolate(refl, scale_factor=2, mode="bilinear", align_corners=False)
    single = SingleImageSR(MEAN, STD).eval()
    multi = MultiFrameSR(MEAN, STD).eval()
    stack = torch.cat([norm.unsqueeze(1), torch.randn(1, 3, 4, 12, 12)], dim=1)
    with torch.no_grad():
        assert torch.allclose(single(norm), want, atol=1e-6)
        assert torch.allclose(multi(stack), want, atol=1e-6)


def _changed_distance(net, x, index):
    """Largest distance (in input pixels) from the perturbed pixel to an output pixel that changed,
    where output pixel Y lies in input pixel Y // scale; also the changed mask."""
    with torch.no_grad():
        base = net(x)
        y = x.clone()
        y[index] += 1.0
        moved = (net(y) - base).abs().amax(dim=(0, 1)) > 1e-12
    rows, cols = torch.nonzero(moved, as_tuple=True)
    p, q = index[-2], index[-1]
    return int(max((rows // 2 - p).abs().max(), (cols // 2 - q).abs().max()))


@pytest.mark.parametrize("arch,index", [
    ("single", (0, 1, 20, 20)),
    ("multiframe", (0, 0, 2, 20, 20)),  # the reference: it is paired with every revisit
    ("multiframe", (0, 3, 0, 20, 20)),  # a non-reference revisit
])
def test_declared_receptive_field_is_exact(arch, index):
    net = _randomised(build(arch, MEAN, STD), seed=3).double()
    shape = (1, 4, 4, 41, 41) if arch == "multiframe" else (1, 4, 41, 41)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    # Changes reach exactly receptive_field input pixels: no further (the declaration is safe)
    # and that far (it is not padded).
    assert _changed_distance(net, x, index) == net.receptive_field


def test_receptive_field_and_size_figures():
    assert SingleImageSR(MEAN, STD, depth=4).receptive_field == 4
    assert SingleImageSR(MEAN, STD, depth=6).receptive_field == 6
    # 1 + 2*2 encoder convolutions, 2 per fusion level (log2 4 = 2 levels), 2 decoder convolutions.
    assert MultiFrameSR(MEAN, STD, revisits=4, encoder_blocks=2).receptive_field == 11
    assert MultiFrameSR(MEAN, STD, revisits=8, encoder_blocks=2).receptive_field == 13
    assert parameter_count(MultiFrameSR(MEAN, STD)) * 4 < 1_000_000  # float32 weights well under 1 MB
    with pytest.raises(ValueError):
        MultiFrameSR(MEAN, STD, revisits=3)


class _MeanOfRevisits(torch.nn.Module):
    """A stand-in multi-frame model whose revisit count can be anything."""

    def forward(self, stack):
        return torch.nn.functional.interpolate(stack.mean(dim=1), scale_factor=2, mode="nearest")


def test_export_onnx_dynamic_revisits_and_refusals(tmp_path):
    meta = _metadata(True, 1)
    meta["revisits"] = "dynamic"
    path = export_onnx(_MeanOfRevisits(), torch.zeros(1, 3, 4, 8, 8), tmp_path / "dyn.onnx", meta,
                       multi_frame=True, dynamic_revisits=True)
    contract = ModelContract.from_metadata({p.key: p.value for p in onnx.load(str(path)).metadata_props})
    assert contract.dynamic_revisits
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 5, 4, 6, 9)).astype(np.float32)
    got = session.run(None, {"revisits": x})[0]
    np.testing.assert_allclose(got, x.mean(axis=1).repeat(2, axis=2).repeat(2, axis=3), atol=1e-6)
    # A metadata type that contradicts the export, or a metadata error, writes nothing.
    with pytest.raises(ValueError):
        export_onnx(_MeanOfRevisits(), torch.zeros(1, 3, 4, 8, 8), tmp_path / "bad.onnx", meta, multi_frame=False)
    bad = dict(meta, input_scaling={"dn_scale": 1e-4, "mean": MEAN, "std": [1.0]})
    with pytest.raises(Exception, match="std"):
        export_onnx(_MeanOfRevisits(), torch.zeros(1, 3, 4, 8, 8), tmp_path / "bad.onnx", bad, multi_frame=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dyn.onnx"]
