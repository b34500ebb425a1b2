"""Conventions, input validation and basic properties of the metrics (small synthetic images, fast)."""
import numpy as np
import pytest
from skimage import metrics as sk_metrics

from mgdn_jax import metrics
from mgdn_jax.metrics import common
from mgdn_jax.metrics import mef
from mgdn_jax.metrics import mef_ssim
from mgdn_jax.metrics import mff


def _images(h=44, w=52, seed=0):
  rng = np.random.default_rng(seed)
  base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
  a = (base // 2).astype(np.uint8)
  b = np.minimum(base.astype(np.int32) * 3 // 2, 255).astype(np.uint8)
  return a, b, base


def test_matlab_round_is_half_away_from_zero():
  np.testing.assert_array_equal(metrics.matlab_round(np.array([0.5, 1.5, 2.5, -0.5, -2.5, 2.4999])),
                                [1, 2, 3, -1, -3, 2])


def test_rgb2gray_matlab_coefficients_and_rounding():
  px = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30], [255, 255, 255]]], np.uint8)
  # 0.298936021293775 * 255 = 76.2287 -> 76; 0.587043...*255 = 149.70 -> 150; 0.1140...*255 = 29.08 -> 29.
  np.testing.assert_array_equal(metrics.rgb2gray(px), [[76, 150, 29, 18, 255]])
  gray = np.zeros((4, 4), np.uint8)
  assert metrics.rgb2gray(gray) is gray


def test_quantize_uint8_matches_official_float32_rounding():
  x = np.array([-0.1, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 1.2], np.float32)
  expected = np.round(np.clip(x, 0, 1) * np.float32(255)).astype(np.uint8)
  np.testing.assert_array_equal(metrics.quantize_uint8(x), expected)
  with pytest.raises(TypeError, match='float image'):
    metrics.quantize_uint8(np.zeros(3, np.uint8))


def test_gaussian_window_is_fspecial():
  g = common.gaussian_1d(11, 1.5)
  x = np.arange(-5, 6)
  w2 = np.exp(-(x[:, None] ** 2 + x[None] ** 2) / (2 * 1.5 ** 2))
  np.testing.assert_allclose(np.outer(g, g), w2 / w2.sum(), rtol=1e-14, atol=1e-17)


def test_filter_valid_matches_direct_correlation():
  rng = np.random.default_rng(1)
  x = rng.random((12, 15))
  w = np.array([1., 2., 4.])
  direct = np.array([[np.sum(x[i:i + 3, j:j + 3] * np.outer(w, w)) for j in range(13)] for i in range(10)])
  np.testing.assert_allclose(common.filter_valid(x, w), direct, rtol=1e-13)
  np.testing.assert_array_equal(common.filter_valid(x, w, step=2), common.filter_valid(x, w)[::2, ::2])
  with pytest.raises(ValueError, match=r'smaller than the 3x3 window'):
    common.filter_valid(x[:2], w)


@pytest.mark.parametrize('task', list(metrics.METRIC_KEYS))
def test_evaluate_fusion_validation_errors(task):
  a, b, f = _images()
  with pytest.raises(TypeError, match=r'sources\[1\] must be uint8.*float32'):
    metrics.evaluate_fusion([a, b.astype(np.float32)], f, task)
  with pytest.raises(TypeError, match='fused must be uint8'):
    metrics.evaluate_fusion([a, b], f.astype(np.int32), task)
  with pytest.raises(ValueError, match=r'shape mismatch: sources\[0\] is \(44, 51, 3\)'):
    metrics.evaluate_fusion([a[:, :-1], b], f, task)
  with pytest.raises(ValueError, match='list of 2 images, got 3'):
    metrics.evaluate_fusion([a, b, a], f, task)
  with pytest.raises(TypeError, match='numpy uint8 array, got list'):
    metrics.evaluate_fusion([a.tolist(), b], f, task)


def test_evaluate_fusion_unknown_task_and_small_images():
  a, b, f = _images()
  with pytest.raises(ValueError, match="unknown task 'hdr'"):
    metrics.evaluate_fusion([a, b], f, 'hdr')
  with pytest.raises(ValueError, match='at least 41x41 pixels, got 40x52'):
    metrics.evaluate_fusion([a[:40], b[:40]], f[:40], 'mef')


def test_evaluate_fusion_keys_and_gray_mode():
  a, b, f = _images()
  for task in metrics.METRIC_KEYS:
    rgb = metrics.evaluate_fusion([a, b], f, task)
    gray = metrics.evaluate_fusion([a, b], f, task, gray=True)
    assert tuple(rgb) == metrics.METRIC_KEYS[task] == tuple(gray)
    direct = metrics.evaluate_fusion([metrics.rgb2gray(x) for x in (a, b)], metrics.rgb2gray(f), task)
    assert gray == direct
    assert all(np.isfinite(v) for v in rgb.values())
  # MEF-SSIM always works on gray: the gray and RGB modes agree.
  assert metrics.evaluate_fusion([a, b], f, 'mef')['MEF_SSIM'] == pytest.approx(
      metrics.evaluate_fusion([a, b], f, 'mef', gray=True)['MEF_SSIM'], abs=1e-12)


