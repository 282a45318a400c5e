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


def test_the_export_help_is_built_from_its_options(satplugin_provider):
    """Each option's description is written once, in ExportOptions, and shown under its parameter."""
    from html import escape

    from satplugin.qgis_satplugin.core.export import ExportOptions

    help_text = satplugin_provider.algorithm("exportpatches").shortHelpString()
    for name, text in ExportOptions.help_lines():
        assert escape(text[:1].upper() + text[1:], quote=False) in help_text, name  # a paragraph starts capitalised
    assert "<p><b>PATCH_SIZE</b>: The width and height of a patch, in image pixels.</p>" in help_text
    assert "<b>SPLIT_LAYER + SPLIT_FIELD</b>" in help_text and "&lt;name&gt;_SCL.tif" in help_text
    assert "<code>qgis_process run satplugin:exportpatches -- IMAGES=series LABELS=class.tif" in help_text
