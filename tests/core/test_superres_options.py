"""Super-resolution's job spec: JSON round trip, one-sentence errors, help, the result as JSON."""
import json
import re

import numpy as np
import pytest

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.superres import DEFAULT_MODEL, SuperResolveOptions, load_model, run

from ..superres_fixtures import dated_series, make_model


def full_options(tmp_path, inputs):
    return SuperResolveOptions(inputs=inputs, output=tmp_path / "sr.tif", model=tmp_path / "box.onnx", provider="cpu",
                               tile_size=16, overlap=4, batch_size=3, max_cloud=80)


def test_options_round_trip_through_json_exactly(tmp_path):
    paths = [tmp_path / "S2_20230501.tif", tmp_path / "S2_20230511.tif"]
    for inputs in (paths, str(tmp_path / "series")):
        options = full_options(tmp_path, inputs)
        text = options.to_json()
        assert json.loads(text)["options"] == "SuperResolveOptions"
        back = SuperResolveOptions.from_json(text)
        assert back == options
        assert back.inputs == (tuple(str(p) for p in paths) if isinstance(inputs, list) else inputs)
        assert isinstance(back.max_cloud, float) and back.model == str(tmp_path / "box.onnx")
    defaults = SuperResolveOptions(inputs="series", output="sr.tif")
    assert SuperResolveOptions.from_json(defaults.to_json()) == defaults
    assert (defaults.model, defaults.provider, defaults.tile_size, defaults.overlap, defaults.batch_size,
            defaults.max_cloud) == (None, "auto", 256, 32, 0, 50.0)


def test_a_run_with_round_tripped_options_gives_the_same_output(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    rng = np.random.default_rng(11)
    (tmp_path / "series").mkdir()
    paths = dated_series(tmp_path / "series", [rng.integers(1, 4000, (4, 30, 37)) for _ in range(2)])
    make_model(tmp_path / "box.onnx", combine="mean", box=True)
    options = full_options(tmp_path, paths)
    first = run(options)
    before = (tmp_path / "sr.tif").read_bytes()
    again = run(SuperResolveOptions.from_json(options.to_json()))
    assert (tmp_path / "sr.tif").read_bytes() == before
    one, two = first.to_dict(), again.to_dict()
    assert json.loads(json.dumps(one)) == one
    one.pop("seconds_inference"), two.pop("seconds_inference")
    assert one == two
    assert one["output"] == str(tmp_path / "sr.tif") and one["tiles"] == first.tiles > 1
    assert [r["datetime"] for r in one["revisits"]] == ["2023-05-01T10:30:00Z", "2023-05-11T10:30:00Z"]


@pytest.mark.parametrize("change, message", [
    ({"batch_size": -1}, "^BATCH_SIZE must be 0 \\(automatic\\) or more, got -1.$"),
    ({"max_cloud": 150}, "^MAX_CLOUD must lie between 0 and 100 %, got 150(\\.0)?\\.$"),
    ({"output": "sr.png"}, "^The output must be a GeoTIFF \\(.tif\\), got sr.png.$"),
    ({"tile_size": 4}, "^TILE_SIZE must be at least 8 pixels, got 4.$"),
    ({"tile_size": 32, "overlap": 16}, "^OVERLAP must be at least 0 and less than half of TILE_SIZE \\(32\\), got 16.$"),
    ({"overlap": -1}, "^OVERLAP must be at least 0 and less than half of TILE_SIZE \\(256\\), got -1.$"),
    # A JSON value of the wrong kind is refused when the JSON is read, naming the field.
    ({"tile_size": "big"}, ("^TILE_SIZE must be a whole number, got 'big'.$",
                            "^SuperResolveOptions.tile_size is a whole number, not the text 'big'.$")),
    ({"batch_size": 1.5}, ("^BATCH_SIZE must be a whole number, got 1.5.$",
                           "^SuperResolveOptions.batch_size is a whole number, not the number 1.5.$")),
    ({"provider": "vulkan"}, "^PROVIDER must be one of auto, cpu, cuda, tensorrt, directml, coreml, got 'vulkan'.$"),
])
def test_bad_values_are_one_sentence_each(change, message):
    made, read = message if isinstance(message, tuple) else (message, message)
    with pytest.raises(SatPluginError, match=made):
        SuperResolveOptions(**{"inputs": "series", "output": "sr.tif", **change})
    good = SuperResolveOptions(inputs="series", output="sr.tif").to_dict()
    with pytest.raises(SatPluginError, match=read):
        SuperResolveOptions.from_json(json.dumps({**good, **change}))


def test_every_option_is_described_and_the_json_holds_only_the_options():
    names = [name for name, _ in SuperResolveOptions.help_lines()]
    assert names == ["inputs", "output", "model", "provider", "tile_size", "overlap", "batch_size", "max_cloud",
                     "preserve_reflectance", "dask_scheduler"]
    assert all(text.strip() for _, text in SuperResolveOptions.help_lines())
    model_help = dict(SuperResolveOptions.help_lines())["model"]
    assert DEFAULT_MODEL.name in model_help and DEFAULT_MODEL.is_file()
    assert DEFAULT_MODEL.with_suffix(".md").is_file()
    # No credentials in this step: the JSON is the ten options and their name, nothing live.
    text = SuperResolveOptions(inputs="series", output="sr.tif").to_json()
    assert sorted(json.loads(text)) == sorted(names + ["options"])


def test_a_loaded_model_must_be_the_one_the_options_name(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    loaded = load_model(make_model(tmp_path / "box.onnx", box=True), "cpu")
    expected = f"The loaded model is {loaded.path} but the options name {DEFAULT_MODEL}; give the same model to both."
    with pytest.raises(SatPluginError, match=f"^{re.escape(expected)}$"):
        run(SuperResolveOptions(inputs="series", output=str(tmp_path / "sr.tif")), loaded_model=loaded)
    assert not (tmp_path / "sr.tif").exists()
