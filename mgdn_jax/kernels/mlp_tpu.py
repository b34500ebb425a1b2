"""The PFF block's MLP branch, fc2(GELU(fc1(LayerNorm(x)))), as one Pallas TPU kernel per direction.

XLA:TPU writes the normalised tokens and the (tokens, hidden) pre-activation and activation (hidden = 4C in the HDR
model) to HBM between its kernels, and reads them again in the backward pass. Here each grid step loads a few image
rows, each as a (C, W) matrix, and the weights into VMEM, runs the whole branch there (as W₁ᵀ u, W₂ᵀ a) and writes
only its output; the backward kernel reads the rows and the output gradient, recomputes the branch, and writes dx
and one partial gradient per weight per grid step (summed outside). The math is `nnx.LayerNorm` (ε = 1e-5) and
`kernels.gelu`'s erf form of the exact GELU.
"""
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from mgdn_jax.kernels.gelu import cdf as gelu_cdf, derivative as gelu_derivative
from mgdn_jax.kernels.pallas_util import (dot as _dot, dot_t, from_image_rows, image_rows, lane_sum, outer, per_device,
                                          per_step, whole)

_EPS = 1e-5
# Tokens per grid step: the (hidden, tokens) f32 activations of the backward pass stay a few MiB of VMEM.
TOKENS_PER_STEP = 1024


