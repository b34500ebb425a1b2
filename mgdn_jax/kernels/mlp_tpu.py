"""The PFF block's MLP branch, fc2(GELU(fc1(LayerNorm(x)))), as one Pallas TPU kernel per direction.

XLA:TPU writes the normalised tokens and the (tokens, hidden) pre-activation and activation (hidden = 4C in the HDR
model) to HBM between its kernels, and reads them again in the backward pass. Here each grid step loads a block of
token rows and the weights into VMEM, runs the whole branch there and writes only its (rows, C) output; the
backward kernel reads the rows and the output gradient, recomputes the branch, and writes dx and one partial
gradient per weight per grid step (summed outside). The math is `nnx.LayerNorm` (ε = 1e-5) and `kernels.gelu`'s
erf form of the exact GELU.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.sharding import PartitionSpec as P

_EPS = 1e-5
_SQRT_HALF = np.float32(1 / np.sqrt(2))
_INV_SQRT_2PI = np.float32(1 / np.sqrt(2 * np.pi))
# Token rows per grid step: the (rows, hidden) f32 activations of the backward pass stay a few MiB of VMEM.
ROWS_PER_STEP = 1024


def rows_per_step(rows: int) -> int:
  """The largest divisor of `rows` (tokens on one device) up to ROWS_PER_STEP, a multiple of 8 where one exists."""
  divisors = [d for d in range(1, min(rows, ROWS_PER_STEP) + 1) if rows % d == 0]
  aligned = [d for d in divisors if d % 8 == 0]
  return max(aligned or divisors)


def _normalise(x, gamma_ref, beta_ref):
  """LayerNorm of (R, C) f32 rows: the output, x̂ and 1/σ."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  centred = x - mean
  rstd = jax.lax.rsqrt(jnp.mean(centred * centred, axis=-1, keepdims=True) + _EPS)
  xhat = centred * rstd
  return xhat * gamma_ref[...].astype(jnp.float32) + beta_ref[...].astype(jnp.float32), xhat, rstd


def _hidden(u, w1_ref, b1_ref):
  return jnp.dot(u, w1_ref[...].astype(jnp.float32), preferred_element_type=jnp.float32) + b1_ref[...].astype(
      jnp.float32)


def _cdf(h):
  return 0.5 * (1 + jax.lax.erf(h * _SQRT_HALF))


def _forward_kernel(x_ref, gamma_ref, beta_ref, w1_ref, b1_ref, w2_ref, b2_ref, y_ref):
  u, _, _ = _normalise(x_ref[...].astype(jnp.float32), gamma_ref, beta_ref)
  h = _hidden(u, w1_ref, b1_ref)
  y = jnp.dot(h * _cdf(h), w2_ref[...].astype(jnp.float32), preferred_element_type=jnp.float32)
  y_ref[...] = (y + b2_ref[...].astype(jnp.float32)).astype(y_ref.dtype)


def _backward_kernel(x_ref, gamma_ref, beta_ref, w1_ref, b1_ref, w2_ref, b2_ref, dy_ref,
                     dx_ref, dgamma_ref, dbeta_ref, dw1_ref, db1_ref, dw2_ref, db2_ref):
  del b2_ref  # enters only its own gradient
  x = x_ref[...].astype(jnp.float32)
  dy = dy_ref[...].astype(jnp.float32)
  u, xhat, rstd = _normalise(x, gamma_ref, beta_ref)
  h = _hidden(u, w1_ref, b1_ref)
  cdf = _cdf(h)
  a = h * cdf
  da = jnp.einsum('rc,kc->rk', dy, w2_ref[...].astype(jnp.float32), preferred_element_type=jnp.float32)
  dh = da * (cdf + h * jnp.exp(-0.5 * h * h) * _INV_SQRT_2PI)
  du = jnp.einsum('rk,ck->rc', dh, w1_ref[...].astype(jnp.float32), preferred_element_type=jnp.float32)
  dxhat = du * gamma_ref[...].astype(jnp.float32)
  dx = rstd * (dxhat - jnp.mean(dxhat, axis=-1, keepdims=True)
               - xhat * jnp.mean(dxhat * xhat, axis=-1, keepdims=True))
  dx_ref[...] = dx.astype(dx_ref.dtype)
  dgamma_ref[...] = jnp.sum(du * xhat, axis=0, keepdims=True)[None]
  dbeta_ref[...] = jnp.sum(du, axis=0, keepdims=True)[None]
  dw1_ref[...] = jnp.einsum('rc,rk->ck', u, dh, preferred_element_type=jnp.float32)[None]
  db1_ref[...] = jnp.sum(dh, axis=0, keepdims=True)[None]
  dw2_ref[...] = jnp.einsum('rk,rc->kc', a, dy, preferred_element_type=jnp.float32)[None]
  db2_ref[...] = jnp.sum(dy, axis=0, keepdims=True)[None]


def _weights(gamma, beta, w1, b1, w2, b2):
  """The weights as 2-D arrays (vectors as one row) and their whole-array BlockSpecs."""
  arrays = [gamma.reshape(1, -1), beta.reshape(1, -1), w1, b1.reshape(1, -1), w2, b2.reshape(1, -1)]
  return arrays, [pl.BlockSpec(a.shape, lambda i: (0, 0)) for a in arrays]


def _forward(x, weights, rows: int, interpret: bool):
  n, c = x.shape
  arrays, specs = _weights(*weights)
  block = pl.BlockSpec((rows, c), lambda i: (i, 0))
  return pl.pallas_call(_forward_kernel, grid=(n // rows,), in_specs=[block] + specs, out_specs=block,
                        out_shape=jax.ShapeDtypeStruct(x.shape, x.dtype), interpret=interpret)(x, *arrays)


def _backward(x, weights, dy, rows: int, interpret: bool):
  n, c = x.shape
  steps = n // rows
  arrays, specs = _weights(*weights)
  block = pl.BlockSpec((rows, c), lambda i: (i, 0))
  partial = lambda a: pl.BlockSpec((1,) + a.shape, lambda i: (i, 0, 0))
  dx, *sums = pl.pallas_call(
      _backward_kernel, grid=(steps,), in_specs=[block] + specs + [block],
      out_specs=[block] + [partial(a) for a in arrays],
      out_shape=[jax.ShapeDtypeStruct(x.shape, x.dtype)]
      + [jax.ShapeDtypeStruct((steps,) + a.shape, jnp.float32) for a in arrays],
      interpret=interpret)(x, *arrays, dy)
  return dx, tuple(jnp.sum(s, axis=0).reshape(w.shape).astype(w.dtype) for s, w in zip(sums, weights))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _local(x, weights, rows, interpret):
  """(R, C) → (R, C) on this device's token rows."""
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
    rows = x.reshape(-1, x.shape[-1])
    return _local(rows, weights, rows_per_step(rows.shape[0]), interpret).reshape(x.shape)

  if mesh is None or mesh.devices.size == 1:
    return run(x, weights)
  # As in attention_tpu: per device on its own images; weight gradients summed over devices by shard_map.
  data = P(mesh.axis_names[0])
  return jax.shard_map(run, mesh=mesh, in_specs=(data, P()), out_specs=data, check_vma=False)(x, weights)