def test_rgb_is_per_channel_average():
  a, b, f = _images()
  rgb = metrics.evaluate_fusion([a, b], f, 'mff')
  per = [metrics.evaluate_fusion([a[..., c], b[..., c]], f[..., c], 'mff') for c in range(3)]
  for key in ('Qabf', 'EN', 'PSNR_mefb', 'SSIM'):
    assert rgb[key] == pytest.approx(np.mean([p[key] for p in per]), abs=1e-12)


def test_perfect_fusion_properties():
  a, _, _ = _images()
  g = metrics.rgb2gray(a).astype(np.float64)
  assert mff.ssim_vifb(g, g) == pytest.approx(1.0)
  assert mef.cross_entropy(g, g, g) == pytest.approx(0.0, abs=1e-12)
  assert mff.psnr_true(g, g, g) == float('inf')
  # MEF-SSIM of a sequence of identical frames against that frame is 1.
  assert mef_ssim.mef_ssim([g, g], g) == pytest.approx(1.0, abs=1e-9)
  # Qabf of identical images: every pixel keeps its edges, Q = Tg * Ta / (1 + e^{kg(1 - Dg)}) ... close to 1.
  assert mff.qabf(g, g, g) > 0.95


def test_psnr_mefb_formula():
  a = np.zeros((10, 10))
  f = np.full((10, 10), 2.0)
  # e = sqrt(100 * 4) / 100 = 0.2; PSNR = 20 log10(255 / sqrt(0.2)).
  assert mff.psnr_mefb(a, a, f) == pytest.approx(20 * np.log10(255 / np.sqrt(0.2)))
  assert mff.psnr_true(a, a, f) == pytest.approx(10 * np.log10(255 ** 2 / 4))


def test_qcb_normalisation():
  x = np.array([[10., 20.], [30., 40.]])
  np.testing.assert_array_equal(mef._qcb_normalise(x), [[0, 85], [170, 255]])
  np.testing.assert_array_equal(mef._qcb_normalise(np.full((2, 2), 7.0)), np.zeros((2, 2)))


def test_entropy_of_two_levels():
  f = np.zeros((8, 8))
  f[:, :4] = 200
  assert mff.entropy(f) == pytest.approx(1.0)


def test_mef_ssim_integer_pyramid_matches_float_average():
  rng = np.random.default_rng(2)
  x = rng.integers(0, 256, (7, 9)).astype(np.float64)
  padded = np.pad(x, ((0, 1), (0, 1)), mode='symmetric')
  avg = np.array([[padded[i:i + 2, j:j + 2].mean() for j in range(0, 9, 2)] for i in range(0, 7, 2)])
  np.testing.assert_array_equal(mef_ssim._downsample(x) / 4, avg)


def test_psnr_ssim_match_skimage():
  rng = np.random.default_rng(3)
  a = rng.random((2, 16, 20, 3)).astype(np.float32)
  b = np.clip(a + 0.05 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
  assert metrics.psnr(a[0], b[0]) == pytest.approx(sk_metrics.peak_signal_noise_ratio(b[0], a[0], data_range=1))
  want = np.mean([sk_metrics.structural_similarity(b[i], a[i], data_range=1, channel_axis=-1) for i in range(2)])
  assert metrics.ssim(a, b) == pytest.approx(want)
  with pytest.raises(ValueError, match='shape mismatch'):
    metrics.psnr(a[0], b[0, :-1])


def test_hdr_metrics_checks_and_mu_law():
  x = np.array([0.0, 1.0], np.float32)
  np.testing.assert_allclose(metrics.mu_tonemap(x), [0.0, 1.0], atol=1e-7)
  with pytest.raises(ValueError, match='one shape'):
    metrics.hdr_metrics(np.zeros((8, 8, 3), np.float32), np.zeros((8, 9, 3), np.float32))
  with pytest.raises(TypeError, match='float images'):
    metrics.hdr_metrics(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))


def test_gdsr_rmse_crop_and_clamp():
  gt = np.zeros((20, 20), np.float32)
  pred = np.zeros((20, 20), np.float32)
  pred[:6] = 5.0                      # only inside the cropped border
  assert metrics.gdsr_rmse_cm(pred, gt, 1.0, 3.0) == 0.0
  pred[10, 10] = 2.0                  # clamped to 1 -> 2 m error -> 200 cm on one of 64 pixels
  assert metrics.gdsr_rmse_cm(pred, gt, 1.0, 3.0) == pytest.approx(np.sqrt(200.0 ** 2 / 64), rel=1e-6)
  with pytest.raises(ValueError, match='shape mismatch'):
    metrics.gdsr_rmse_cm(pred, gt[:-1], 1.0, 3.0)
  with pytest.raises(ValueError, match='crop=10 leaves nothing'):
    metrics.gdsr_rmse_cm(pred, gt, 1.0, 3.0, crop=10)