def rows_per_step(rows: int, width: int) -> int:
  """Image rows per grid step: the largest divisor of `rows` (N·H on one device) with at most TOKENS_PER_STEP
  tokens of a `width`-wide image."""
  cap = max(1, TOKENS_PER_STEP // width)
  return max(d for d in range(1, min(rows, cap) + 1) if rows % d == 0)


def _f32(ref):
  return ref[...].astype(jnp.float32)


def _normalise(x, gamma, beta):
  """LayerNorm over the channels of one (C, W) image row: the output, x̂ and 1/σ (both per token)."""
  mean = jnp.mean(x, axis=0, keepdims=True)
  centred = x - mean
  rstd = jax.lax.rsqrt(jnp.mean(centred * centred, axis=0, keepdims=True) + _EPS)
  xhat = centred * rstd
  return xhat * gamma + beta, xhat, rstd


def _forward_kernel(x_ref, gamma_ref, beta_ref, w1t_ref, b1_ref, w2t_ref, b2_ref, y_ref):
  gamma, beta, w1t, b1, w2t, b2 = map(_f32, (gamma_ref, beta_ref, w1t_ref, b1_ref, w2t_ref, b2_ref))
  for r in range(x_ref.shape[0]):
    u, _, _ = _normalise(x_ref[r].astype(jnp.float32), gamma, beta)
    h = _dot(w1t, u) + b1                                       # (hidden, W)
    y_ref[r] = (_dot(w2t, h * gelu_cdf(h)) + b2).astype(y_ref.dtype)  # (C, W)


def _backward_kernel(x_ref, gamma_ref, beta_ref, w1t_ref, b1_ref, w2t_ref, b2_ref, dy_ref,
                     dx_ref, dgamma_ref, dbeta_ref, dw1t_ref, db1_ref, dw2t_ref, db2_ref):
  del b2_ref  # enters only its own gradient
  gamma, beta, w1t, b1, w2t = map(_f32, (gamma_ref, beta_ref, w1t_ref, b1_ref, w2t_ref))
  sums = [jnp.zeros(ref.shape[1:], jnp.float32) for ref in (dgamma_ref, dbeta_ref, dw1t_ref, db1_ref, dw2t_ref,
                                                            db2_ref)]
  for r in range(x_ref.shape[0]):
    dy = dy_ref[r].astype(jnp.float32)                          # (C, W)
    u, xhat, rstd = _normalise(x_ref[r].astype(jnp.float32), gamma, beta)
    h = _dot(w1t, u) + b1
    cdf = gelu_cdf(h)
    a = h * cdf
    dh = dot_t(w2t, dy) * gelu_derivative(h, cdf)                # w2t is (C, hidden)
    du = dot_t(w1t, dh)
    dxhat = du * gamma
    dx = rstd * (dxhat - jnp.mean(dxhat, axis=0, keepdims=True)
                 - xhat * jnp.mean(dxhat * xhat, axis=0, keepdims=True))
    dx_ref[r] = dx.astype(dx_ref.dtype)
    row = [lane_sum(du * xhat), lane_sum(du), outer(dh, u), lane_sum(dh), outer(dy, a), lane_sum(dy)]
    sums = [acc + g for acc, g in zip(sums, row)]
  for ref, total in zip((dgamma_ref, dbeta_ref, dw1t_ref, db1_ref, dw2t_ref, db2_ref), sums):
    ref[...] = total[None]


def _weights(gamma, beta, w1, b1, w2, b2):
  """The weights in the kernels' column-major form (vectors as columns, matrices transposed) and their
  whole-array BlockSpecs."""
  arrays = [gamma.reshape(-1, 1), beta.reshape(-1, 1), w1.T, b1.reshape(-1, 1), w2.T, b2.reshape(-1, 1)]
  return arrays, [whole(a.shape) for a in arrays]


def _forward(x, weights, rows: int, interpret: bool):
  n, c, w = x.shape
  arrays, specs = _weights(*weights)
  block = pl.BlockSpec((rows, c, w), lambda i: (i, 0, 0))
  return pl.pallas_call(_forward_kernel, grid=(n // rows,), in_specs=[block] + specs, out_specs=block,
                        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype), interpret=interpret)(x, *arrays)


def _backward(x, weights, dy, rows: int, interpret: bool):
  n, c, w = x.shape
  steps = n // rows
  arrays, specs = _weights(*weights)
  block = pl.BlockSpec((rows, c, w), lambda i: (i, 0, 0))
  dx, *sums = pl.pallas_call(
      _backward_kernel, grid=(steps,), in_specs=[block] + specs + [block],
      out_specs=[block] + [per_step(a.shape) for a in arrays],
      out_shape=[jax.ShapeDtypeStruct(x.shape, x.dtype)]
      + [jax.ShapeDtypeStruct((steps,) + a.shape, jnp.float32) for a in arrays],
      interpret=interpret)(x, *arrays, dy)
  gamma, beta, w1t, b1, w2t, b2 = (jnp.sum(part, axis=0) for part in sums)
  grads = (gamma, beta, w1t.T, b1, w2t.T, b2)
  return dx, tuple(g.reshape(p.shape).astype(p.dtype) for g, p in zip(grads, weights))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _local(x, weights, rows, interpret):
  """(R, C, W) → (R, C, W): this device's image rows, channels before width."""
  return _forward(x, weights, rows, interpret)


def _local_fwd(x, weights, rows, interpret):
  return _forward(x, weights, rows, interpret), (x, weights)


def _local_bwd(rows, interpret, residuals, dy):
  x, weights = residuals
  return _backward(x, weights, dy, rows, interpret)


_local.defvjp(_local_fwd, _local_bwd)


def layer_norm_mlp(x: jax.Array, gamma: jax.Array, beta: jax.Array, w1: jax.Array, b1: jax.Array, w2: jax.Array,
                   b2: jax.Array, *, mesh: jax.sharding.Mesh | None = None, interpret: bool = False) -> jax.Array:
  """fc2(GELU(fc1(LayerNorm(x)))) per token.

  Args:
    x: (N, H, W, C) tokens.
    gamma, beta: (C,) the LayerNorm's scale and offset.
    w1, b1, w2, b2: (C, hidden), (hidden,), (hidden, C), (C,) the two Linear layers.
    mesh: a ('data',) mesh the images are split over (the kernels run on each device's own images), or None.
    interpret: run the kernels in Pallas's interpreter (any backend).
  Returns:
    (N, H, W, C) in the dtype of x; everything inside the kernels in f32.
  """
  weights = (gamma, beta, w1, b1, w2, b2)

  def run(x, weights):
    n, h, w, _ = x.shape
    # Channels before width (`image_rows`): free transposes on a TPU, and each (C, W) row a plain matmul operand.
    return from_image_rows(_local(image_rows(x), weights, rows_per_step(n * h, w), interpret), h)

  return per_device(run, mesh, x, weights)
