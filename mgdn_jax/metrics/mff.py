"""Multi-focus fusion metrics of the paper's Table 2 (MEFB / VIFB conventions), one (H, W) plane at a time.

Every function takes float64 planes holding uint8 values (0..255); the per-channel averaging of RGB images is done
by `mgdn_jax.metrics.fusion`.
  * `qabf`: Xydeas & Petrovic edge-preservation (Electronics Letters 2000).
  * `entropy`: Shannon entropy of the fused image's 256-bin histogram (sources ignored).
  * `psnr_mefb`: the MEFB/VIFB "PSNR", which divides the *root* of the summed squared error by the pixel count
    instead of taking a mean squared error; that is why Lytro values land near 64 dB.
  * `psnr_true`: an ordinary PSNR against each source, averaged.
  * `ssim_vifb`: Wang et al. SSIM with an 11x11 Gaussian (sigma 1.5) window and 'valid' borders.
"""
import numpy as np
from scipy import ndimage

from mgdn_jax.metrics import common

# Sobel kernels as used with 2-D *convolution* (MATLAB conv2); flipping both would only negate both responses.
_SOBEL_Y = np.array([[1., 2., 1.], [0., 0., 0.], [-1., -2., -1.]])
_SOBEL_X = np.array([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]])
# Sigmoid constants of the edge-strength (g) and orientation (a) preservation functions.
_TG, _KG, _DG = 0.9994, -15.0, 0.5
_TA, _KA, _DA = 0.9879, -22.0, 0.8


def _sobel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Edge strength and orientation of one plane: g = |grad|, alpha = atan(s_y / s_x) (pi/2 where s_x == 0)."""
  # The toolkit applies im2double to an already-double image and multiplies by 255 once more, so its gradients
  # are 255x ours; that survives only in the g_X == g_F branch of `_preservation`, so we scale the same way.
  x = x * 255.0
  sy = ndimage.convolve(x, _SOBEL_Y, mode='constant')
  sx = ndimage.convolve(x, _SOBEL_X, mode='constant')
  g = np.sqrt(sx * sx + sy * sy)
  with np.errstate(divide='ignore', invalid='ignore'):
    alpha = np.where(sx == 0, np.pi / 2, np.arctan(sy / np.where(sx == 0, 1.0, sx)))
  return g, alpha


def _preservation(gx, ax, gf, af) -> np.ndarray:
  """Per-pixel edge information preserved from source X in F: Q_XF = Q_g * Q_alpha."""
  with np.errstate(divide='ignore', invalid='ignore'):
    # Toolkit quirk kept on purpose: where g_X == g_F the relative strength is g_F itself, not 1.
    rel_g = np.where(gx > gf, gf / gx, np.where(gx == gf, gf, gx / gf))
  rel_a = 1.0 - np.abs(ax - af) / (np.pi / 2)
  q_g = _TG / (1.0 + np.exp(_KG * (rel_g - _DG)))
  q_a = _TA / (1.0 + np.exp(_KA * (rel_a - _DA)))
  return q_g * q_a


def qabf(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
  """Xydeas-Petrovic Q^{AB/F}: edge preservation weighted by the source edge strengths (weights g^L, L = 1)."""
  ga, aa = _sobel(a)
  gb, ab = _sobel(b)
  gf, af = _sobel(f)
  qa = _preservation(ga, aa, gf, af)
  qb = _preservation(gb, ab, gf, af)
  return float(np.sum(qa * ga + qb * gb) / np.sum(ga + gb))


def histogram256(x: np.ndarray) -> np.ndarray:
  """Normalised 256-bin histogram of a plane of uint8 values (bin = floored pixel value)."""
  counts = np.bincount(np.floor(x).astype(np.int64).ravel(), minlength=256)[:256]
  return counts / x.size


def entropy(f: np.ndarray) -> float:
  """EN = -sum_k p_F(k) log2 p_F(k) over the non-empty bins of the fused image's histogram."""
  p = histogram256(f)
  p = p[p > 0]
  return float(-np.sum(p * np.log2(p)))


def psnr_mefb(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
  """The MEFB/VIFB "PSNR": 20 log10(255 / sqrt(M)), M = mean over sources of sqrt(SSE(X, F)) / (m n)."""
  def err(x):
    return np.sqrt(np.sum((x - f) ** 2)) / f.size
  m = 0.5 * (err(a) + err(b))
  return float(20.0 * np.log10(255.0 / np.sqrt(m))) if m > 0 else float('inf')


def psnr_true(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
  """Ordinary PSNR of F against each source (MSE over all pixels and channels, peak 255), averaged."""
  def one(x):
    mse = np.mean((np.asarray(x, np.float64) - np.asarray(f, np.float64)) ** 2)
    return 10.0 * np.log10(255.0 ** 2 / mse) if mse > 0 else float('inf')
  return float(0.5 * (one(a) + one(b)))


_SSIM_WIN = common.gaussian_1d(11, 1.5)
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def ssim_vifb(x: np.ndarray, f: np.ndarray) -> float:
  """Mean SSIM map of Wang et al. (2004): 11x11 Gaussian sigma 1.5, 'valid' borders, population variances."""
  mx = common.filter_valid(x, _SSIM_WIN)
  mf = common.filter_valid(f, _SSIM_WIN)
  sxx = common.filter_valid(x * x, _SSIM_WIN) - mx * mx
  sff = common.filter_valid(f * f, _SSIM_WIN) - mf * mf
  sxf = common.filter_valid(x * f, _SSIM_WIN) - mx * mf
  num = (2 * mx * mf + _C1) * (2 * sxf + _C2)
  den = (mx * mx + mf * mf + _C1) * (sxx + sff + _C2)
  return float(np.mean(num / den))


def ssim_vifb_sum(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
  """What VIFB's toolkit reports as "SSIM": SSIM(A, F) + SSIM(B, F), in [-2, 2]."""
  return ssim_vifb(a, f) + ssim_vifb(b, f)
