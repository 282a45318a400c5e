"""models/train.py: a tiny training run, determinism, export with full metadata, the CLI."""
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from tests.conftest import ROOT  # noqa: E402

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models import train as tr  # noqa: E402
from qgis_satplugin.core.superres.contract import ModelContract  # noqa: E402


def _scenes(count=4, size=32, seed=0):
    """Tiny generated 'dates' of one area: shared edges and blobs, per-date gain, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    pattern = ((xx // 5 + yy // 7) % 2).astype(np.float32) * 0.5 + 0.5 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    return [np.stack([np.clip(0.1 + 0.05 * pattern * (b + 1) * (0.8 + 0.1 * i)
                              + 0.005 * rng.standard_normal((size, size)), 0, 1) for b in range(4)]).astype(np.float32)
            for i in range(count)]


def _config(arch):
    return tr.TrainConfig(arch=arch, epochs=2, steps_per_epoch=3, batch=4, patch=8, channels=8, depth=3,
                          encoder_blocks=1, lr=3e-3, device="cpu", seed=11)


@pytest.mark.parametrize("arch", ["single", "multiframe"])
def test_tiny_training_run_is_deterministic_and_learns_a_residual(arch):
    scenes = _scenes()
    net, mean, std, history = tr.train(_config(arch), scenes, log=lambda _: None)
    again, _, _, history2 = tr.train(_config(arch), scenes, log=lambda _: None)
    assert [h["epoch"] for h in history] == [1, 2]
    assert all(np.isfinite(h["l1"]) and h["l1"] > 0 for h in history)
    assert [h["l1"] for h in history] == [h["l1"] for h in history2]
    for (name, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    last = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.weight.abs().sum() > 0  # moved away from the zero (bilinear) start
    flat = np.concatenate([s.reshape(4, -1) for s in scenes], axis=1)
    np.testing.assert_allclose(mean, flat.mean(axis=1), atol=1e-4)
    np.testing.assert_allclose(std, flat.std(axis=1), atol=1e-4)


def test_val_scene_is_left_out_of_the_fit():
    config = _config("single")
    config.train_scenes, config.val_scene = [0, 1, 2, 3], 3
    scenes = _scenes()
    _, mean, _, history = tr.train(config, scenes, log=lambda _: None)
    flat = np.concatenate([s.reshape(4, -1) for s in scenes[:3]], axis=1)
    np.testing.assert_allclose(mean, flat.mean(axis=1), atol=1e-4)  # statistics from scenes 0-2 only
    assert set(history[-1]["val"]) == {"psnr", "bicubic"} and history[-1]["val"]["psnr"] > 20


def test_export_writes_the_full_contract(tmp_path):
    config = _config("multiframe")
    net, mean, std, _ = tr.train(config, _scenes(), log=lambda _: None)
    metrics = {"held_out": {"model": {"psnr": 40.0, "ssim": 0.99}}}
    path = tr.export(net, config, mean, std, tmp_path / "m.onnx", metrics, seconds=1.0)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    contract = ModelContract.from_metadata(meta)
    assert contract.multi_frame and contract.revisits == 4 and contract.revisit_order == "clearest_first"
    assert contract.input_bands == ("B02", "B03", "B04", "B08") == contract.output_bands
    assert contract.dn_scale == 1e-4 and contract.dn_offset == 0.0
    assert contract.mean == tuple(mean) and contract.std == tuple(std)
    assert contract.receptive_field == net.receptive_field == 1 + 2 + 2 * 2 + 2
    assert contract.metrics == metrics
    assert contract.license.startswith("GPL-2.0-or-later") and "MIT" in contract.license
    assert "Copernicus Sentinel" in contract.license
    assert "2 epochs x 3 steps" in contract.training_data and "Scene 4" in contract.training_data
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"revisits": np.zeros((3, 4, 4, 10, 7), np.float32)})[0]
    assert out.shape == (3, 4, 20, 14)


def test_cli_trains_on_real_scenes_without_reading_the_held_out_one(real_data, tmp_path, monkeypatch):
    from models import data

    read = []
    original = data.read_bands
    monkeypatch.setattr(data, "read_bands", lambda path, *a, **k: read.append(path.name) or original(path, *a, **k))
    out = tmp_path / "single.onnx"
    assert tr.main(["--arch", "single", "--epochs", "1", "--steps-per-epoch", "2", "--batch", "2",
                    "--channels", "8", "--out", str(out), "--no-eval", "--data", str(real_data)]) == 0
    assert sorted(read) == [f"scene_{i}.tif" for i in range(4)]
    contract = ModelContract.from_metadata({p.key: p.value for p in onnx.load(str(out)).metadata_props})
    assert not contract.multi_frame and contract.receptive_field == 4
    assert contract.metrics["training"]["config"]["epochs"] == 1
    with pytest.raises(SystemExit):
        tr.main(["--val-scene", "4", "--out", str(out)])
