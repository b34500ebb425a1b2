"""Per-pixel dynamic filtering ("KV * F" of MGDN §3.2.2, `FAC` in the official code).

Every pixel owns a k×k kernel that is shared by all channels:

  out[n, y, x, c] = Σ_{i,j} xp[n, y + i, x + j, c] · K[n, y, x, k·i + j]

with `xp` the input edge-padded by k//2 on every side (the official code pads with 'replicate'), and kernel
channel k·i + j ↔ (row offset i, column offset j), row-major, no flip.

The official code unfolds (N, H, W, C, k²) tensors. Here the sum is k² shifted multiply-adds, which XLA fuses into
one loop over the input; the hand-written backward is also shift-accumulate, so nothing k²-sized per channel is
ever materialised in either direction. The autodiff oracle lives in tests/oracles.py and the unfold-style
formulation of the official code, a benchmark baseline, in benchmarks/baselines.py.
"""
import functools

import jax
import jax.numpy as jnp


def _check(x: jax.Array, kernels: jax.Array, kernel_size: int) -> None:
  if x.ndim != 4 or kernels.ndim != 4:
    raise ValueError(f"dynamic_filter expects x (N, H, W, C) and kernels (N, H, W, k²), got {x.shape} and "
                     f"{kernels.shape}")
  if kernels.shape[:3] != x.shape[:3] or kernels.shape[-1] != kernel_size**2:
    raise ValueError(f"dynamic_filter: kernels shape {kernels.shape} does not fit x {x.shape} with "
                     f"kernel_size={kernel_size} (expected {x.shape[:3] + (kernel_size**2,)})")


def _edge_pad(x: jax.Array, r: int) -> jax.Array:
  return jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")


def _forward(x: jax.Array, kernels: jax.Array, kernel_size: int) -> jax.Array:
  """Σ over taps of shifted input × kernel channel, accumulated in f32 (or f64 when x is f64)."""
  n, h, w, _ = x.shape
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  xp = _edge_pad(x, kernel_size // 2)
  out = jnp.zeros(x.shape, acc_dtype)
  for i in range(kernel_size):
    for j in range(kernel_size):
      t = kernel_size * i + j
      tap = jax.lax.dynamic_slice(xp, (0, i, j, 0), (n, h, w, x.shape[-1]))
      out = out + tap.astype(acc_dtype) * kernels[..., t:t + 1].astype(acc_dtype)
  return out.astype(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _dynamic_filter(x, kernels, kernel_size):
  return _forward(x, kernels, kernel_size)


def _fwd(x, kernels, kernel_size):
  return _forward(x, kernels, kernel_size), (x, kernels)


def _bwd(kernel_size, residuals, g):
  x, kernels = residuals
  n, h, w, c = x.shape
  k, r = kernel_size, kernel_size // 2
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  g = g.astype(acc_dtype)
  # dxp[y', x'] = Σ_t (g·K_t)[y' − i, x' − j] over the padded grid: with g and K zero-padded by 2r this is again a
  # sum of k² shifted products, one fused loop (the earlier pad-and-add per tap wrote k² padded buffers).
  zero_pad = lambda a: jnp.pad(a, ((0, 0), (2 * r, 2 * r), (2 * r, 2 * r), (0, 0)))
  gz, kz = zero_pad(g), zero_pad(kernels.astype(acc_dtype))
  grid = (n, h + 2 * r, w + 2 * r)
  dxp = None
  for i in range(k):
    for j in range(k):
      t = k * i + j
      term = (jax.lax.dynamic_slice(gz, (0, 2 * r - i, 2 * r - j, 0), grid + (c,))
              * jax.lax.dynamic_slice(kz, (0, 2 * r - i, 2 * r - j, t), grid + (1,)))
      dxp = term if dxp is None else dxp + term
  # Adjoint of edge padding: every padded row/column folds back onto the border pixel it copied.
  _, pad_vjp = jax.vjp(lambda a: _edge_pad(a, r), jnp.zeros(x.shape, acc_dtype))
  (dx,) = pad_vjp(dxp)
  # dK[t] = Σ_c g · shifted x. XLA:CPU's channel reductions are slow (1.4 s for the 49 taps at (4, 128², 60)), so
  # the channels are summed as explicit plane adds in channel-major layout, one tap per scan step (0.36 s,
  # and a small loop body keeps the compile short).
  xp_t = jnp.transpose(_edge_pad(x.astype(acc_dtype), r), (3, 0, 1, 2))
  g_t = jnp.transpose(g, (3, 0, 1, 2))

  def tap(_, t):
    xs = jax.lax.dynamic_slice(xp_t, (0, 0, t // k, t % k), (c, n, h, w))
    total = xs[0] * g_t[0]
    for ch in range(1, c):
      total = total + xs[ch] * g_t[ch]
    return None, total

  _, dk = jax.lax.scan(tap, None, jnp.arange(k * k))
  return dx.astype(x.dtype), jnp.moveaxis(dk, 0, -1).astype(kernels.dtype)


_dynamic_filter.defvjp(_fwd, _bwd)


def dynamic_filter(x: jax.Array, kernels: jax.Array, kernel_size: int = 7) -> jax.Array:
  """Per-pixel k×k filtering shared across channels, with a shift-accumulate custom VJP.

  Args:
    x: (N, H, W, C) features.
    kernels: (N, H, W, k²) raw (unnormalised) per-pixel kernels; channel k·i + j is tap (i, j).
    kernel_size: k (odd), 7 in MGDN.
  Returns:
    (N, H, W, C), dtype of x; sums are accumulated in at least f32.
  """
  _check(x, kernels, kernel_size)
  return _dynamic_filter(x, kernels, kernel_size)

