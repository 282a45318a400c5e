"""The shipped default models: size, contract, figures that beat bicubic, and the model card's figures."""
import re
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

onnx = pytest.importorskip("onnx")

from qgis_satplugin.core.superres.contract import ModelContract  # noqa: E402
from satplugin.qgis_satplugin.core.resources import resource_path

FOLDER = resource_path("superres")
DEFAULT = FOLDER / "s2_sr_x2_rgbn.onnx"
SINGLE = FOLDER / "s2_sr_x2_rgbn_single.onnx"
CARD = FOLDER / "s2_sr_x2_rgbn.md"
MODELS = [(DEFAULT, True), (SINGLE, False)]
IDS = ["multiframe", "single"]


def _contract(path):
    model = onnx.load(str(path))
    return model, ModelContract.from_metadata({p.key: p.value for p in model.metadata_props}, str(path))


def _card_rows(name: str, section: str = "held-out date") -> dict:
    """The table evaluate.py printed for ``name``, as pasted in the card: label -> (psnr, ssim)."""
    lines = CARD.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}, {section}:"))
    rows = {}
    for line in lines[start + 1:]:
        if line.startswith(f"{name}") or line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 3 and re.fullmatch(r"\d+\.\d\d", cells[1]):
            rows[cells[0]] = (float(cells[1]), float(cells[2]))
    return rows


@pytest.mark.parametrize("path,multi", MODELS, ids=IDS)
def test_shipped_model_is_small_and_carries_the_contract(path, multi):
    assert path.is_file(), f"{path} is not shipped"
    assert path.stat().st_size < 10 * 1024 * 1024
    model, contract = _contract(path)
    assert contract.multi_frame == multi
    assert contract.revisits == (4 if multi else 1)
    assert contract.revisit_order == "clearest_first"
    assert contract.scale == 2
    assert contract.input_bands == ("B02", "B03", "B04", "B08") == contract.output_bands
    assert contract.output_units == ("reflectance",) * 4
    assert contract.dn_scale == 1e-4 and contract.dn_offset == 0.0
    assert all(0 < m < 0.5 for m in contract.mean) and all(0 < s < 0.2 for s in contract.std)
    assert contract.license.startswith("GPL-2.0-or-later") and "Copernicus Sentinel" in contract.license
    assert "Scene 4" in contract.training_data and "held out" in contract.training_data
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims][-2:] == ["height", "width"]
    # The declared receptive field is the one of the architecture the metadata says was trained.
    pytest.importorskip("torch")
    from models.train import TrainConfig, make_network

    config = TrainConfig(**contract.metrics["training"]["config"])
    net = make_network(config, contract.mean, contract.std)
    assert contract.receptive_field == net.receptive_field
    weights = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert weights >= sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("path,multi", MODELS, ids=IDS)
def test_shipped_model_beats_bicubic_and_lanczos_on_the_held_out_scene(path, multi):
    figures = _contract(path)[1].metrics["held_out"]
    for baseline in ("bicubic", "lanczos"):
        assert figures["model"]["psnr"] > figures[baseline]["psnr"] + 0.1
        assert figures["model"]["ssim"] > figures[baseline]["ssim"]
    if multi:  # fed scene 4 alone, it still beats bicubic (what fusion adds is reported, not assumed)
        assert figures["model_no_auxiliary"]["psnr"] > figures["bicubic"]["psnr"]
        assert figures["auxiliary_scenes"] and 4 not in figures["auxiliary_scenes"]


@pytest.mark.parametrize("path,multi", MODELS, ids=IDS)
def test_card_shows_the_figures_in_the_metadata(path, multi):
    contract = _contract(path)[1]
    rows = _card_rows(contract.name)
    figures = contract.metrics["held_out"]
    by_key = {k: v for k, v in rows.items()}
    model_row = next(v for k, v in by_key.items() if k.startswith("model") and "repeated" not in k)
    assert model_row == (round(figures["model"]["psnr"], 2), round(figures["model"]["ssim"], 4))
    bicubic = next(v for k, v in by_key.items() if k.startswith("bicubic"))
    assert bicubic == (round(figures["bicubic"]["psnr"], 2), round(figures["bicubic"]["ssim"], 4))
    if multi:
        alone = next(v for k, v in by_key.items() if "repeated" in k)
        assert alone[0] == round(figures["model_no_auxiliary"]["psnr"], 2)


@pytest.mark.parametrize("path,multi", MODELS, ids=IDS)
def test_rerunning_the_evaluation_reproduces_the_card(real_data, path, multi):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2")
    from models import evaluate

    result = evaluate.evaluate_held_out(path, real_data)
    contract = _contract(path)[1]
    rows = _card_rows(contract.name)
    model_row = next(v for k, v in rows.items() if k.startswith("model") and "repeated" not in k)
    assert abs(result["model"]["psnr"] - model_row[0]) <= 0.01
    assert abs(result["model"]["psnr"] - contract.metrics["held_out"]["model"]["psnr"]) <= 0.01
    assert abs(result["model"]["ssim"] - contract.metrics["held_out"]["model"]["ssim"]) <= 1e-4
    assert result["model"]["psnr"] > result["bicubic"]["psnr"]
    if multi:
        alone = next(v for k, v in rows.items() if "repeated" in k)
        assert abs(result["model_no_auxiliary"]["psnr"] - alone[0]) <= 0.01

def test_card_states_size_parameters_and_receptive_field():
    pytest.importorskip("torch")
    from models.networks import parameter_count
    from models.train import TrainConfig, make_network

    text = CARD.read_text(encoding="utf-8")
    for path, _ in MODELS:
        contract = _contract(path)[1]
        net = make_network(TrainConfig(**contract.metrics["training"]["config"]), contract.mean, contract.std)
        row = next(line for line in text.splitlines() if line.startswith(f"| `{path.name}`"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert int(cells[2].replace(",", "")) == parameter_count(net)
        assert int(cells[3]) == contract.receptive_field
        assert abs(float(cells[4]) - path.stat().st_size / 1e6) < 0.01  # MB


def test_shipped_sharpening_model_carries_the_band_sharpening_contract():
    path = FOLDER / "s2_sharpen_20m.onnx"
    assert path.is_file() and path.stat().st_size < 10 * 1024 * 1024
    model, contract = _contract(path)
    assert contract.model_type == "band-sharpening" and contract.scale == 1 and not contract.multi_frame
    assert contract.input_bands == ("B02", "B03", "B04", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")
    assert contract.input_resolutions == (10,) * 4 + (20,) * 6
    assert contract.output_bands == ("B05", "B06", "B07", "B8A", "B11", "B12")
    assert contract.consistency_factors == (2,) * 6 and contract.receptive_field == 10
    assert "Scene 4" in contract.training_data and "held out" in contract.training_data
    assert "29RKH" in contract.training_data and "Copernicus Sentinel data 2020" in contract.license
    held_out = contract.metrics["held_out"]
    assert held_out["model"]["psnr_band_mean"] >= held_out["bicubic"]["psnr_band_mean"] + 3.0
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 10, "height", "width"]
    assert (FOLDER / "s2_sharpen_20m.md").is_file()
