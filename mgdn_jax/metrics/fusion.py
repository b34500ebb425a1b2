"""`evaluate_fusion`: the paper's MEF (Table 1) and MFF (Table 2) metrics for one fused image.

MEFB conventions: uint8 inputs; an RGB image is scored per channel and the three values are averaged, except
MEF-SSIM, which always works on MATLAB `rgb2gray` images.  `gray=True` converts everything with `rgb2gray` first
(the paper does not say which mode its MFF numbers use, so both are offered).
"""
from typing import Callable, Sequence

import numpy as np

from mgdn_jax import tasks
from mgdn_jax.metrics import common
from mgdn_jax.metrics import mef
from mgdn_jax.metrics import mef_ssim as mef_ssim_lib
from mgdn_jax.metrics import mff

def per_channel(fn: Callable[..., float], *images: np.ndarray) -> float:
  """Applies a plane metric fn(a, b, f) to each channel and averages (the MEFB RGB wrapper)."""
  planes = [common.channels(im) for im in images]
  return float(np.mean([fn(*chans) for chans in zip(*planes)]))


def _to_gray(image: np.ndarray) -> np.ndarray:
  return common.rgb2gray(image) if image.ndim == 3 else image


def mef_ssim(sources: Sequence[np.ndarray], fused: np.ndarray) -> float:
  """MEF-SSIM of uint8 RGB (or gray) images, on MATLAB rgb2gray planes."""
  return mef_ssim_lib.mef_ssim([_to_gray(s) for s in sources], _to_gray(fused))


def ssim_sum(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
  """VIFB's SSIM(A, F) + SSIM(B, F), per channel and averaged (kept for comparison with the toolkit)."""
  return per_channel(mff.ssim_vifb_sum, a, b, f)


def evaluate_fusion(sources: Sequence[np.ndarray], fused: np.ndarray, task: str, gray: bool = False) -> dict:
  """The paper's metrics for one fused image.

  Args:
    sources: the two source images, each (H, W, 3) (or (H, W)) uint8; order A, B (MEF: under, over).
    fused: (H, W, 3) (or (H, W)) uint8 fused image; quantise network outputs with `quantize_uint8` first.
    task: 'mef' -> CE (lower is better), MEF_SSIM, Qcb, VIF; 'mff' -> Qabf, EN, PSNR_mefb (MEFB formula, ~64 dB
      on Lytro), PSNR (a real PSNR against each source, averaged), SSIM (1/2 (SSIM(A,F) + SSIM(B,F)), VIFB form).
    gray: convert all images with MATLAB rgb2gray before scoring (otherwise per-channel average).

  Returns:
    dict metric name -> float, keys `METRIC_KEYS[task]`.
  """
  if task not in MIN_SIZE:
    raise ValueError(f'unknown task {task!r}: evaluate_fusion supports {tuple(MIN_SIZE)}')
  common.check_fusion_inputs(sources, fused)
  if min(fused.shape[:2]) < MIN_SIZE[task]:
    raise ValueError(f'{task} metrics need images of at least {MIN_SIZE[task]}x{MIN_SIZE[task]} pixels, got '
                     f'{fused.shape[0]}x{fused.shape[1]}')
  a, b = sources
  if gray:
    a, b, fused = _to_gray(a), _to_gray(b), _to_gray(fused)
  return _SCORES[task][0](a, b, fused)


def mef_scores(a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> dict:
  """CE (lower is better), MEF_SSIM, Qcb, VIF of checked uint8 images (paper Table 1)."""
  return {
      'CE': per_channel(mef.cross_entropy, a, b, fused),
      'MEF_SSIM': mef_ssim([a, b], fused),
      'Qcb': per_channel(mef.qcb, a, b, fused),
      'VIF': per_channel(mef.vif_fusion, a, b, fused),
  }


def mff_scores(a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> dict:
  """Qabf, EN, PSNR_mefb, PSNR, SSIM of checked uint8 images (paper Table 2)."""
  return {
      'Qabf': per_channel(mff.qabf, a, b, fused),
      'EN': float(np.mean([mff.entropy(c) for c in common.channels(fused)])),
      'PSNR_mefb': per_channel(mff.psnr_mefb, a, b, fused),
      'PSNR': mff.psnr_true(a, b, fused),
      'SSIM': 0.5 * ssim_sum(a, b, fused),
  }


# Per task: its scores and the smallest image side they accept (MEF-SSIM's 11x11 window at its third (1/4) scale;
# SSIM's 11x11 window).
_SCORES = {'mef': (mef_scores, 41), 'mff': (mff_scores, 11)}
MIN_SIZE = {name: size for name, (_, size) in _SCORES.items()}
METRIC_KEYS = {name: tasks.get(name).metric_names for name in _SCORES}
# Direction of each metric for tables (True: higher is better).
HIGHER_IS_BETTER = {k: not tasks.lower_is_better(k) for keys in METRIC_KEYS.values() for k in keys}
