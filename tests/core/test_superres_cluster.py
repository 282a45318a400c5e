"""Super-resolution on Dask distributed: bands of tile rows on workers, the same GeoTIFF as a single-process run.

The shipped default model (a real convolutional network, 11 px receptive field) on a
random 4-revisit series, in bands of one tile row, so every band redoes the tile row
above it: the output must be the same bytes with no cluster, local:1, local:2 and a real
scheduler with two workers (which run the model with one thread each).
"""
import hashlib

import numpy as np
import pytest
import rasterio
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.superres import SuperResolveOptions, band_task, run
from satplugin.qgis_satplugin.core.superres.runner import first_contributing_row
from satplugin.qgis_satplugin.core.superres.tiling import TileLayout, context_margin

from ..superres_fixtures import dated_series

pytest.importorskip("onnxruntime")
pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    rng = np.random.default_rng(11)
    folder = tmp_path_factory.mktemp("sr-series")
    return dated_series(folder, [rng.integers(200, 3000, (4, 150, 90)) for _ in range(4)])


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_output_is_the_same_bytes_with_no_cluster_local_1_local_2_and_a_real_cluster(
        series, tmp_path, monkeypatch, real_cluster):
    monkeypatch.setattr(band_task, "MIN_TILE_ROWS", 1)
    monkeypatch.setattr(band_task, "MAX_TILE_ROWS", 1)
    runs = {"none": None, "local:1": "local:1", "local:2": "local:2", "real": real_cluster.address}
    results, logs = {}, {}
    for name, scheduler in runs.items():
        lines = []
        results[name] = run(SuperResolveOptions(inputs=series, output=str(tmp_path / f"{name}.tif"), tile_size=64,
                                                overlap=24, dask_scheduler=scheduler), Feedback(log=lines.append))
        logs[name] = lines
    layout = TileLayout(150, 90, 64, 24, 2, context_margin(24, 11))
    assert layout.row_starts.size >= 4  # four bands or more, each but the first redoing the tile row above
    reference = _sha256(tmp_path / "none.tif")
    for name in runs:
        assert _sha256(tmp_path / f"{name}.tif") == reference, name
        assert results[name].provider == "CPU" and results[name].tiles == layout.count
    with rasterio.open(tmp_path / "real.tif") as ds:
        assert ds.shape == (300, 180) and ds.tags()["PROVIDER"] == "CPU"
        values = ds.read()
        assert np.isfinite(values).all() and values.std() > 0.01
    assert any(f"Running on the Dask cluster at {real_cluster.address}: 2 workers" in line for line in logs["real"])
    assert not list(tmp_path.glob(".*parts*"))  # the bands' part files are gone


def test_bands_give_each_worker_two_or_more_within_bounds():
    assert band_task.tile_rows_per_band(49, 2) == 8 and band_task.tile_rows_per_band(49, 4) == 7
    assert band_task.tile_rows_per_band(5, 2) == 2 and band_task.tile_rows_per_band(1, 1) == 2
    assert band_task.tile_rows_per_band(400, 1) == 8


def test_a_band_redoes_exactly_the_tile_rows_that_overlap_its_first_one():
    layout = TileLayout(150, 90, 64, 24, 2, context_margin(24, 11))
    starts = layout.row_starts.tolist()
    assert first_contributing_row(layout, 0) == 0
    for k in range(1, len(starts)):
        j0 = first_contributing_row(layout, k)
        assert starts[j0] + layout.tile_h > starts[k] and (j0 == 0 or starts[j0 - 1] + layout.tile_h <= starts[k])
        assert j0 == k - 1  # overlap 24 of 64: only the row above reaches into a band's first rows


def test_a_worker_whose_model_differs_is_refused(series, tmp_path):
    model = tmp_path / "model.onnx"
    from satplugin.qgis_satplugin.core.superres.options import DEFAULT_MODEL

    model.write_bytes(DEFAULT_MODEL.read_bytes())
    job = SuperResolveOptions(inputs=series, output=str(tmp_path / "x.tif"), model=str(model)).to_json()
    with pytest.raises(SatPluginError, match="is not the engine's \\(its sha256 differs\\)"):
        band_task.superresolve_band({"run": "a-run", "job": job, "model_sha256": "0" * 64, "tile_rows": [0, 1],
                                     "part": str(tmp_path / "part.bin")})
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob(".*part"))
