"""Multi-exposure fusion metrics of the paper's Table 1 (MEFB conventions), one (H, W) plane at a time.

Every function takes float64 planes holding uint8 values (0..255); RGB averaging is done in `metrics.fusion` and
MEF-SSIM lives in `metrics.mef_ssim`.
  * `cross_entropy`: CE of each source's histogram against the fused one (lower is better).
  * `qcb`: Chen & Blum (2009) perceptual quality, built on a contrast sensitivity filter and local contrast.
  * `vif_fusion`: Han et al. (2013) fusion VIF -- not the Sheikh-Bovik image-quality VIF of sewar / piq.
"""
import numpy as np

from mgdn_jax.metrics import common
from mgdn_jax.metrics import mff


def _ce_one(x: np.ndarray, f: np.ndarray) -> float:
  """sum_k p_X log2(p_X / p_F) over the bins where both histograms are non-empty."""
  px, pf = mff.histogram256(x), mff.histogram256(f)
  both = (px > 0) & (pf > 0)
  return float(np.sum(px[both] * np.log2(px[both] / pf[both])))


def cross_entropy(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
  """CE = (CE(A, F) + CE(B, F)) / 2."""
  return 0.5 * (_ce_one(a, f) + _ce_one(b, f))


# Chen-Blum contrast sensitivity function S(r) = exp(-(r/f0)^2) - a exp(-(r/f1)^2) (Mannos-Sakrison-like band-pass).
_CSF_F0, _CSF_F1, _CSF_A = 15.3870, 1.3456, 0.7622
# Masked contrast C' = k |C|^p / (h |C|^q + Z).
_MASK_K, _MASK_H, _MASK_P, _MASK_Q, _MASK_Z = 1.0, 1.0, 3.0, 2.0, 1e-4


def _csf(height: int, width: int) -> np.ndarray:
  """The CSF sampled on the centred (fftshift-ed) frequency grid of an (height, width) image."""
  # Normalised frequencies f = (i - floor(n/2)) * 2/n, then scaled by n/30: the n cancels, leaving (i - n//2) / 15.
  u = (np.arange(width) - width // 2) * (2.0 / width) * (width / 30.0)
  v = (np.arange(height) - height // 2) * (2.0 / height) * (height / 30.0)
  r = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)
  return np.exp(-(r / _CSF_F0) ** 2) - _CSF_A * np.exp(-(r / _CSF_F1) ** 2)


def _qcb_normalise(x: np.ndarray) -> np.ndarray:
  """Min-max stretch of a plane to [0, 255], rounded half away from zero.

  A constant plane becomes all zeros (its minimum is subtracted and there is no range to stretch); the contrast
  of such a plane is then 0/0, so Q_CB is NaN, as in the toolkit.
  """
  x = x / 255.0
  lo, hi = x.min(), x.max()
  if hi == lo:
    return np.zeros_like(x)
  return common.matlab_round((x - lo) / (hi - lo) * 255.0)


def _unnormalised_gauss(sigma: float) -> np.ndarray:
  """1-D factor of the 31x31 Gaussian exp(-(x^2+y^2)/2s^2) / (2 pi s^2), deliberately not renormalised."""
  x = np.arange(-15, 16, dtype=np.float64)
  return np.exp(-(x * x) / (2 * sigma * sigma)) / np.sqrt(2 * np.pi * sigma * sigma)


_G1 = _unnormalised_gauss(2.0)
_G2 = _unnormalised_gauss(4.0)


def _complex_filter_same(z: np.ndarray, w1d: np.ndarray) -> np.ndarray:
  return common.filter_same(z.real, w1d) + 1j * common.filter_same(z.imag, w1d)


def _masked_contrast(filtered: np.ndarray) -> np.ndarray:
  """C' of a CSF-filtered (complex) image: local band-pass contrast through the masking nonlinearity."""
  c = _complex_filter_same(filtered, _G1) / _complex_filter_same(filtered, _G2) - 1.0
  mag = np.abs(c)
  return _MASK_K * mag ** _MASK_P / (_MASK_H * mag ** _MASK_Q + _MASK_Z)


def qcb(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
  """Chen-Blum Q_CB: saliency-weighted preservation of masked local contrast from each source in F."""
  s = _csf(*f.shape)

  def contrast(x):
    spec = np.fft.fftshift(np.fft.fft2(_qcb_normalise(x))) * s
    # The inverse FFT is kept complex: the toolkit never takes the real part.
    return _masked_contrast(np.fft.ifft2(np.fft.ifftshift(spec)))

  ca, cb, cf = contrast(a), contrast(b), contrast(f)
  q_af = np.minimum(ca, cf) / np.maximum(ca, cf)
  q_bf = np.minimum(cb, cf) / np.maximum(cb, cf)
  ca2, cb2 = ca * ca, cb * cb
  lam_a = ca2 / (ca2 + cb2)
  lam_b = cb2 / (ca2 + cb2)
  return float(np.mean(lam_a * q_af + lam_b * q_bf))


_VIF_SIGMA_N2 = 0.005 * 255.0 ** 2   # visual noise variance
_VIF_C = 1e-7
_VIF_SCALE_WEIGHTS = np.array([1.0, 0.0, 0.15, 1.0]) / 2.15
_EPS = 1e-10


def _local_stats(x: np.ndarray, win: np.ndarray):
  """Local mean and (population) variance of x under the window, 'valid' borders, the variance floored at 0."""
  mu = common.filter_valid(x, win)
  return mu, np.maximum(common.filter_valid(x * x, win) - mu * mu, 0.0)


def _vif_maps(x: np.ndarray, f: np.ndarray, win: np.ndarray, f_stats):
  """Per-pixel gain g, distorted information VID and reference information VIND of source x in f at one scale."""
  mf, sff = f_stats
  mx, sxx = _local_stats(x, win)
  sxf = common.filter_valid(x * f, win) - mx * mf
  g = sxf / (sxx + _EPS)
  sv2 = sff - g * sxf
  # The clamps, in the toolkit's order: flat source, flat fused image, negative gain, then a floor.
  flat_x = sxx < _EPS
  g = np.where(flat_x, 0.0, g)
  sv2 = np.where(flat_x, sff, sv2)
  sxx = np.where(flat_x, 0.0, sxx)
  flat_f = sff < _EPS
  g = np.where(flat_f, 0.0, g)
  sv2 = np.where(flat_f, 0.0, sv2)
  neg = g < 0
  sv2 = np.where(neg, sff, sv2)
  g = np.where(neg, 0.0, g)
  sv2 = np.maximum(sv2, _EPS)
  vid = np.log10(1.0 + g * g * sxx / (sv2 + _VIF_SIGMA_N2))
  vind = np.log10(1.0 + sxx / _VIF_SIGMA_N2)
  return g, vid, vind


def vif_fusion(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
  """Han et al. fusion VIF: 4 Gaussian scales; each pixel keeps the source whose gain g is smaller."""
  total = 0.0
  for s in range(1, 5):
    n = 2 ** (5 - s) + 1
    win = common.gaussian_1d(n, n / 5.0)
    if s > 1:
      # Low-pass ('valid') and keep every second pixel before the next scale.
      a, b, f = (common.filter_valid(im, win, step=2) for im in (a, b, f))
    if _VIF_SCALE_WEIGHTS[s - 1] == 0:
      continue  # F_s is always finite (its denominator is >= C > 0), so a zero weight drops it exactly.
    f_stats = _local_stats(f, win)
    ga, vid_a, vind_a = _vif_maps(a, f, win, f_stats)
    gb, vid_b, vind_b = _vif_maps(b, f, win, f_stats)
    use_a = ga < gb
    vid = np.where(use_a, vid_a, vid_b)
    vind = np.where(use_a, vind_a, vind_b)
    fs = np.sum(vid + _VIF_C) / np.sum(vind + _VIF_C)
    total += _VIF_SCALE_WEIGHTS[s - 1] * fs
  return float(total)
