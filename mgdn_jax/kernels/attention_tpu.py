"""Window self-attention as one Pallas TPU kernel per direction, straight from the qkv projection.

The math is `ops.window_attention`'s (softmax(q kᵀ + bias + mask) v per window and head, the probabilities
recomputed in the backward pass from the per-row log-sum-exp). What differs is where the (windows, heads, T, T)
logits, probabilities and their gradients live: XLA:TPU writes each of them to HBM between its kernels, each 6.4×
the bytes of the (windows, T, C) output at T = 64, C = 60, 6 heads. Here each grid step loads `wb` windows' qkv rows
(wb, T, 3C) into VMEM, runs every head there, and writes only the (wb, T, C) output and the (wb, heads, T)
log-sum-exp; the backward kernel reads those plus the output gradient and writes dqkv and one partial bias gradient
per grid step.

Training on a TPU mesh uses it (`platform.resolve_attention`); everything else keeps the XLA path. On other backends
it runs in Pallas's interpreter (`interpret=True`), which is how the tests check it against `ops.window_attention`.
"""
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.sharding import PartitionSpec as P

XLA, PALLAS_TPU = 'xla', 'pallas_tpu'
ATTENTION = (XLA, PALLAS_TPU)

# Rows of tokens (windows × T) per grid step: the f32 (rows, T) logits of one head and the (rows, 3C) qkv block, each
# double-buffered, stay far below the 16 MiB of scoped VMEM XLA:TPU grants a kernel by default.
_ROWS_PER_STEP = 512


