"""Window partition, relative position index and shifted-window mask (Swin / HDR-Transformer, NHWC).

Index and mask tables are numpy arrays computed from static shapes, so they become constants under jit.
"""
import functools

import jax
import numpy as np


def window_partition(x: jax.Array, ws: int) -> jax.Array:
  """(N, H, W, C) → (N, nW, ws², C), windows ordered (window row, window column), tokens row-major."""
  n, h, w, c = x.shape
  x = x.reshape(n, h // ws, ws, w // ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, (h // ws) * (w // ws), ws * ws, c)


def window_reverse(windows: jax.Array, ws: int, h: int, w: int) -> jax.Array:
  """Inverse of `window_partition`: (N, nW, ws², C) → (N, H, W, C)."""
  n, _, _, c = windows.shape
  x = windows.reshape(n, h // ws, w // ws, ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, h, w, c)


@functools.lru_cache(maxsize=None)
def relative_position_index(ws: int) -> np.ndarray:
  """(ws², ws²) int32 index into the ((2ws−1)², heads) bias table for query p and key q."""
  coords = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij")).reshape(2, -1)
  rel = coords[:, :, None] - coords[:, None, :] + (ws - 1)
  return (rel[0] * (2 * ws - 1) + rel[1]).astype(np.int32)


@functools.lru_cache(maxsize=None)
def shift_attention_mask(h: int, w: int, ws: int, shift: int) -> np.ndarray:
  """(nW, ws², ws²) float32 mask: 0 within the same region of the rolled grid, −100 across regions."""
  labels = np.zeros((h, w), np.float32)
  bounds = lambda size: (slice(0, size - ws), slice(size - ws, size - shift), slice(size - shift, size))
  region = 0
  for rows in bounds(h):
    for cols in bounds(w):
      labels[rows, cols] = region
      region += 1
  lw = labels.reshape(h // ws, ws, w // ws, ws).transpose(0, 2, 1, 3).reshape(-1, ws * ws)
  diff = lw[:, None, :] - lw[:, :, None]
  return np.where(diff != 0, -100.0, 0.0).astype(np.float32)
