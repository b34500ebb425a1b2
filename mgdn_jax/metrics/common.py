"""Shared helpers of the fusion metrics: input checks, MATLAB conventions and separable window filters.

The MEFB / VIFB toolkits are MATLAB code, so their numbers depend on a few MATLAB conventions that NumPy does not
share: rounding half away from zero, `rgb2gray`'s exact coefficients, `fspecial('gaussian')` windows and `filter2`
'valid' / 'same' borders. They live here so that every metric file uses the same definitions.
"""
from typing import Sequence

import numpy as np
from scipy import ndimage

# MATLAB rgb2gray coefficients (the inverse of the NTSC YIQ matrix, first row), not the rounded 0.299/0.587/0.114.
RGB2GRAY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])


def matlab_round(x: np.ndarray) -> np.ndarray:
  """Rounds half away from zero like MATLAB's `round` (NumPy rounds half to even)."""
  x = np.asarray(x, dtype=np.float64)
  return np.sign(x) * np.floor(np.abs(x) + 0.5)


def rgb2gray(image: np.ndarray) -> np.ndarray:
  """MATLAB `rgb2gray` of a uint8 image: (H, W, 3) uint8 -> (H, W) uint8; (H, W) is returned unchanged."""
  check_uint8(image, 'image')
  if image.ndim == 2:
    return image
  if image.shape[-1] != 3:
    raise ValueError(f'rgb2gray needs (H, W, 3) or (H, W), got shape {image.shape}')
  y = image.astype(np.float64) @ RGB2GRAY
  return np.clip(matlab_round(y), 0, 255).astype(np.uint8)


def quantize_uint8(x: np.ndarray) -> np.ndarray:
  """Float image in [0, 1] -> uint8 as the official inference scripts do: clamp, x255, round half to even.

  The arithmetic stays in the input's float precision (the official code multiplies a float32 array), so a
  float32 network output quantises to exactly the official uint8 image.
  """
  x = np.asarray(x)
  if not np.issubdtype(x.dtype, np.floating):
    raise TypeError(f'quantize_uint8 needs a float image in [0, 1], got dtype {x.dtype}')
  return np.round(np.clip(x, 0, 1) * x.dtype.type(255)).astype(np.uint8)


def check_uint8(image: np.ndarray, name: str) -> None:
  """Raises a one-line error unless `image` is a 2-D or 3-D uint8 numpy array."""
  if not isinstance(image, np.ndarray):
    raise TypeError(f'{name} must be a numpy uint8 array, got {type(image).__name__}')
  if image.dtype != np.uint8:
    raise TypeError(f'{name} must be uint8 (quantise with metrics.quantize_uint8 first), got dtype {image.dtype}')
  if image.ndim not in (2, 3) or min(image.shape[:2]) < 1:
    raise ValueError(f'{name} must be (H, W) or (H, W, C), got shape {image.shape}')


def check_fusion_inputs(sources: Sequence[np.ndarray], fused: np.ndarray) -> None:
  """Validates two uint8 sources and a uint8 fused image of one shape (one-line errors naming the bad value)."""
  if not isinstance(sources, (list, tuple)) or len(sources) != 2:
    n = len(sources) if isinstance(sources, (list, tuple)) else type(sources).__name__
    raise ValueError(f'sources must be a list of 2 images, got {n}')
  check_uint8(fused, 'fused')
  for k, src in enumerate(sources):
    check_uint8(src, f'sources[{k}]')
    if src.shape != fused.shape:
      raise ValueError(f'shape mismatch: sources[{k}] is {src.shape} but fused is {fused.shape}')


def channels(image: np.ndarray) -> list[np.ndarray]:
  """Splits (H, W) or (H, W, C) into a list of (H, W) float64 planes (the MEFB per-channel convention)."""
  image = np.asarray(image, dtype=np.float64)
  if image.ndim == 2:
    return [image]
  return [image[..., c] for c in range(image.shape[-1])]


def gaussian_1d(size: int, sigma: float) -> np.ndarray:
  """1-D factor of `fspecial('gaussian', size, sigma)`: its outer product with itself is the normalised 2-D window."""
  x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  g = np.exp(-(x * x) / (2.0 * sigma * sigma))
  return g / g.sum()


def filter_same(x: np.ndarray, w1d: np.ndarray) -> np.ndarray:
  """Separable 2-D correlation with an odd 1-D window, zero padding, 'same' size (MATLAB filter2 'same')."""
  y = ndimage.correlate1d(x, w1d, axis=0, mode='constant')
  return ndimage.correlate1d(y, w1d, axis=1, mode='constant')


def filter_valid(x: np.ndarray, w1d: np.ndarray, step: int = 1) -> np.ndarray:
  """Separable 2-D correlation with an odd 1-D window, 'valid' output (H-N+1, W-N+1) (MATLAB filter2 'valid').

  A strided view and a matrix product per axis: faster than a padded 'same' filter followed by a crop.
  `step` > 1 keeps every step-th output row and column (computing only those), i.e. `filter_valid(x, w)[::s, ::s]`.
  """
  n = len(w1d)
  if x.shape[0] < n or x.shape[1] < n:
    raise ValueError(f'image of shape {x.shape} is smaller than the {n}x{n} window')
  y = np.lib.stride_tricks.sliding_window_view(x, n, axis=0)[::step] @ w1d
  return np.lib.stride_tricks.sliding_window_view(y, n, axis=1)[:, ::step] @ w1d
