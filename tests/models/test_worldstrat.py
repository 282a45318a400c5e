"""WorldStrat checkpoints -> ONNX: structure, conversion, ONNX Runtime parity, metadata, errors.

The checkpoints are made here with the structure WorldStrat's Lightning training writes
(``state_dict`` under ``backbone.``, the shifters' buffers, pickled ``hyper_parameters``
holding classes that are not importable at load time, ``epoch``, ``callbacks``, ...),
with small hidden sizes so that everything runs in seconds on a CPU.
"""
import json
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from models import convert_worldstrat as cw  # noqa: E402
from models import worldstrat as ws  # noqa: E402
from qgis_satplugin.core.superres.contract import ModelContract  # noqa: E402

L2A = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def _randomise(net, seed):
    """Non-trivial weights everywhere (PReLU slopes included), shared modules stay shared."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim > 1:  # conv weights: unit-variance activations, so outputs stay O(1)
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / p[0].numel()) ** 0.5)
            elif p.numel() == 1:  # PReLU slope
                p.copy_(0.25 + 0.2 * torch.rand(1, generator=gen))
            else:  # biases
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    return net.eval()


def _unimportable_classes():
    """Modules standing in for WorldStrat's src.modules and Lightning's AttributeDict, removed after saving."""
    src = types.ModuleType("fake_worldstrat_src_modules")

    class HighResNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Conv2d(1, 1, 1)

    HighResNet.__module__ = src.__name__
    HighResNet.__qualname__ = "HighResNet"
    src.HighResNet = HighResNet
    pl = types.ModuleType("fake_pytorch_lightning_parsing")

    class AttributeDict(dict):
        pass

    AttributeDict.__module__ = pl.__name__
    AttributeDict.__qualname__ = "AttributeDict"
    pl.AttributeDict = AttributeDict
    return src, pl


def make_checkpoint(path, net, arch, *, hparams_update=None, extra_keys=None, prefix="backbone.", best=0.0123):
    """Save ``net`` as WorldStrat's Lightning training would: LitModel(backbone=net, **args)."""
    src, pl = _unimportable_classes()
    sys.modules[src.__name__], sys.modules[pl.__name__] = src, pl
    try:
        state = {prefix + k: v for k, v in net.state_dict().items()}
        # LitModel's Shift layers (src/losses.py) register a kernel buffer and a frozen conv.
        for shifter in ("shifter", "baseline_shifter"):
            state[f"{shifter}.shift_kernels"] = torch.rand(81, 1, 9, 9)
            state[f"{shifter}.conv2d_shift.weight"] = torch.rand(81, 1, 9, 9)
        state.update(extra_keys or {})
        hparams = pl.AttributeDict(
            backbone=src.HighResNet(), model=arch, hidden_channels=net.hidden_channels, residual_layers=net.residual_layers,
            kernel_size=net.kernel_size, zoom_factor=net.zoom_factor, sr_kernel_size=net.sr_kernel_size,
            revisits=net.revisits, input_size=[160, 160], output_size=[500, 500], chip_size=[50, 50],
            use_masks=False, use_reference_frame=False, lr_bands_to_use="all", radiometry_depth=12,
            w_mse=0.3, w_mae=0.4, w_ssim=0.3, w_tv=0.0, learning_rate=1e-4, dataset="JIF")
        hparams.update(hparams_update or {})
        ckpt = {
            "epoch": 14,
            "global_step": 50000,
            "pytorch-lightning_version": "1.9.0",
            "state_dict": state,
            "callbacks": {"ModelCheckpoint{'monitor': 'val/loss', 'mode': 'min'}": {
                "monitor": "val/loss", "best_model_score": torch.tensor(best), "best_model_path": "checkpoints/x.ckpt"}},
            "optimizer_states": [],
            "lr_schedulers": [],
            "hparams_name": "kwargs",
            "hyper_parameters": hparams,
        }
        torch.save(ckpt, str(path))
    finally:
        del sys.modules[src.__name__], sys.modules[pl.__name__]
    return path


