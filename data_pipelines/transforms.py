"""Per-example transforms of the input pipelines (numpy, HWC): crops, flips/rotations, task encodings.

Task encodings follow the official MGDN protocols (reference §10):
* MEF/MFF: uint8 / 255 (`image_io.to_float32`, the one integer → float conversion);
* HDR: each LDR frame L = uint16 / 65535 becomes [L, L^2.2 / 2^EV] (6 channels), the target is linear HDR;
* GDSR: min–max normalised depth, PIL bicubic down by the scale (mode 'F'), torch-style bicubic up,
  ImageNet-normalised RGB.
"""
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from mgdn_jax import image_io

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
ALL_MODES = tuple(range(8))
# Train_NYU only flips (horizontal, vertical, both); rotation is disabled there.
FLIP_MODES = (0, 2, 4, 6)


def augment(img: np.ndarray, mode: int) -> np.ndarray:
  """One of the 8 dihedral transforms of an (H, W, ...) array: rot90 by mode % 4, then a left-right flip if mode ≥ 4.

  Mode 2 is a 180° rotation, 4 a horizontal flip, 6 a vertical flip.
  """
  out = np.rot90(img, mode % 4, axes=(0, 1))
  if mode >= 4:
    out = out[:, ::-1]
  return np.ascontiguousarray(out)


def random_crop_and_augment(arrays: Mapping[str, np.ndarray], rng: np.random.Generator, patch: int,
                            modes: Sequence[int] = ALL_MODES) -> dict[str, np.ndarray]:
  """The same patch×patch crop (same location) and the same dihedral transform for every array.

  arrays: name → (H, W[, C]), all with the same H, W. Raises when the images are smaller than the patch.
  """
  shapes = {k: v.shape[:2] for k, v in arrays.items()}
  h, w = next(iter(shapes.values()))
  if any(s != (h, w) for s in shapes.values()):
    raise ValueError(f'arrays of one example differ in size: {shapes}')
  if h < patch or w < patch:
    raise ValueError(f'image {h}x{w} is smaller than patch_size {patch}')
  y = int(rng.integers(0, h - patch + 1))
  x = int(rng.integers(0, w - patch + 1))
  mode = int(modes[int(rng.integers(0, len(modes)))])
  return {k: augment(v[y:y + patch, x:x + patch], mode) for k, v in arrays.items()}


def hdr_stream(ldr: np.ndarray, ev: float, gamma: float = 2.2) -> np.ndarray:
  """(H, W, 3) uint16 LDR frame → (H, W, 6) float32 [L, L^gamma / 2^EV]."""
  lin = image_io.to_float32(ldr)
  hdr = lin**np.float32(gamma) / np.float32(2.0**ev)
  return np.concatenate([lin, hdr.astype(np.float32)], axis=-1)


def imagenet_normalize(rgb: np.ndarray) -> np.ndarray:
  """(H, W, 3) uint8 → (x/255 − mean) / std, float32."""
  return (image_io.to_float32(rgb) - IMAGENET_MEAN) / IMAGENET_STD


def minmax_normalize(depth: np.ndarray) -> tuple[np.ndarray, np.float32, np.float32]:
  """Per-map (d − min)/(max − min) in float32; a constant map becomes 0 (no division by zero)."""
  depth = depth.astype(np.float32)
  lo, hi = np.float32(depth.min()), np.float32(depth.max())
  span = hi - lo if hi > lo else np.float32(1.0)
  return (depth - lo) / span, lo, hi


def pil_bicubic_down(depth: np.ndarray, scale: int) -> np.ndarray:
  """PIL bicubic (a = −0.5, antialiased) resize of an (H, W) float map to (H // scale, W // scale), mode 'F'."""
  h, w = depth.shape
  img = Image.fromarray(np.ascontiguousarray(depth, dtype=np.float32), mode='F')
  return np.asarray(img.resize((w // scale, h // scale), Image.BICUBIC), dtype=np.float32)


def _cubic_taps(n_in: int, n_out: int, a: float = -0.75) -> tuple[np.ndarray, np.ndarray]:
  """Source indices and weights, each (n_out, 4), of torch's bicubic (align_corners=False, border-clamped taps)."""
  src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
  x0 = np.floor(src)
  t = src - x0

  def near(d):  # |d| ≤ 1
    return ((a + 2) * d - (a + 3)) * d * d + 1

  def far(d):  # 1 < |d| < 2
    return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

  weights = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1)
  idx = np.clip(x0.astype(np.int64)[:, None] + np.arange(-1, 3), 0, n_in - 1)
  return idx, weights


def bicubic_up(lr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """torch `interpolate(mode='bicubic', align_corners=False)` of an (h, w) map to `size` = (H, W); no value clamp.

  Four-tap gathers rather than dense matrices: tiny BLAS matmuls are slow on a busy host.
  """
  lr = lr.astype(np.float64)
  ix, wx = _cubic_taps(lr.shape[1], size[1])
  rows = np.einsum('hwk,wk->hw', lr[:, ix], wx)  # along x first, as torch does
  iy, wy = _cubic_taps(lr.shape[0], size[0])
  return np.einsum('hkw,hk->hw', rows[iy], wy).astype(np.float32)


def gdsr_example(rgb: np.ndarray, depth: np.ndarray, scale: int) -> dict[str, np.ndarray]:
  """Model inputs of one GDSR example (official protocol).

  rgb: (H, W, 3) uint8; depth: (H, W) float32. Returns stream_0 (H, W, 3) ImageNet-normalised RGB, stream_1
  (H, W, 1) bicubic-upsampled normalised LR depth, target (H, W, 1) normalised depth, depth_min, depth_max.
  """
  d_n, lo, hi = minmax_normalize(depth)
  up = bicubic_up(pil_bicubic_down(d_n, scale), d_n.shape)
  return {'stream_0': imagenet_normalize(rgb), 'stream_1': up[..., None], 'target': d_n[..., None],
          'depth_min': lo, 'depth_max': hi}
