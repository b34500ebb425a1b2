"""WindowAttention (qkv projection, window attention, output projection) as one Pallas TPU kernel per direction.

The math is the layer's own (`ops.window_attention`'s softmax(q kᵀ + bias + mask) v per window and head between
the two Linear layers, the probabilities recomputed in the backward pass from the per-row log-sum-exp). What differs
is where the intermediates live: XLA:TPU writes the (windows, heads, T, T) logits, probabilities and their
gradients (each 6.4× the bytes of the (windows, T, C) output at T = 64, C = 60, 6 heads) and the (windows, T, 3C)
qkv rows, in the layouts its matmuls want, to HBM between its kernels. Here each grid step loads `wb` windows'
(wb, T, C) tokens and the weights into VMEM, runs both projections and every head there, and writes only the
(wb, T, C) output and the (wb, heads, T) log-sum-exp. The backward kernel reads the tokens, the output gradient and
the log-sum-exp, recomputes the rest, and writes dx and one partial gradient per weight per grid step (summed
outside).

Training on a TPU mesh uses it (`config.pff_kernels`, resolved by `platform.train_plan`); everything else keeps the
XLA path. On other backends it runs in Pallas's interpreter (`interpret=True`), which is how the tests check it
against the layer's XLA path.
"""
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from mgdn_jax.kernels.pallas_util import per_device, per_step, whole

# Rows of tokens (windows × T) per grid step: the f32 (rows, T) logits of one head and the (rows, 3C) qkv block, each
# double-buffered, stay far below the 16 MiB of scoped VMEM XLA:TPU grants a kernel by default.
_ROWS_PER_STEP = 512