def _metadata(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    return inp, session.run(None, {inp.name: x.numpy()})[0]


@pytest.fixture(scope="module")
def highresnet():
    return _randomise(ws.WorldStratHighResNet(in_channels=12, revisits=8, hidden_channels=8, residual_layers=1,
                                              kernel_size=3, zoom_factor=2, sr_kernel_size=1), seed=1)


def test_state_dict_keys_follow_worldstrat(highresnet):
    """Key names and shapes as WorldStrat's src/modules.py lays them out (prefix-free)."""
    sd = highresnet.state_dict()
    # encoder, mask encoder, SRCNN's (unused) fusion and residual blocks, 3 shared fusion levels, upsampler
    assert len(sd) == 6 + 6 + 6 + 6 + 3 * 9 + 6
    assert tuple(sd["encoder.doubleconv2d.0.weight"].shape) == (8, 12, 3, 3)
    assert tuple(sd["encoder.doubleconv2d.2.weight"].shape) == (1,)  # PReLU, one slope
    assert tuple(sd["doubleconv2d.doubleconv2d.0.weight"].shape) == (8, 8 * 8, 3, 3)  # hidden * revisits
    assert tuple(sd["residualblocks.0.residualblock.doubleconv2d.4.weight"].shape) == (8, 8, 3, 3)
    assert tuple(sd["mask_encoder.1.doubleconv2d.0.weight"].shape) == (1, 1, 3, 3)
    assert tuple(sd["fusion.fusion.2.fuse.0.residualblock.doubleconv2d.0.weight"].shape) == (16, 16, 3, 3)
    assert tuple(sd["fusion.fusion.0.fuse.1.weight"].shape) == (8, 16, 3, 3)
    assert tuple(sd["fusion.fusion.1.fuse.3.weight"].shape) == (1,)
    assert tuple(sd["sr.upsample.1.weight"].shape) == (2, 2, 1, 1)  # hidden / zoom^2
    assert tuple(sd["sr.upsample.4.weight"].shape) == (3, 2, 1, 1)
    assert torch.equal(sd["fusion.fusion.0.fuse.1.weight"], sd["fusion.fusion.2.fuse.1.weight"])
    srcnn = ws.WorldStratSRCNN(in_channels=12, revisits=4, hidden_channels=8, residual_layers=2).state_dict()
    assert "fusion.0.doubleconv2d.0.weight" in srcnn and "fusion.1.1.residualblock.doubleconv2d.4.bias" in srcnn
    assert not any(k.startswith("fusion.fusion.") for k in srcnn)


def test_highresnet_checkpoint_converts_and_matches(tmp_path, highresnet, capsys):
    ckpt = make_checkpoint(tmp_path / "highresnet.ckpt", highresnet, "highresnet")
    out = tmp_path / "highresnet.onnx"
    assert cw.main([str(ckpt), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "highresnet, 8 revisit(s), 12 bands, x2" in printed
    # the pickled backbone and AttributeDict classes were not importable: replaced, and said so
    assert "fake_worldstrat_src_modules.HighResNet" in printed and "AttributeDict" in printed

    x = torch.randn(2, 8, 12, 23, 29, generator=torch.Generator().manual_seed(5))  # not the 32 x 32 example
    inp, got = _run(out, x)
    assert inp.name == "revisits"
    assert inp.shape[0] == "batch" and inp.shape[1] == 8 and inp.shape[2] == 12
    assert isinstance(inp.shape[3], str) and isinstance(inp.shape[4], str)  # dynamic H, W
    with torch.no_grad():
        want = highresnet(x).numpy()
    assert got.shape == (2, 3, 46, 58)
    assert np.abs(got - want).max() < 1e-4
    assert np.abs(want).max() > 1e-3  # not a degenerate all-zero comparison

    meta = _metadata(out)
    contract = ModelContract.from_metadata(meta, "converted")
    assert contract.multi_frame and contract.revisits == 8 and contract.revisit_order == "clearest_first"
    assert contract.scale == 2
    assert list(contract.input_bands) == L2A
    assert contract.dn_scale == pytest.approx(1e-4) and contract.dn_offset == 0.0
    assert contract.mean == pytest.approx(ws.JIF_S2_MEAN) and contract.std == pytest.approx(ws.JIF_S2_STD)
    assert contract.mean[11] == pytest.approx(-0.0559) and contract.std[0] == pytest.approx(0.0892)
    assert list(contract.output_bands) == ["red", "green", "blue"]
    assert contract.output_units == ("SPOT 6/7 12-bit DN / 10000",) * 3
    assert contract.receptive_field == 2 + 3 * 3  # encoder + 3 fusion levels of 3 convs; 1x1 upsampler
    assert contract.metrics["val/loss"] == pytest.approx(0.0123)
    assert "shift" in contract.metrics["note"]
    assert contract.license.startswith("CC-BY-4.0")
    assert contract.training_data.startswith("WorldStrat (Cornebise")
    assert contract.version == "worldstrat-highresnet-epoch14-step50000"
    assert "clearest_first" in contract.description and "resize" in contract.description
    assert "sha256" in contract.description


def test_srcnn_multi_frame(tmp_path):
    net = _randomise(ws.WorldStratSRCNN(in_channels=12, revisits=4, hidden_channels=8, residual_layers=2,
                                        sr_kernel_size=3), seed=2)
    ckpt = make_checkpoint(tmp_path / "srcnn.ckpt", net, "srcnn", best=0.02)
    out = tmp_path / "srcnn.onnx"
    assert cw.main([str(ckpt), str(out), "--arch", "srcnn", "--version", "7"]) == 0
    x = torch.randn(1, 4, 12, 19, 17, generator=torch.Generator().manual_seed(6))
    inp, got = _run(out, x)
    with torch.no_grad():
        want = net(x).numpy()
    assert got.shape == (1, 3, 38, 34)
    assert np.abs(got - want).max() < 1e-4
    contract = ModelContract.from_metadata(_metadata(out), "converted")
    assert contract.multi_frame and contract.revisits == 4 and contract.scale == 2
    assert list(contract.input_bands) == L2A
    assert contract.version == "7" and contract.name == "WorldStrat SRCNN"
    # encoder 2 + fusion doubleconv 2 + 2 residual blocks x 2 convs, then two 3x3 convs after the x2 shuffle
    assert contract.receptive_field == 8 + 1
    assert contract.metrics["val/loss"] == pytest.approx(0.02)


def test_srcnn_single_image_true_colour(tmp_path):
    """One revisit exports as a single-image model; a 3-band (true colour) run keeps B04 B03 B02."""
    net = _randomise(ws.WorldStratSRCNN(in_channels=3, revisits=1, hidden_channels=8, residual_layers=1), seed=3)
    ckpt = make_checkpoint(tmp_path / "si.ckpt", net, "srcnn", hparams_update={"lr_bands_to_use": "true_color"})
    out = tmp_path / "si.onnx"
    assert cw.main([str(ckpt), str(out)]) == 0
    x = torch.randn(1, 3, 21, 26, generator=torch.Generator().manual_seed(7))
    inp, got = _run(out, x)
    assert inp.name == "image" and len(inp.shape) == 4
    with torch.no_grad():
        want = net(x[:, None]).numpy()
    assert np.abs(got - want).max() < 1e-4
    contract = ModelContract.from_metadata(_metadata(out), "converted")
    assert not contract.multi_frame and contract.revisits == 1
    assert list(contract.input_bands) == ["B04", "B03", "B02"]
    assert contract.mean == pytest.approx((0.0198, 0.0211, 0.0117))
    assert contract.std == pytest.approx((0.1169, 0.1001, 0.0976))


def test_highresnet_pads_revisits_to_a_power_of_two(tmp_path):
    net = _randomise(ws.WorldStratHighResNet(in_channels=12, revisits=3, hidden_channels=4, residual_layers=1), seed=4)
    assert net.fusion.levels == 2
    x = torch.randn(1, 3, 12, 9, 9)
    with torch.no_grad():
        enc = net.encode(x)  # WorldStrat pads the *encoded* revisits with black ones, at the end
        padded = torch.cat([enc, torch.zeros_like(enc[:, :1])], dim=1)
        direct = net.sr(net.fusion.fusion(padded)[:, 0])
        assert torch.allclose(net(x), direct, atol=1e-6)
    ckpt = make_checkpoint(tmp_path / "h3.ckpt", net, "highresnet")
    out = tmp_path / "h3.onnx"
    assert cw.main([str(ckpt), str(out)]) == 0
    _, got = _run(out, x)
    assert np.abs(got - direct.numpy()).max() < 1e-4
    assert ModelContract.from_metadata(_metadata(out), "converted").revisits == 3


def _error(capsys, *argv):
    assert cw.main([str(a) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err  # one sentence, one line
    return err


def test_wrong_files_give_one_clear_error(tmp_path, highresnet, capsys):
    out = tmp_path / "x.onnx"
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    assert "is not a PyTorch Lightning checkpoint (torch.load could not read it" in _error(capsys, text, out)
    assert "does not exist" in _error(capsys, tmp_path / "absent.ckpt", out)

    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(3)}, str(plain))
    assert "not a dict with a state_dict" in _error(capsys, plain, out)

    other = tmp_path / "resnet.ckpt"
    torch.save({"state_dict": torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)).state_dict()}, str(other))
    assert "not a WorldStrat HighRes-net or SRCNN checkpoint" in _error(capsys, other, out)

    extra = make_checkpoint(tmp_path / "extra.ckpt", highresnet, "highresnet",
                            extra_keys={"discriminator.conv.weight": torch.zeros(1)})
    assert "discriminator.conv.weight" in _error(capsys, extra, out)

    unknown = make_checkpoint(tmp_path / "unknown.ckpt", highresnet, "highresnet",
                              extra_keys={"backbone.attention.weight": torch.zeros(1)})
    err = _error(capsys, unknown, out)
    assert "do not fit WorldStrat's highresnet" in err and "unexpected attention.weight" in err

    hp = make_checkpoint(tmp_path / "hp.ckpt", highresnet, "highresnet", hparams_update={"hidden_channels": 128})
    assert "hidden_channels=128 but the weights' shapes give 8" in _error(capsys, hp, out)

    masks = make_checkpoint(tmp_path / "masks.ckpt", highresnet, "highresnet", hparams_update={"use_masks": True})
    assert "--use_masks" in _error(capsys, masks, out)

    good = make_checkpoint(tmp_path / "good.ckpt", highresnet, "highresnet")
    assert "holds a WorldStrat highresnet, not a srcnn" in _error(capsys, good, out, "--arch", "srcnn")
    assert not out.exists()


def test_benchmark_sized_highresnet():
    model = ws.worldstrat_sized_highresnet()
    net = model.net
    assert (net.hidden_channels, net.revisits, net.in_channels, net.zoom_factor) == (128, 8, 12, 2)
    assert 1.6e6 < ws.used_parameter_count(net) < 1.7e6  # "1.6 M used parameters"
    assert net.receptive_field() == 11
    with torch.no_grad():
        y = model(torch.zeros(1, 8, 12, 6, 7))
    assert tuple(y.shape) == (1, 3, 12, 14)
    # the module loads its own state_dict strictly (the same layout as a checkpoint's backbone)
    ws.WorldStratHighResNet(in_channels=12, revisits=8, hidden_channels=128).load_state_dict(net.state_dict())
    assert json.dumps(ws.input_scaling_for(ws.L2A_BANDS))
