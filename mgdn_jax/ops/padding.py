"""Padding helpers (NHWC)."""
import jax
import jax.numpy as jnp


def pad_bottom_right(x: jax.Array, pad_h: int, pad_w: int, mode: str = "reflect") -> jax.Array:
  """Pads (N, H, W, C) by pad_h rows at the bottom and pad_w columns at the right."""
  if pad_h == 0 and pad_w == 0:
    return x
  return jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode=mode)


def pad_to_multiple(x: jax.Array, multiple: int, mode: str = "reflect") -> jax.Array:
  """Pads (N, H, W, C) at the bottom/right up to the next multiple (official `pad_to_window`, reflect mode).

  Reflect padding needs the pad to be smaller than the size, as in PyTorch.
  """
  _, h, w, _ = x.shape
  pad_h, pad_w = (-h) % multiple, (-w) % multiple
  if mode == "reflect" and (pad_h >= h or pad_w >= w):
    raise ValueError(f"input {h}×{w} is too small to reflect-pad to a multiple of {multiple}")
  return pad_bottom_right(x, pad_h, pad_w, mode)
