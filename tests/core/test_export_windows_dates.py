"""Window offsets, dates from names and tags, the season window, even subsampling, block means."""
import numpy as np
import pytest

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.export.band_layout import band_layout, block_mean
from satplugin.qgis_satplugin.core.image_series.dates import (date_from_name, even_in_time, parse_month_day,
                                                        season_mask)
from satplugin.qgis_satplugin.core.export.windows import axis_starts, patch_grid, read_chunks
from satplugin.qgis_satplugin.core.sentinel2 import canonical_band_name

from .test_export_helpers import utc


def test_edge_window_is_shifted_inward_not_dropped():
    assert axis_starts(150, 64, 64).tolist() == [0, 64, 86]  # 86 + 64 = 150: ends exactly at the edge
    assert axis_starts(128, 64, 64).tolist() == [0, 64]  # exact fit: no extra window
    assert axis_starts(64, 64, 64).tolist() == [0]
    assert axis_starts(100, 32, 16).tolist() == [0, 16, 32, 48, 64, 68]


def test_offsets_are_exact_integers_on_a_huge_axis():
    starts = axis_starts(10980, 48, 48)
    assert starts.dtype.kind == "i"
    assert np.array_equal(starts[:-1], np.arange(0, 10980 - 48 + 1, 48))
    assert starts[-1] == 10980 - 48  # 10980 / 48 = 228.75: the last window is shifted in
    assert np.all(np.diff(starts) > 0)


def test_native_alignment_rounds_the_shifted_window_down():
    starts = axis_starts(100, 30, 30, align=6)
    assert starts.tolist() == [0, 30, 60, 66]
    assert all(s % 6 == 0 for s in starts)


def test_patch_larger_than_the_raster_is_refused():
    with pytest.raises(SatPluginError, match="larger than the images"):
        patch_grid(50, 80, 64, 64)


def test_read_chunks_cover_every_patch_once_and_respect_the_budget():
    pg = patch_grid(300, 500, 32, 16)
    rows, cols = pg.rows, pg.cols
    per_patch = 10 * 4 * 32 * 32 * 2
    chunks = read_chunks(rows, cols, 32, per_patch, block_rows=64, budget=40 * per_patch)
    seen = np.concatenate([c.patches for c in chunks])
    assert np.array_equal(np.sort(seen), np.arange(len(pg)))
    for c in chunks:
        assert c.patches.size * per_patch <= 40 * per_patch
        assert (rows[c.patches] >= c.row0).all() and (rows[c.patches] + 32 <= c.row1).all()
        assert (cols[c.patches] >= c.col0).all() and (cols[c.patches] + 32 <= c.col1).all()
        assert c.row1 - c.row0 <= 64


@pytest.mark.parametrize(
    "name, expected",
    [
        ("20230612T101559_S2B_T32TQM.tif", utc(2023, 6, 12, 10, 15, 59)),
        ("scene_2023-06-12.tif", utc(2023, 6, 12)),
        ("S2A_MSIL2A_20230612_x.tif", utc(2023, 6, 12)),
        ("T32TQM_20231231.tif", utc(2023, 12, 31)),
        ("tile_123456789_20230230_20230301.tif", utc(2023, 3, 1)),  # 30 Feb is skipped
    ],
)
def test_dates_from_file_names(name, expected):
    assert date_from_name(name) == expected


def test_names_without_a_date():
    assert date_from_name("scene_0.tif") is None
    assert date_from_name("tile_123202306121.tif") is None  # digits glued on both sides


def test_season_across_new_year_keeps_november_to_february():
    dates = [utc(2022, 10, 31), utc(2022, 11, 1), utc(2022, 12, 31), utc(2023, 1, 1), utc(2023, 2, 28), utc(2023, 3, 1),
             utc(2023, 7, 1), utc(2024, 2, 29)]
    keep = season_mask(dates, "11-01", "02-28")
    assert keep.tolist() == [False, True, True, True, True, False, False, False]
    assert season_mask(dates, "11-01", "02-29").tolist()[-1] is True
    assert season_mask(dates, "03-01", "10-31").tolist() == [True, False, False, False, False, True, True, False]
    assert season_mask(dates).all()


def test_month_day_is_validated():
    with pytest.raises(SatPluginError, match="MM-DD"):
        parse_month_day("2023-11-01", "The season start")
    with pytest.raises(SatPluginError, match="not a day"):
        parse_month_day("02-30", "The season end")


def test_even_subsampling_in_time_is_deterministic():
    days = np.array([0, 1, 2, 3, 10, 20, 30], dtype=float)
    # Targets 0, 15, 30: 10 and 20 tie for 15 and the earlier wins.
    assert even_in_time(days, 3).tolist() == [0, 4, 6]
    assert even_in_time(days, 7).tolist() == list(range(7))
    assert even_in_time(days, 1).tolist() == [0]
    # Evenly spaced dates: an evenly spaced subset.
    assert even_in_time(np.arange(0, 100, 10.0), 4).tolist() == [0, 3, 6, 9]


def test_block_mean_skips_nodata_and_rounds():
    values = np.array([[[[1, 2, 0, 0], [3, 5, 0, 0]]]], dtype=np.uint16)  # [1, 1, 2, 4]
    out = block_mean(values, 2, nodata=0)
    assert out.tolist() == [[[[3, 0]]]]  # (1+2+3+5)/4 = 2.75 -> 3; an all-no-data block stays 0
    assert block_mean(values, 2, nodata=None).tolist() == [[[[3, 0]]]]


def test_native_layout_groups_bands_and_checks_sizes():
    layout = band_layout(["B02", "B05", "B01", "B08"], "native", 10.0, 60, 60)
    assert [(g.key, g.bands, g.factor, g.band_index) for g in layout.groups] == [
        ("images_10m", ("B02", "B08"), 1, (0, 3)),
        ("images_20m", ("B05",), 2, (1,)),
        ("images_60m", ("B01",), 6, (2,)),
    ]
    with pytest.raises(SatPluginError, match="multiple of 6"):
        band_layout(["B02", "B01"], "native", 10.0, 64, 64)
    with pytest.raises(SatPluginError, match="100 m pixels"):
        band_layout(["B02"], "native", 100.0, 60, 60)
    assert canonical_band_name("b8a") == "B8A" and canonical_band_name("B2") == "B02"