def windows_per_step(num_windows: int, tokens: int) -> int:
  """The largest divisor of `num_windows` (windows per image) with at most _ROWS_PER_STEP // `tokens` windows."""
  cap = max(1, _ROWS_PER_STEP // tokens)
  return max(d for d in range(1, min(cap, num_windows) + 1) if num_windows % d == 0)


def _project(x2, w_ref, b_ref, lo: int, width: int):
  """(R, width) f32 x2 @ w[:, lo:lo+width] + b[lo:lo+width]: one head's q, k or v from the (R, C) rows."""
  w = w_ref[:, lo:lo + width].astype(jnp.float32)
  return jnp.dot(x2, w, preferred_element_type=jnp.float32) + b_ref[:, lo:lo + width].astype(jnp.float32)


def _head(x2, wqkv_ref, bqkv_ref, h: int, d: int, c: int, scale: float, shape):
  """(wb, T, d) f32 q (scaled), k and v of head `h` (the qkv layer's channels are [q | k | v], each head-major)."""
  q, k, v = (_project(x2, wqkv_ref, bqkv_ref, part * c + h * d, d).reshape(shape + (d,)) for part in range(3))
  return q * scale, k, v


def _logits(q, k, bias_ref, mask_ref, h: int):
  """(wb, T, T) f32 q kᵀ + bias[h] (+ mask)."""
  s = jnp.einsum('wtd,wsd->wts', q, k, preferred_element_type=jnp.float32) + bias_ref[h][None]
  return s if mask_ref is None else s + mask_ref[...]


def _split_refs(refs, masked: bool):
  """(bias, mask or None, w_proj, b_proj, *rest) from a kernel's refs after x, w_qkv, b_qkv."""
  bias_ref, *refs = refs
  mask_ref = refs.pop(0) if masked else None
  return (bias_ref, mask_ref, *refs)


def _forward_kernel(x_ref, wqkv_ref, bqkv_ref, *refs, heads: int, scale: float, masked: bool):
  bias_ref, mask_ref, wp_ref, bp_ref, y_ref, lse_ref = _split_refs(refs, masked)
  wb, t, c = x_ref.shape
  d = c // heads
  x2 = x_ref[...].astype(jnp.float32).reshape(wb * t, c)
  outs, lses = [], []
  for h in range(heads):
    q, k, v = _head(x2, wqkv_ref, bqkv_ref, h, d, c, scale, (wb, t))
    s = _logits(q, k, bias_ref, mask_ref, h)
    m = jnp.max(s, axis=-1, keepdims=True)
    e = jnp.exp(s - m)
    total = jnp.sum(e, axis=-1, keepdims=True)
    outs.append((jnp.einsum('wts,wsd->wtd', e, v, preferred_element_type=jnp.float32) / total).reshape(wb * t, d))
    lses.append((m + jnp.log(total))[..., 0])
  o = jnp.concatenate(outs, axis=-1)
  y = jnp.dot(o, wp_ref[...].astype(jnp.float32), preferred_element_type=jnp.float32) + bp_ref[...].astype(jnp.float32)
  y_ref[...] = y.reshape(wb, t, c).astype(y_ref.dtype)
  lse_ref[...] = jnp.stack(lses, axis=1)


def _backward_kernel(x_ref, wqkv_ref, bqkv_ref, *refs, heads: int, scale: float, masked: bool):
  bias_ref, mask_ref, wp_ref, bp_ref, lse_ref, dy_ref, dx_ref, dwqkv_ref, dbqkv_ref, dbias_ref, dwp_ref, dbp_ref = (
      _split_refs(refs, masked))
  del bp_ref  # the output bias does not enter any gradient but its own
  wb, t, c = x_ref.shape
  d = c // heads
  x2 = x_ref[...].astype(jnp.float32).reshape(wb * t, c)
  dy = dy_ref[...].astype(jnp.float32).reshape(wb * t, c)
  wp = wp_ref[...].astype(jnp.float32)
  outs, dqkv, dbias = [], [[], [], []], []
  dx = jnp.zeros((wb * t, c), jnp.float32)
  for h in range(heads):
    q, k, v = _head(x2, wqkv_ref, bqkv_ref, h, d, c, scale, (wb, t))
    p = jnp.exp(_logits(q, k, bias_ref, mask_ref, h) - lse_ref[:, h, :][..., None])
    o = jnp.einsum('wts,wsd->wtd', p, v, preferred_element_type=jnp.float32)
    outs.append(o.reshape(wb * t, d))
    # d(o_h) = dy · W_proj[rows of head h]ᵀ
    g = jnp.einsum('rc,dc->rd', dy, wp[h * d:(h + 1) * d, :], preferred_element_type=jnp.float32).reshape(wb, t, d)
    dv = jnp.einsum('wts,wtd->wsd', p, g, preferred_element_type=jnp.float32)
    dp = jnp.einsum('wtd,wsd->wts', g, v, preferred_element_type=jnp.float32)
    ds = p * (dp - jnp.sum(g * o, axis=-1, keepdims=True))
    dq = jnp.einsum('wts,wsd->wtd', ds, k, preferred_element_type=jnp.float32) * scale
    dk = jnp.einsum('wts,wtd->wsd', ds, q, preferred_element_type=jnp.float32)  # q already scaled
    dbias.append(jnp.sum(ds, axis=0))
    for part, grad in enumerate((dq, dk, dv)):
      grad = grad.reshape(wb * t, d)
      dqkv[part].append(grad)
      lo = part * c + h * d
      dx = dx + jnp.einsum('rd,cd->rc', grad, wqkv_ref[:, lo:lo + d].astype(jnp.float32),
                           preferred_element_type=jnp.float32)
  dqkv = jnp.concatenate(dqkv[0] + dqkv[1] + dqkv[2], axis=-1)  # (R, 3C) in the qkv layer's channel order
  o = jnp.concatenate(outs, axis=-1)
  dx_ref[...] = dx.reshape(wb, t, c).astype(dx_ref.dtype)
  dwqkv_ref[...] = jnp.einsum('rc,rk->ck', x2, dqkv, preferred_element_type=jnp.float32)[None]
  dbqkv_ref[...] = jnp.sum(dqkv, axis=0, keepdims=True)[None]
  dbias_ref[...] = jnp.stack(dbias)[None]
  dwp_ref[...] = jnp.einsum('rc,rk->ck', o, dy, preferred_element_type=jnp.float32)[None]
  dbp_ref[...] = jnp.sum(dy, axis=0, keepdims=True)[None]


def _rows(wb: int, *rest: int) -> pl.BlockSpec:
  return pl.BlockSpec((wb,) + rest, lambda i: (i,) + (0,) * len(rest))


def _inputs(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, wb: int):
  """The shared leading inputs of both kernels and their BlockSpecs; the mask's (nW, T, T) repeats for every image."""
  _, t, c = x.shape
  args = [x, w_qkv, b_qkv.reshape(1, -1), bias]
  specs = [_rows(wb, t, c), whole(w_qkv.shape), whole((1, 3 * c)), whole(bias.shape)]
  if mask is not None:
    per_image = mask.shape[0] // wb
    args.append(mask)
    specs.append(pl.BlockSpec((wb, t, t), lambda i: (i % per_image, 0, 0)))
  return args + [w_proj, b_proj.reshape(1, -1)], specs + [whole(w_proj.shape), whole((1, c))]


def _forward(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, heads: int, scale: float, wb: int, interpret: bool):
  b, t, c = x.shape
  args, specs = _inputs(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, wb)
  kernel = functools.partial(_forward_kernel, heads=heads, scale=scale, masked=mask is not None)
  return pl.pallas_call(
      kernel, grid=(b // wb,), in_specs=specs, out_specs=[_rows(wb, t, c), _rows(wb, heads, t)],
      out_shape=[jax.ShapeDtypeStruct(x.shape, x.dtype), jax.ShapeDtypeStruct((b, heads, t), jnp.float32)],
      interpret=interpret)(*args)


def _backward(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, lse, dy, heads: int, scale: float, wb: int,
              interpret: bool):
  b, t, c = x.shape
  steps = b // wb
  args, specs = _inputs(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, wb)
  kernel = functools.partial(_backward_kernel, heads=heads, scale=scale, masked=mask is not None)
  partials = [(c, 3 * c), (1, 3 * c), (heads, t, t), (c, c), (1, c)]
  dx, *sums = pl.pallas_call(
      kernel, grid=(steps,), in_specs=specs + [_rows(wb, heads, t), _rows(wb, t, c)],
      out_specs=[_rows(wb, t, c)] + [per_step(shape) for shape in partials],
      out_shape=[jax.ShapeDtypeStruct(x.shape, x.dtype)]
      + [jax.ShapeDtypeStruct((steps,) + shape, jnp.float32) for shape in partials],
      interpret=interpret)(*args, lse, dy)
  d_wqkv, d_bqkv, d_bias, d_wp, d_bp = (jnp.sum(part, axis=0) for part in sums)
  return (dx, d_wqkv.astype(w_qkv.dtype), d_bqkv.reshape(b_qkv.shape).astype(b_qkv.dtype), d_bias.astype(bias.dtype),
          d_wp.astype(w_proj.dtype), d_bp.reshape(b_proj.shape).astype(b_proj.dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9, 10))
def _local(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, heads, scale, wb, interpret):
  """(B, T, C) → (B, T, C) on this device's windows; B = images × nW."""
  return _forward(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, heads, scale, wb, interpret)[0]


def _local_fwd(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, heads, scale, wb, interpret):
  y, lse = _forward(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, heads, scale, wb, interpret)
  return y, (x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, lse)


def _local_bwd(heads, scale, wb, interpret, residuals, dy):
  x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, lse = residuals
  dx, d_wqkv, d_bqkv, d_bias, d_wp, d_bp = _backward(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj, lse, dy, heads,
                                                     scale, wb, interpret)
  d_mask = None if mask is None else jnp.zeros_like(mask)  # the mask is a constant of the shift
  return dx, d_wqkv, d_bqkv, d_bias, d_mask, d_wp, d_bp


_local.defvjp(_local_fwd, _local_bwd)


def window_attention_block(x: jax.Array, w_qkv: jax.Array, b_qkv: jax.Array, bias: jax.Array, mask: jax.Array | None,
                           w_proj: jax.Array, b_proj: jax.Array, *, num_heads: int, scale: float,
                           mesh: jax.sharding.Mesh | None = None, interpret: bool = False) -> jax.Array:
  """WindowAttention's whole forward: proj(softmax(scale · q kᵀ + bias + mask) v), [q | k | v] = x w_qkv + b_qkv.

  Args:
    x: (N, nW, T, C) windows.
    w_qkv, b_qkv: (C, 3C), (3C,) the qkv layer ([q | k | v] channels, each head-major).
    bias: (heads, T, T) relative position bias, shared by images and windows.
    mask: (nW, T, T) additive shift mask shared by images and heads, or None.
    w_proj, b_proj: (C, C), (C,) the output projection.
    mesh: a ('data',) mesh the images are split over (the kernels run on each device's own images), or None.
    interpret: run the kernels in Pallas's interpreter (any backend).
  Returns:
    (N, nW, T, C) in the dtype of x; everything inside the kernels in f32.
  """
  n, nw, t, c = x.shape
  wb = windows_per_step(nw, t)

  def run(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj):
    out = _local(x.reshape(-1, t, c), w_qkv, b_qkv, bias, mask, w_proj, b_proj, num_heads, scale, wb, interpret)
    return out.reshape(x.shape)

  return per_device(run, mesh, x, w_qkv, b_qkv, bias, mask, w_proj, b_proj)
