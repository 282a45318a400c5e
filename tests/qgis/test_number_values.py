"""A number outside its range, or a fraction for a whole number, is refused with what is allowed
(processing_algs/number_values.py), in processing.run and in a real qgis_process, before any work."""
import pytest
from qgis.core import QgsProcessingException

from tests.conftest import run_qgis_process


@pytest.mark.parametrize("algorithm, values, sentence", [
    ("satplugin:exportpatches", {"PATCH_SIZE": 16.5}, "PATCH_SIZE must be a whole number; got 16.5."),
    ("satplugin:exportpatches", {"STRIDE": -4}, "STRIDE must be at least 0; got -4."),
    ("satplugin:exportpatches", {"MIN_LABELLED": 2}, "MIN_LABELLED must be between 0 and 1; got 2."),
    ("satplugin:searchproducts", {"MAX_CLOUD": 150.5}, "MAX_CLOUD must be between 0 and 100; got 150.5."),
    ("satplugin:superresolve", {"TILE_SIZE": 7}, "TILE_SIZE must be at least 8; got 7."),
    ("satplugin:rasterizegroundtruth", {"PIXEL_SIZE": 0}, "PIXEL_SIZE must be at least 0.0001; got 0."),
    ("satplugin:downloadproducts", {"MAX_CONCURRENT": 17}, "MAX_CONCURRENT must be between 1 and 16; got 17."),
    ("satplugin:exportpatches", {"PATCH_SIZE": "nan"}, "PATCH_SIZE must be a finite number; got nan."),
])
def test_a_number_out_of_its_range_says_the_range(satplugin_provider, tmp_path, algorithm, values, sentence):
    import processing

    with pytest.raises(QgsProcessingException) as info:
        processing.run(algorithm, {**values, "OUTPUT_FOLDER": str(tmp_path / "out"), "OUTPUT": str(tmp_path / "o.tif")})
    assert sentence in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_values_in_range_and_expressions_pass_this_check(satplugin_provider):
    from qgis.core import QgsApplication, QgsProperty

    from satplugin.processing_algs.number_values import number_problem

    alg = QgsApplication.processingRegistry().algorithmById("satplugin:exportpatches")
    patch = alg.parameterDefinition("PATCH_SIZE")
    assert [number_problem(patch, v) for v in (16, "16", 16.0, "", None, QgsProperty.fromExpression("8 * 2"))] == [""] * 6
    assert number_problem(alg.parameterDefinition("SEED"), -12345) == ""  # no lower bound
    assert number_problem(patch, "1") == "PATCH_SIZE must be at least 2; got 1."
    assert number_problem(patch, 10**400).startswith("PATCH_SIZE must be a finite number; got 1000")
    assert number_problem(patch, "sixteen") == ""  # QGIS's own check names it


def test_qgis_process_says_the_range_too(tmp_path):
    proc, _ = run_qgis_process("run", "satplugin:exportpatches", "--", f"IMAGES={tmp_path}", "PATCH_SIZE=16.5",
                               f"OUTPUT_FOLDER={tmp_path / 'ds'}", expect_success=False)
    assert proc.returncode != 0
    assert "PATCH_SIZE must be a whole number; got 16.5." in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and not (tmp_path / "ds").exists()
