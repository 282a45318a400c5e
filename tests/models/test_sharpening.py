"""The band-sharpening model's making: Wald data, the GDAL resampling the runtime inverts, the sampler,
the network (identity when untrained, ONNX parity, receptive field) and the training-time correction."""
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from tests.conftest import ROOT  # noqa: E402

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models import sharpen_data as sd  # noqa: E402
from models.networks import BandSharpener, consistent  # noqa: E402
from models.onnx_export import export_onnx  # noqa: E402
from qgis_satplugin.core.superres.reflectance import bilinear_inverse_kernel  # noqa: E402

MEAN = [0.05, 0.07, 0.06, 0.25, 0.1, 0.2, 0.25, 0.27, 0.2, 0.12]
STD = [0.02, 0.03, 0.04, 0.08, 0.03, 0.06, 0.07, 0.08, 0.06, 0.05]


def _native(h=20, w=26, seed=0):
    rng = np.random.default_rng(seed)
    return sd.Native("random", rng.uniform(0.02, 0.4, (4, 2 * h, 2 * w)).astype(np.float32),
                     rng.uniform(0.02, 0.4, (6, h, w)).astype(np.float32))


def test_a_wald_pair_degrades_every_band_by_two_and_targets_the_native_coarse_bands():
    native = _native()
    pair = sd.wald_pair(native)
    assert pair.inputs.shape == (10, 20, 26) and pair.target.shape == (6, 20, 26) and pair.coarse_low.shape == (6, 10, 13)
    np.testing.assert_allclose(pair.inputs[:4], sd.block_mean(native.fine, 2), atol=1e-7)
    assert np.array_equal(pair.target, native.coarse)
    np.testing.assert_allclose(pair.coarse_low, sd.block_mean(native.coarse, 2), atol=1e-7)
    assert np.array_equal(sd.block_mean(pair.coarse_blocks, 2), pair.coarse_low)


def test_the_runtime_inverse_recovers_what_gdal_bilinear_resampling_put_on_the_grid():
    # The training input's coarse bands (GDAL's bilinear) and the runtime's inverse must agree, or
    # PRESERVE_REFLECTANCE would hold the output to other values than training did.
    low = np.random.default_rng(1).uniform(0.02, 0.4, (2, 30, 30)).astype(np.float32)
    means = sd.block_mean(sd.onto_grid(low, 2), 2).astype(np.float64)
    kernel = bilinear_inverse_kernel(2)
    r = len(kernel) // 2
    rows = np.lib.stride_tricks.sliding_window_view(means, len(kernel), axis=1) @ kernel
    both = np.lib.stride_tricks.sliding_window_view(rows, len(kernel), axis=2) @ kernel
    np.testing.assert_allclose(both, low[:, r:-r, r:-r], rtol=0, atol=2e-6)
    assert np.abs(means - low).max() > 1e-2  # the block means alone are GDAL's blur of them
    np.testing.assert_allclose(kernel.sum(), 1.0, atol=1e-6)


def test_patches_start_on_whole_blocks_with_the_same_transform_on_every_array():
    pair = sd.wald_pair(_native(h=24, w=24))
    sampler = sd.SharpenSampler([pair], patch=16, seed=3)
    inputs, target, blocks = sampler.sample(12)
    assert inputs.shape == (12, 10, 16, 16) and target.shape == blocks.shape == (12, 6, 16, 16)
    for x, y, b in zip(inputs, target, blocks):
        assert np.array_equal(sd.block_mean(b, 2), b[:, ::2, ::2])  # whole 2 x 2 blocks
        # The target's 2 x 2 block means are the 40 m information, whatever the crop, flip and rotation.
        np.testing.assert_allclose(sd.block_mean(y, 2), b[:, ::2, ::2], atol=1e-6)


def test_an_untrained_sharpener_returns_its_coarse_input_and_exports_to_onnx(tmp_path):
    net = BandSharpener(MEAN, STD, outputs=range(4, 10), channels=8, blocks=1).eval()
    x = torch.randn((2, 10, 13, 17), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x)
    expected = x[:, 4:] * torch.tensor(STD[4:]).reshape(1, 6, 1, 1) + torch.tensor(MEAN[4:]).reshape(1, 6, 1, 1)
    assert torch.allclose(out, expected, atol=1e-6)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(2)) * 0.1)
    metadata = dict(model_type="band-sharpening", scale=1, input_bands=list(sd.INPUT_BANDS),
                    input_resolutions=list(sd.RESOLUTIONS),
                    input_scaling={"dn_scale": 1e-4, "dn_offset": 0.0, "mean": MEAN, "std": STD},
                    output_bands=list(sd.COARSE_BANDS), output_units="reflectance", training_data="random (test)",
                    metrics={}, license="GPL-2.0-or-later", version="0.0.1", receptive_field=str(net.receptive_field))
    path = export_onnx(net, torch.zeros((1, 10, 16, 16)), tmp_path / "s.onnx", metadata, multi_frame=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    with torch.no_grad():
        want = net(x).numpy()
    assert got.shape == (2, 6, 13, 17) and np.abs(got - want).max() < 1e-4
    # An output pixel depends on input pixels up to receptive_field away, not further.
    poke = torch.zeros((1, 10, 41, 41))
    poke[0, :, 20, 20] = 1.0
    with torch.no_grad():
        changed = (net(poke) - net(torch.zeros_like(poke))).abs().sum(dim=1)[0] > 0
    rows = torch.nonzero(changed.any(dim=1)).flatten()
    assert int(rows.max() - 20) == int(20 - rows.min()) == net.receptive_field == 4


def test_the_training_correction_keeps_the_block_means_of_its_base():
    gen = torch.Generator().manual_seed(5)
    output, base = torch.rand((2, 6, 8, 10), generator=gen), torch.rand((2, 6, 8, 10), generator=gen)
    fixed = consistent(output, base, 2)
    pool = torch.nn.functional.avg_pool2d
    assert torch.allclose(pool(fixed, 2), pool(base, 2), atol=1e-6)
    assert torch.allclose(fixed - pool(fixed, 2).repeat_interleave(2, 2).repeat_interleave(2, 3),
                          output - pool(output, 2).repeat_interleave(2, 2).repeat_interleave(2, 3), atol=1e-6)
