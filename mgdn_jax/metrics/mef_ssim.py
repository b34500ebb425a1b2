"""MEF-SSIM (Ma, Zeng & Wang, IEEE TIP 2015), the "SSIM" column of the paper's MEF table, on gray images.

For every 11x11 patch the sources are decomposed into mean, signal strength c_k and structure; a desired structure
r is built from the sources (weighted by c_k^p, p set by how consistent the source structures are), rescaled to
the strongest c_k, and compared with the fused patch by the SSIM structure term.  Three scales, 2x2 box pyramid.

The toolkit loops over patches.  Here each patch quantity is written in closed form from window sums, so that the
whole map is a handful of separable filters:
  * box (uniform) sums give mu_k, c_k, the consistency ratio R and the norm of the unscaled structure r0;
  * r = sum_k a_k (x_k - mu_k) is linear in the sources, so its Gaussian-weighted mean, energy and covariance with
    F follow from Gaussian-filtered x_k, x_k x_l and x_k F.
Box sums are computed on integer-valued images (the pyramid levels are scaled by 4^level to stay integers), so flat
patches give exactly zero variance, as the toolkit's explicit centring does.
"""
import numpy as np

from mgdn_jax.metrics import common

_WIN = 11
_GAUSS = common.gaussian_1d(_WIN, 1.5)
_BOX = np.ones(_WIN)
_C = (0.03 * 255.0) ** 2
_EPS = np.finfo(np.float64).eps
_SCALE_WEIGHTS = np.array([0.0448, 0.2856, 0.3001])
_MAX_P = 10.0


def _downsample(x: np.ndarray) -> np.ndarray:
  """2x2 box *sum* with symmetric bottom/right padding, every second pixel (x4 the toolkit's average, so integers
  stay integers)."""
  h, w = x.shape
  x = np.pad(x, ((0, h % 2), (0, w % 2)), mode='symmetric')
  return x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]


def _single_scale(seq: list[np.ndarray], f: np.ndarray, unit: float) -> float:
  """Mean MEF-SSIM map at one scale.  `seq` and `f` hold integers equal to the true image times `unit`."""
  k_num = len(seq)
  n_pix = float(_WIN * _WIN)
  box = [common.filter_valid(x, _BOX) for x in seq]           # S(x_k), exact integers
  # Centred cross-products over the patch: P_kl = sum (x_k - mu_k)(x_l - mu_l) = S(x_k x_l) - S(x_k) S(x_l) / 121,
  # evaluated as (121 S(x_k x_l) - S(x_k) S(x_l)) / 121 so the integer part is exact.
  cross = {}
  for k in range(k_num):
    for l in range(k, k_num):
      sxy = common.filter_valid(seq[k] * seq[l], _BOX)
      cross[k, l] = (n_pix * sxy - box[k] * box[l]) / n_pix / (unit * unit)
  norms = [np.sqrt(np.maximum(cross[k, k], 0.0)) for k in range(k_num)]
  strength = [nk + 0.001 for nk in norms]                       # c_k = ||x_k - mu_k|| + 0.001
  # Structure consistency R = ||sum_k (x_k - mu_k)|| / sum_k ||x_k - mu_k||.
  sum_energy = sum(cross[k, k] for k in range(k_num)) + 2 * sum(
      cross[k, l] for k in range(k_num) for l in range(k + 1, k_num))
  r_ratio = (np.sqrt(np.maximum(sum_energy, 0.0)) + _EPS) / (sum(norms) + _EPS)
  r_ratio = np.where(r_ratio > 1, 1 - _EPS, np.where(r_ratio < 0, _EPS, r_ratio))
  p = np.minimum(np.tan(np.pi / 2 * r_ratio), _MAX_P)
  weights = [(ck / _WIN) ** p + _EPS for ck in strength]
  wsum = sum(weights)
  coef = [wk / wsum / ck for wk, ck in zip(weights, strength)]  # r0 = sum_k coef_k (x_k - mu_k)
  r0_energy = sum(coef[k] * coef[k] * cross[k, k] for k in range(k_num)) + 2 * sum(
      coef[k] * coef[l] * cross[k, l] for k in range(k_num) for l in range(k + 1, k_num))
  r0_norm = np.sqrt(np.maximum(r0_energy, 0.0))
  max_strength = np.max(np.stack(strength), axis=0)
  with np.errstate(divide='ignore', invalid='ignore'):
    rescale = np.where(r0_norm > 0, max_strength / r0_norm, 1.0)
  a = [ck * rescale for ck in coef]                              # r = sum_k a_k (x_k - mu_k)
  mus = [bk / n_pix / unit for bk in box]

  # Gaussian-weighted statistics of r and F over each patch (weights sum to 1).
  xs = [x / unit for x in seq]
  fu = f / unit
  gx = [common.filter_valid(x, _GAUSS) for x in xs]
  gf = common.filter_valid(fu, _GAUSS)
  gff = common.filter_valid(fu * fu, _GAUSS)
  # Centre on the patch means first: E_g[(x_k - mu_k)(x_l - mu_l)] = E_g[x_k x_l] - mu_l E_g[x_k] - mu_k E_g[x_l]
  # + mu_k mu_l.
  mean_r = sum(ak * (gk - mk) for ak, gk, mk in zip(a, gx, mus))
  energy_r = 0.0
  cov_rf = 0.0
  for k in range(k_num):
    gxf = common.filter_valid(xs[k] * fu, _GAUSS)
    cov_rf = cov_rf + a[k] * (gxf - mus[k] * gf)
    for l in range(k, k_num):
      gxy = common.filter_valid(xs[k] * xs[l], _GAUSS)
      centred = gxy - mus[l] * gx[k] - mus[k] * gx[l] + mus[k] * mus[l]
      energy_r = energy_r + (1 if k == l else 2) * a[k] * a[l] * centred
  var_r = energy_r - mean_r * mean_r
  var_f = gff - gf * gf
  cov = cov_rf - mean_r * gf
  q = (2 * cov + _C) / (var_r + var_f + _C)
  return float(np.mean(q))


def mef_ssim(sources: list[np.ndarray], fused: np.ndarray, levels: int = 3) -> float:
  """3-scale MEF-SSIM of (H, W) gray planes with uint8 values: prod_l Q_l^{w_l}, weights normalised to sum 1."""
  if levels > len(_SCALE_WEIGHTS):
    raise ValueError(f'mef_ssim supports at most {len(_SCALE_WEIGHTS)} levels, got {levels}')
  weights = _SCALE_WEIGHTS[:levels] / _SCALE_WEIGHTS[:levels].sum()
  seq = [np.asarray(x, np.float64) for x in sources]
  f = np.asarray(fused, np.float64)
  unit = 1.0
  score = 1.0
  for level in range(levels):
    q = _single_scale(seq, f, unit)
    score *= np.power(q, weights[level])  # NaN for a negative Q, where MATLAB would go complex
    if level < levels - 1:
      seq = [_downsample(x) for x in seq]
      f = _downsample(f)
      unit *= 4.0
  return float(score)
