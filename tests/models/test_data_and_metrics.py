"""Degradation, patch sampling and the evaluation metrics of models/ (numpy only, fast)."""
import sys

import numpy as np
import pytest

from tests.conftest import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from models import data, evaluate  # noqa: E402


def _scenes(count=4, size=40, seed=0):
    """Co-registered random 'dates': one smooth pattern, a different gain and noise per date."""
    rng = np.random.default_rng(seed)
    base = rng.random((4, size, size)).astype(np.float32)
    return [np.clip(base * (0.1 + 0.05 * i) + 0.01 * rng.random((4, size, size)), 0, 1).astype(np.float32)
            for i in range(count)]


def test_degrade_is_the_2x2_block_mean_of_an_even_crop():
    hr = np.arange(2 * 5 * 7, dtype=np.float32).reshape(2, 5, 7)
    lr = data.degrade(hr)
    assert lr.shape == (2, 2, 3)
    assert lr[0, 0, 0] == pytest.approx((0 + 1 + 7 + 8) / 4)
    assert lr[1, 1, 2] == pytest.approx(np.mean(hr[1, 2:4, 4:6]))


def test_degrade_with_blur_keeps_the_mean_and_smooths():
    rng = np.random.default_rng(1)
    hr = rng.random((1, 32, 32)).astype(np.float32)
    plain, blurred = data.degrade(hr), data.degrade(hr, blur_sigma=1.0)
    assert blurred.mean() == pytest.approx(plain.mean(), abs=5e-3)
    assert blurred.std() < 0.8 * plain.std()


def test_patch_sampler_keeps_lr_and_hr_consistent_through_flips_and_rotations():
    scenes = _scenes()
    sampler = data.PatchSampler(scenes, revisits=4, patch=8, seed=5, p_repeat=0.3, p_alone=0.2)
    lr, hr = sampler.sample(32)
    assert lr.shape == (32, 4, 4, 8, 8) and hr.shape == (32, 4, 16, 16)
    # The reference revisit is the degraded target, whatever the flip or rotation was.
    np.testing.assert_allclose(lr[:, 0], np.stack([data.degrade(h) for h in hr]), atol=1e-6)
    # Every slot holds the same window of one of the dates (the reference possibly repeated).
    all_lr = [data.degrade(s) for s in scenes]
    means = {round(float(x.mean()), 5) for x in all_lr}
    assert len(means) == 4
    repeats = sum(len({round(float(f.mean()), 6) for f in stack}) < 4 for stack in lr)
    assert 0 < repeats < 32  # some stacks are padded by repetition, not all


def test_patch_sampler_alone_fills_every_slot_with_the_reference():
    sampler = data.PatchSampler(_scenes(), revisits=4, patch=8, seed=0, p_alone=1.0)
    lr, _ = sampler.sample(4)
    for stack in lr:
        for frame in stack[1:]:
            np.testing.assert_array_equal(frame, stack[0])


def test_single_date_scenes_of_another_area_take_their_share_with_the_reference_in_every_slot():
    other = np.full((4, 60, 50), 0.7, np.float32) + np.linspace(0, 0.1, 50, dtype=np.float32)  # brighter than all
    sampler = data.PatchSampler(_scenes(), revisits=4, patch=8, seed=3, single_dates=[other], p_single_dates=0.4)
    lr, hr = sampler.sample(400)
    from_other = hr.mean(axis=(1, 2, 3)) > 0.6
    assert 0.33 < from_other.mean() < 0.47  # drawn with its share
    np.testing.assert_allclose(lr[:, 0], np.stack([data.degrade(h) for h in hr]), atol=1e-6)
    for stack in lr[from_other]:  # one date: the reference alone, in every slot
        for frame in stack[1:]:
            np.testing.assert_array_equal(frame, stack[0])
    # Without single dates the samples are what they always were (same seed, same stream).
    plain = data.PatchSampler(_scenes(), revisits=4, patch=8, seed=3).sample(8)
    again = data.PatchSampler(_scenes(), revisits=4, patch=8, seed=3, single_dates=[other]).sample(8)
    np.testing.assert_array_equal(plain[0], again[0])
    with pytest.raises(ValueError, match="needs single_dates"):
        data.PatchSampler(_scenes(), patch=8, p_single_dates=0.2)


def test_the_29rkh_rows_that_train_and_those_held_out_do_not_overlap(real_data):
    train, held_out = data.load_rkh("train", real_data), data.load_rkh("held_out", real_data)
    full = data.read_single_band_files(real_data / data.RKH_FOLDER)
    assert train.shape == (4, data.RKH_TRAIN_ROWS, 1098) and held_out.shape == (4, 274, 1098)
    np.testing.assert_array_equal(np.concatenate([train, held_out], axis=1), full)


def test_clearest_first_ranks_by_blue_brightness():
    dark, bright = np.full((4, 2, 2), 0.05, np.float32), np.full((4, 2, 2), 0.3, np.float32)
    assert data.clearest_first([7, 8, 9], [bright, dark, dark * 2]) == [8, 9, 7]


def test_psnr_of_a_known_error():
    target = np.full((2, 16, 16), 0.2)
    assert evaluate.psnr(target + 0.01, target) == pytest.approx(40.0)
    assert evaluate.psnr(target, target) == float("inf")


def _ssim_direct(x, y, row, col):
    """SSIM at one window position, written out from the definition."""
    k = data.gaussian_kernel(1.5, radius=5)
    w = np.outer(k, k)
    a, b = x[row:row + 11, col:col + 11], y[row:row + 11, col:col + 11]
    ma, mb = (w * a).sum(), (w * b).sum()
    va, vb = (w * a * a).sum() - ma ** 2, (w * b * b).sum() - mb ** 2
    cov = (w * a * b).sum() - ma * mb
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))


def test_ssim_matches_its_definition_and_bounds():
    rng = np.random.default_rng(3)
    x = rng.random((30, 25))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    assert evaluate.ssim(x, x) == pytest.approx(1.0)
    direct = np.mean([_ssim_direct(x, y, r, c) for r in range(20) for c in range(15)])
    assert evaluate.ssim(x, y) == pytest.approx(direct, rel=1e-9)
    assert evaluate.ssim(x, y) == pytest.approx(evaluate.ssim(y, x))
    assert evaluate.ssim(x, y) < 0.9


def test_scores_report_all_bands_and_their_mean():
    rng = np.random.default_rng(4)
    target = rng.random((4, 20, 20)) * 0.3
    pred = target + np.array([0.001, 0.002, 0.004, 0.008])[:, None, None]
    s = evaluate.scores(pred, target)
    assert s["psnr_bands"] == pytest.approx([60.0, 53.9794, 47.9588, 41.9382], abs=1e-3)
    assert s["psnr_band_mean"] == pytest.approx(np.mean(s["psnr_bands"]), abs=1e-3)
    assert s["psnr"] == pytest.approx(10 * np.log10(1 / np.mean(np.array([1, 4, 16, 64]) * 1e-6)), abs=1e-3)
    assert len(s["ssim_bands"]) == 4 and all(0.99 < v <= 1.0 for v in s["ssim_bands"])
