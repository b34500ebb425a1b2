"""Straightforward formulations the tested ops and kernels must agree with, in value and (under autodiff) gradient.

Written from the definitions, independently of the library code; each works on numpy or jax arrays alike where
noted, so the same function is the float64 definition and the autodiff oracle.
"""
import jax
import jax.numpy as jnp
import numpy as np


def dynamic_filter(x, kernels, ks: int):
  """MGDN_REFERENCE §4.3 as a loop over taps (numpy or jax arrays): edge padding, tap ks·i + j ↔ offset (i, j).

  x (N, H, W, C), kernels (N, H, W, ks²) → (N, H, W, C).
  """
  xnp = jnp if isinstance(x, jax.Array) else np
  r = ks // 2
  xp = xnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
  _, h, w, _ = x.shape
  out = xnp.zeros_like(x)
  for i in range(ks):
    for j in range(ks):
      out = out + xp[:, i:i + h, j:j + w, :] * kernels[..., ks * i + j:ks * i + j + 1]
  return out


def conv2d(x, w, b, dilation: int = 1):
  """XLA's own 'same' convolution (N, H, W, I) * (k, k, I, O) + (O,), at the highest precision."""
  pad = dilation * (w.shape[0] - 1) // 2
  y = jax.lax.conv_general_dilated(x, w, (1, 1), ((pad, pad), (pad, pad)), rhs_dilation=(dilation,) * 2,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST)
  return y if b is None else y + b


def depthwise_conv(x, w, b):
  """XLA's own grouped 'same' convolution with one group per channel: (N, H, W, C) * (k, k, 1, C) + (C,)."""
  pad = w.shape[0] // 2
  y = jax.lax.conv_general_dilated(x, w, (1, 1), ((pad, pad), (pad, pad)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   feature_group_count=x.shape[-1], precision=jax.lax.Precision.HIGHEST)
  return y + b


def dense(x, w, b):
  """(..., I) @ (I, O) (+ (O,)) at the highest precision."""
  y = jnp.matmul(x, w, precision=jax.lax.Precision.HIGHEST)
  return y if b is None else y + b


def window_attention(q, k, v, bias, mask):
  """softmax(q kᵀ + bias (+ mask)) v with q, k, v (N, nW, h, T, d), bias (h, T, T), mask (nW, T, T) or None."""
  s = jnp.einsum("nwhtd,nwhsd->nwhts", q, k, precision="highest") + bias
  s = s if mask is None else s + mask[:, None]
  return jnp.einsum("nwhts,nwhsd->nwhtd", jax.nn.softmax(s, axis=-1), v, precision="highest")
