"""The distance raster's exact transform (distance_kernel) against a brute-force reference."""
import numpy as np
import pytest

from satplugin.qgis_satplugin.core.ground_truth.distance import DISTANCE_HALO, DistanceWindow, distance_to_edge
from satplugin.qgis_satplugin.core.ground_truth.distance_kernel import _row_envelope, _row_search, distance_metres


def edge_pixels(ids):
    """Parcel pixels with a 4-neighbour of another id, or on the border: the documented rule."""
    padded = np.pad(ids, 1, constant_values=np.iinfo(np.int32).min)
    centre = padded[1:-1, 1:-1]
    differs = ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre)
               | (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre))
    return (ids >= 0) & differs


def reference_metres(ids, pixel_size, cap):
    """For every parcel pixel, the smallest dx² + dy² to any edge pixel, capped, in metres (float32 as documented)."""
    edges = np.argwhere(edge_pixels(ids))
    out = np.zeros(ids.shape, np.float32)
    parcel = np.argwhere(ids >= 0)
    if len(parcel) == 0:
        return out
    if len(edges):
        d2 = ((parcel[:, None, :] - edges[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    else:
        d2 = np.full(len(parcel), cap * cap)
    d2 = np.minimum(d2, cap * cap).astype(np.float32)
    out[parcel[:, 0], parcel[:, 1]] = (np.sqrt(d2) + np.float32(0.5)) * np.float32(pixel_size)
    return out


def blocky_ids(rng, shape, block, values):
    """Parcels as blocks of ``block`` pixels with random ids in ``values`` (-1: background)."""
    coarse = rng.integers(*values, (shape[0] // block + 1, shape[1] // block + 1))
    return np.repeat(np.repeat(coarse, block, 0), block, 1)[: shape[0], : shape[1]].astype(np.int32)


@pytest.mark.parametrize("block, cap", [(1, 128), (3, 128), (9, 128), (40, 128), (40, 6), (200, 128)])
def test_distances_are_exact(block, cap):
    rng = np.random.default_rng(block * 1000 + cap)
    for shape in [(37, 53), (64, 91), (1, 30), (30, 1)]:
        ids = blocky_ids(rng, shape, block, (-1, 4))
        out = np.empty(ids.shape, np.float32)
        distance_metres(ids, cap, 10.0, out, 0)
        np.testing.assert_array_equal(out, reference_metres(ids, 10.0, cap), err_msg=f"{shape} block {block}")


def test_one_large_parcel_is_measured_by_the_envelope_and_stays_exact():
    """A parcel the size of the window: every row takes the linear-time path, with the same answer."""
    ids = np.zeros((70, 260), np.int32)
    ids[30:33, 100:140] = 1  # an inner parcel, so the distances are not just to the window's border
    out = np.empty(ids.shape, np.float32)
    distance_metres(ids, DISTANCE_HALO, 10.0, out, 0)
    np.testing.assert_array_equal(out, reference_metres(ids, 10.0, DISTANCE_HALO))
    assert out.max() > 25 * 10  # deep enough that the outward search would have been costly


def test_both_row_methods_agree_with_brute_force():
    rng = np.random.default_rng(3)
    for width in (1, 2, 5, 17, 200):
        for top in (1, 4, 30, 128):
            column = rng.integers(0, top + 1, width).astype(np.int32)
            x = np.arange(width)
            want = ((x[:, None] - x[None, :]) ** 2 + column[None, :].astype(np.int64) ** 2).min(axis=1)
            searched, enveloped = np.empty(width, np.int64), np.empty(width, np.int64)
            _row_search(column, np.zeros(width, np.int32), searched)
            _row_envelope(column, enveloped, *(np.empty(width, np.int64) for _ in range(3)))
            np.testing.assert_array_equal(searched, want)
            np.testing.assert_array_equal(enveloped, want)


def test_background_is_zero_and_an_all_background_window_works():
    ids = np.full((5, 7), -1, np.int32)
    assert not distance_to_edge(ids, 10.0).any()
    ids[1:4, 1:6] = 3
    got = distance_to_edge(ids, 10.0)
    assert got[2, 3] == pytest.approx(15.0) and got[1, 1] == pytest.approx(5.0) and got[0, 0] == 0


@pytest.mark.parametrize("strip_rows", [1, 7, 64, 300, 700])
def test_chunks_give_the_distances_of_the_whole_grid(strip_rows):
    """However the grid is cut into strips and chunks, each row sees DISTANCE_HALO rows around it."""
    rng = np.random.default_rng(11)
    ids = blocky_ids(rng, (700, 40), 30, (-1, 6))
    ids[200:560, 5:35] = 9  # deeper than the halo from the chunk borders
    whole = distance_to_edge(ids, 10.0)
    window = DistanceWindow(10.0, chunk_rows=100)
    got = np.full(ids.shape, np.nan, np.float32)
    for row0 in range(0, len(ids), strip_rows):
        for chunk_row0, values in window.push(row0, ids[row0 : row0 + strip_rows]):
            got[chunk_row0 : chunk_row0 + len(values)] = values
    for chunk_row0, values in window.finish():
        got[chunk_row0 : chunk_row0 + len(values)] = values
    np.testing.assert_array_equal(got, whole)


def test_strips_out_of_order_are_refused():
    window = DistanceWindow(10.0)
    window.push(0, np.zeros((4, 3), np.int32))
    with pytest.raises(ValueError, match="expected row 4, got 8"):
        window.push(8, np.zeros((4, 3), np.int32))
