"""satplugin:superresolve through processing.run and the real qgis_process."""
import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsRasterLayer

from tests.conftest import run_qgis_process
from tests.superres_fixtures import dated_series, make_model

pytest.importorskip("onnx")


@pytest.fixture
def revisits(tmp_path):
    rng = np.random.default_rng(3)
    base = rng.integers(200, 3000, (4, 40, 52))
    scls = [np.full((40, 52), 4, dtype=np.uint8) for _ in range(3)]
    scls[0][:30] = 9  # 75 % cloud: skipped at MAX_CLOUD 50
    scls[2][:4] = 8  # 10 %: second in line
    stacks = [base, base + 100, base + 50]
    return dated_series(tmp_path, stacks, scls=scls), stacks


def run(params):
    import processing

    return processing.run("satplugin:superresolve", params)


def test_processing_run_writes_a_georeferenced_raster(satplugin_provider, tmp_path, revisits):
    paths, stacks = revisits
    model = make_model(tmp_path / "ref.onnx")  # revisit 0 (the clearest), nearest x2
    result = run({"INPUT": [str(p) for p in paths], "MODEL": str(model), "PROVIDER": 0, "TILE_SIZE": 24,
                  "OVERLAP": 8, "BATCH_SIZE": 2, "MAX_CLOUD": 50, "OUTPUT": str(tmp_path / "sr.tif")})
    assert result["PROVIDER_USED"] == "CPU" and result["REVISITS_USED"] == 2 and result["SCALE"] == 2
    assert result["IMAGES_USED"] == 2
    layer = QgsRasterLayer(result["OUTPUT"], "sr")
    assert layer.isValid() and layer.bandCount() == 4
    assert (layer.width(), layer.height()) == (104, 80)
    assert layer.crs().authid() == "EPSG:32633"
    assert layer.rasterUnitsPerPixelX() == 5.0
    with rasterio.open(result["OUTPUT"]) as ds:
        out = ds.read()
    # The clearest date (the second, 0 % cloud) is the reference, upsampled by nearest neighbour.
    expected = np.repeat(np.repeat(stacks[1], 2, axis=1), 2, axis=2) * 1e-4
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6)


def test_a_model_fed_one_date_repeated_says_one_image(satplugin_provider, tmp_path, revisits):
    """A model of 4 fixed revisits given 2 usable dates: 4 inputs fed, 2 images, and the panel says so."""
    from satplugin.qgis_satplugin.gui.step_superres import revisits_said

    paths, _ = revisits
    model = make_model(tmp_path / "four.onnx", fixed_revisits=4)
    result = run({"INPUT": [str(p) for p in paths], "MODEL": str(model), "TILE_SIZE": 24, "OVERLAP": 8,
                  "MAX_CLOUD": 50, "OUTPUT": str(tmp_path / "sr.tif")})
    assert (result["REVISITS_USED"], result["IMAGES_USED"]) == (4, 2)
    assert revisits_said(result) == "2 image(s), repeated to fill the model's 4 revisit inputs"
    assert revisits_said({"REVISITS_USED": 3, "IMAGES_USED": 3}) == "3 revisit(s)"


def test_bad_input_is_one_clear_message(satplugin_provider, tmp_path, revisits):
    paths, _ = revisits
    model = make_model(tmp_path / "m.onnx", drop_keys=("scale",))
    with pytest.raises(QgsProcessingException, match="lacks the super-resolution metadata scale"):
        run({"INPUT": [str(p) for p in paths], "MODEL": str(model), "OUTPUT": str(tmp_path / "sr.tif")})
    assert not (tmp_path / "sr.tif").exists()


def test_qgis_process_with_a_gpu_provider_requested(tmp_path, revisits):
    paths, stacks = revisits
    model = make_model(tmp_path / "mean.onnx", combine="mean", box=True)
    proc, answer = run_qgis_process(
        "--json", "run", "satplugin:superresolve", "--", *[f"INPUT={p}" for p in paths], f"MODEL={model}",
        "PROVIDER=2", "TILE_SIZE=16", "OVERLAP=4", "MAX_CLOUD=100", f"OUTPUT={tmp_path / 'sr.tif'}",
    )
    results = answer["results"]
    assert results["PROVIDER_USED"] == "CPU" and results["REVISITS_USED"] == 3
    assert "running on CPU instead" in proc.stdout + proc.stderr or "running on the CPU instead" in proc.stdout + proc.stderr
    with rasterio.open(results["OUTPUT"]) as ds:
        assert ds.tags()["PROVIDER"] == "CPU" and ds.res == (5.0, 5.0)
        out = ds.read()
    assert not np.isnan(out).any() and out.shape == (4, 80, 104)
    # The same as the core gives in this process, with the same parameters.
    from satplugin.qgis_satplugin.core.superres import SuperResolveOptions
    from satplugin.qgis_satplugin.core.superres import run as run_core

    run_core(SuperResolveOptions(inputs=paths, output=tmp_path / "core.tif", model=model, tile_size=16, overlap=4,
                                 max_cloud=100))
    with rasterio.open(tmp_path / "core.tif") as ds:
        np.testing.assert_array_equal(out, ds.read())
