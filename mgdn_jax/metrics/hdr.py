"""HDR deghosting metrics (Kalantari test set) and the plain PSNR / SSIM used for supervised targets in training.

The official MGDN validation scores linear HDR images in [0, 1] with scikit-image, on (3, H, W) arrays:
  * PSNR-L: `peak_signal_noise_ratio(gt, pred, data_range=1)` over the whole array;
  * SSIM-L: `structural_similarity(gt, pred, data_range=1, channel_axis=0)` (7x7 uniform window, sample
    covariance, mean over channels; float32 input is computed in float32);
  * PSNR-mu / SSIM-mu: the same after the mu-law tonemap T(x) = log(1 + 5000 x) / log(5001), evaluated in float32
    as the official torch code does.
scikit-image computes exactly this, so it is called directly; (H, W, C) arrays use channel_axis=-1, which gives
the same numbers as the official (C, H, W) layout.
"""
import numpy as np
from skimage import metrics as sk_metrics

from mgdn_jax.tonemap import mu_law as mu_tonemap


def _as_batch(x: np.ndarray, name: str) -> np.ndarray:
  """(H, W), (H, W, C) or (N, H, W, C) -> (N, H, W, C) without changing the dtype."""
  x = np.asarray(x)
  if x.ndim == 2:
    x = x[..., None]
  if x.ndim == 3:
    x = x[None]
  if x.ndim != 4:
    raise ValueError(f'{name} must be (H, W), (H, W, C) or (N, H, W, C), got shape {x.shape}')
  return x


def _check_pair(a, b):
  a, b = _as_batch(a, 'a'), _as_batch(b, 'b')
  if a.shape != b.shape:
    raise ValueError(f'shape mismatch: {a.shape} vs {b.shape}')
  return a, b


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
  """PSNR of two images (H, W[, C]) or batches (N, H, W, C), per image then averaged over the batch."""
  a, b = _check_pair(a, b)
  return float(np.mean([sk_metrics.peak_signal_noise_ratio(y, x, data_range=data_range) for x, y in zip(a, b)]))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
  """scikit-image SSIM (7x7 uniform window, mean over channels) of (H, W[, C]) images or (N, H, W, C) batches."""
  a, b = _check_pair(a, b)
  if min(a.shape[1:3]) < 7:
    raise ValueError(f'ssim needs images of at least 7x7 pixels, got {a.shape[1:3]}')
  return float(np.mean([
      sk_metrics.structural_similarity(y, x, data_range=data_range, channel_axis=-1) for x, y in zip(a, b)]))


def hdr_metrics(pred: np.ndarray, gt: np.ndarray) -> dict:
  """PSNR-L, PSNR-mu, SSIM-L, SSIM-mu of a linear HDR prediction (H, W, 3) float in [0, 1] against its ground truth.

  Returns:
    dict with keys psnr_l, psnr_mu, ssim_l, ssim_mu (floats).
  """
  pred = np.asarray(pred)
  gt = np.asarray(gt)
  if pred.ndim != 3 or pred.shape != gt.shape:
    raise ValueError(f'hdr_metrics needs two (H, W, C) arrays of one shape, got {pred.shape} and {gt.shape}')
  if not (np.issubdtype(pred.dtype, np.floating) and np.issubdtype(gt.dtype, np.floating)):
    raise TypeError(f'hdr_metrics needs float images in [0, 1], got dtypes {pred.dtype} and {gt.dtype}')
  pred_mu, gt_mu = mu_tonemap(pred), mu_tonemap(gt)
  return {
      'psnr_l': float(sk_metrics.peak_signal_noise_ratio(gt, pred, data_range=1)),
      'psnr_mu': float(sk_metrics.peak_signal_noise_ratio(gt_mu, pred_mu, data_range=1)),
      'ssim_l': float(sk_metrics.structural_similarity(gt, pred, data_range=1, channel_axis=-1)),
      'ssim_mu': float(sk_metrics.structural_similarity(gt_mu, pred_mu, data_range=1, channel_axis=-1)),
  }
