"""`make demo` (scripts/demo.py) runs end to end through qgis_process and is repeatable."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def test_demo_report_figures_and_repeatability(tmp_path):
    outputs = []
    for run in ("first", "second"):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "demo.py"), "--output", str(tmp_path / run)],
            capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "pixels per class" in proc.stdout
        outputs.append(json.loads((tmp_path / run / "report.json").read_text()))
    first, second = outputs
    search = first["steps"]["search"]
    # Eight synthetic acquisitions; four dates spread over April-September, clear over the fields.
    assert search["products_selected"] == 4
    assert [row["date"] for row in search["chosen"]] == ["2023-04-12", "2023-05-22", "2023-07-06", "2023-08-20"]
    assert all(row["aoi_coverage"] == 100 and row["aoi_cloud"] <= 50 for row in search["chosen"])
    assert search["chosen"] == second["steps"]["search"]["chosen"]
    download = first["steps"]["download"]
    assert [d[:10] for d in download["dates"]] == [row["date"] for row in search["chosen"]]
    assert len(download["bands"]) == 12 and download["files"] == 8  # an image and an SCL mask per date
    # Labels on the imagery's grid at 10 m, and exactly x4 finer on the same origin at 2.5 m.
    ten, fine = first["steps"]["ground_truth_10m"]["grid"], first["steps"]["ground_truth_2.5m"]["grid"]
    assert (ten["width"], ten["height"]) == (download["grid"]["width"], download["grid"]["height"])
    assert ten["origin"] == fine["origin"] == download["grid"]["origin"]
    assert (fine["width"], fine["height"]) == (4 * ten["width"], 4 * ten["height"])
    export = first["steps"]["export"]
    assert export["samples"] == sum(export["samples_per_split"].values()) > 50
    assert export["samples_per_split"]["train"] > export["samples_per_split"]["val"] > 0
    assert export["samples_per_split"] == second["steps"]["export"]["samples_per_split"]
    sr = first["steps"]["superres"]
    assert (sr["width"], sr["height"]) == (2 * ten["width"], 2 * ten["height"]) and sr["pixel_size"] == 5.0
    assert sr["provider"] == "CPU" and sr["bands"] == ["B02", "B03", "B04", "B08"]
    # The four downloaded dates, clearest over the area first (each is at most 50 % cloudy).
    assert sorted(d[:10] for d in sr["revisits"]) == [row["date"] for row in search["chosen"]]
    step = first["steps"]["ground_truth_10m"]
    fine = first["steps"]["ground_truth_2.5m"]
    assert step["polygons_rasterized"] == fine["polygons_rasterized"] == 320  # year 2023 only
    assert step["geometries_repaired"] == 1  # the bow-tie
    assert step["grid"]["crs"] == "EPSG:32633" and step["grid"]["origin"][0] % 60 == 0
    assert step["labelled_pixels"] == sum(v for k, v in step["pixels_per_class"].items() if k != "background")
    # x4 labels: 16 times as many pixels of a sixteenth of the area, to within the edges.
    assert abs(fine["labelled_pixels"] / 16 - step["labelled_pixels"]) / step["labelled_pixels"] < 0.02
    assert step["conflict_pixels"]["overlaps"] > 0
    for name in first["steps"]:
        assert first["steps"][name]["checksums"] == second["steps"][name]["checksums"]