def windows_per_step(num_windows: int, tokens: int) -> int:
  """The largest divisor of `num_windows` (windows per image) with at most _ROWS_PER_STEP // `tokens` windows."""
  cap = max(1, _ROWS_PER_STEP // tokens)
  return max(d for d in range(1, min(cap, num_windows) + 1) if num_windows % d == 0)


def _heads(qkv_ref, h: int, d: int, c: int, scale: float):
  """(wb, T, d) f32 q (scaled), k and v of head `h` from the (wb, T, 3C) qkv block ([q | k | v], head-major)."""
  q = qkv_ref[:, :, h * d:(h + 1) * d].astype(jnp.float32) * scale
  k = qkv_ref[:, :, c + h * d:c + (h + 1) * d].astype(jnp.float32)
  v = qkv_ref[:, :, 2 * c + h * d:2 * c + (h + 1) * d].astype(jnp.float32)
  return q, k, v


def _logits(q, k, bias_ref, mask_ref, h: int):
  """(wb, T, T) f32 q kᵀ + bias[h] (+ mask)."""
  s = jnp.einsum('wtd,wsd->wts', q, k, preferred_element_type=jnp.float32) + bias_ref[h][None]
  return s if mask_ref is None else s + mask_ref[...]


def _forward_kernel(qkv_ref, bias_ref, *refs, heads: int, scale: float, masked: bool):
  mask_ref, out_ref, lse_ref = refs if masked else (None, *refs)
  c = out_ref.shape[-1]
  d = c // heads
  outs, lses = [], []
  for h in range(heads):
    q, k, v = _heads(qkv_ref, h, d, c, scale)
    s = _logits(q, k, bias_ref, mask_ref, h)
    m = jnp.max(s, axis=-1, keepdims=True)
    e = jnp.exp(s - m)
    total = jnp.sum(e, axis=-1, keepdims=True)
    outs.append(jnp.einsum('wts,wsd->wtd', e, v, preferred_element_type=jnp.float32) / total)
    lses.append((m + jnp.log(total))[..., 0])
  out_ref[...] = jnp.concatenate(outs, axis=-1).astype(out_ref.dtype)
  lse_ref[...] = jnp.stack(lses, axis=1)


def _backward_kernel(qkv_ref, bias_ref, *refs, heads: int, scale: float, masked: bool):
  mask_ref, out_ref, lse_ref, g_ref, dqkv_ref, dbias_ref = refs if masked else (None, *refs)
  c = out_ref.shape[-1]
  d = c // heads
  dq, dk, dv, dbias = [], [], [], []
  for h in range(heads):
    q, k, v = _heads(qkv_ref, h, d, c, scale)
    p = jnp.exp(_logits(q, k, bias_ref, mask_ref, h) - lse_ref[:, h, :][..., None])
    g = g_ref[:, :, h * d:(h + 1) * d].astype(jnp.float32)
    o = out_ref[:, :, h * d:(h + 1) * d].astype(jnp.float32)
    dv.append(jnp.einsum('wts,wtd->wsd', p, g, preferred_element_type=jnp.float32))
    dp = jnp.einsum('wtd,wsd->wts', g, v, preferred_element_type=jnp.float32)
    ds = p * (dp - jnp.sum(g * o, axis=-1, keepdims=True))  # Σ_s p·dp, from the output
    dq.append(jnp.einsum('wts,wsd->wtd', ds, k, preferred_element_type=jnp.float32) * scale)
    dk.append(jnp.einsum('wts,wtd->wsd', ds, q, preferred_element_type=jnp.float32))
    dbias.append(jnp.sum(ds, axis=0))
  dqkv_ref[...] = jnp.concatenate(dq + dk + dv, axis=-1).astype(dqkv_ref.dtype)
  dbias_ref[...] = jnp.stack(dbias)[None]


def _specs(qkv, heads: int, wb: int, mask):
  """BlockSpecs of (qkv, bias[, mask]) and the grid size: the mask's (nW, T, T) rows repeat for every image."""
  b, t, c3 = qkv.shape
  specs = [_rows(wb, t, c3), pl.BlockSpec((heads, t, t), lambda i: (0, 0, 0))]
  if mask is not None:
    per_image = mask.shape[0] // wb
    specs.append(pl.BlockSpec((wb, t, t), lambda i: (i % per_image, 0, 0)))
  return specs, b // wb


def _rows(wb: int, t: int, width: int) -> pl.BlockSpec:
  return pl.BlockSpec((wb, t, width), lambda i: (i, 0, 0))


def _forward(qkv, bias, mask, heads: int, scale: float, wb: int, interpret: bool):
  b, t, c3 = qkv.shape
  specs, steps = _specs(qkv, heads, wb, mask)
  kernel = functools.partial(_forward_kernel, heads=heads, scale=scale, masked=mask is not None)
  return pl.pallas_call(
      kernel, grid=(steps,), in_specs=specs,
      out_specs=[_rows(wb, t, c3 // 3), _rows(wb, heads, t)],
      out_shape=[jax.ShapeDtypeStruct((b, t, c3 // 3), qkv.dtype), jax.ShapeDtypeStruct((b, heads, t), jnp.float32)],
      interpret=interpret)(qkv, bias, *([] if mask is None else [mask]))


def _backward(qkv, bias, mask, out, lse, g, heads: int, scale: float, wb: int, interpret: bool):
  b, t, c3 = qkv.shape
  specs, steps = _specs(qkv, heads, wb, mask)
  kernel = functools.partial(_backward_kernel, heads=heads, scale=scale, masked=mask is not None)
  dqkv, dbias = pl.pallas_call(
      kernel, grid=(steps,), in_specs=specs + [_rows(wb, t, c3 // 3), _rows(wb, heads, t), _rows(wb, t, c3 // 3)],
      out_specs=[_rows(wb, t, c3), pl.BlockSpec((1, heads, t, t), lambda i: (i, 0, 0, 0))],
      out_shape=[jax.ShapeDtypeStruct(qkv.shape, qkv.dtype), jax.ShapeDtypeStruct((steps, heads, t, t), jnp.float32)],
      interpret=interpret)(qkv, bias, *([] if mask is None else [mask]), out, lse, g)
  return dqkv, jnp.sum(dbias, axis=0).astype(bias.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _local(qkv, bias, mask, heads, scale, wb, interpret):
  """(B, T, 3C) → (B, T, C) on this device's windows; B = images × nW."""
  return _forward(qkv, bias, mask, heads, scale, wb, interpret)[0]


def _local_fwd(qkv, bias, mask, heads, scale, wb, interpret):
  out, lse = _forward(qkv, bias, mask, heads, scale, wb, interpret)
  return out, (qkv, bias, mask, out, lse)


def _local_bwd(heads, scale, wb, interpret, residuals, g):
  qkv, bias, mask, out, lse = residuals
  dqkv, dbias = _backward(qkv, bias, mask, out, lse, g, heads, scale, wb, interpret)
  return dqkv, dbias, None if mask is None else jnp.zeros_like(mask)  # the mask is a constant of the shift


_local.defvjp(_local_fwd, _local_bwd)


def window_attention_qkv(qkv: jax.Array, bias: jax.Array, mask: jax.Array | None, *, num_heads: int, scale: float,
                         mesh: jax.sharding.Mesh | None = None, interpret: bool = False) -> jax.Array:
  """softmax(scale · q kᵀ + bias + mask) v per window and head, from the qkv projection.

  Args:
    qkv: (N, nW, T, 3C) rows [q | k | v], each head-major (WindowAttention's qkv layer), unscaled.
    bias: (heads, T, T) relative position bias, shared by images and windows.
    mask: (nW, T, T) additive shift mask shared by images and heads, or None.
    mesh: a ('data',) mesh the images are split over (the kernel runs on each device's own images), or None.
    interpret: run the kernels in Pallas's interpreter (any backend).
  Returns:
    (N, nW, T, C) in the dtype of qkv, heads concatenated head-major; logits, softmax and sums in f32.
  """
  n, nw, t, c3 = qkv.shape
  wb = windows_per_step(nw, t)

  def run(x, b, m):
    return _local(x.reshape(-1, t, c3), b, m, num_heads, scale, wb, interpret).reshape(x.shape[:3] + (c3 // 3,))

  if mesh is None or mesh.devices.size == 1:
    return run(qkv, bias, mask)
  # A custom call is opaque to XLA's SPMD partitioner, which would gather every image onto every device; the
  # kernels run per device on its own images instead (the bias gradient is summed over devices by shard_map).
  return jax.shard_map(run, mesh=mesh, in_specs=(P(mesh.axis_names[0]), P(), P()),
                       out_specs=P(mesh.axis_names[0]), check_vma=False)(qkv, bias, mask)
