"""The algorithms' help as QGIS shows it: whole paragraphs, no sentence cut by a line break."""
import pytest

ALGORITHMS = ["searchproducts", "downloadproducts", "rasterizegroundtruth", "exportpatches", "superresolve"]


@pytest.mark.parametrize("name", ALGORITHMS)
def test_help_has_no_line_break_inside_a_sentence(satplugin_provider, name):
    help_text = satplugin_provider.algorithm(name).shortHelpString()
    assert help_text.startswith("<p>") and help_text.count("<p>") >= 2
    # QGIS turns each newline into a paragraph break: there must be none.
    assert "\n" not in help_text
    assert "  " not in help_text


def test_a_wrapped_sentence_reads_whole(satplugin_provider):
    help_text = satplugin_provider.algorithm("rasterizegroundtruth").shortHelpString()
    assert "(ties: lowest parcel id, then lowest class)" in help_text
    assert "<code>qgis_process run satplugin:rasterizegroundtruth -- INPUT=fields.gpkg CLASS_FIELD=crop PIXEL_SIZE=10" in help_text
