"""The PFF block's local context extractor (LCE) as Pallas TPU kernels.

LCE(u) = y ⊙ gate, y = LReLU₀.₂(conv2(conv1(conv0(u)))) with 1×1 C→r, 3×3 r→r, 1×1 r→C convs (r = C // 8) and
gate = σ(fc2(ReLU(fc0(mean over pixels of y)))), per image and channel. XLA:TPU runs the layer and its gradient
as a score of kernels, and those on the expanded side (conv2's output, the leaky ReLU, the gated product, their
gradients, conv2's weight gradient) each read or write C-channel activations in HBM, some of them in two
layouts. Here every image row is a (C, W) matrix (W in the lanes, the layout the block's activations already have
on a TPU), the 1×1 convs are (r, C) and (C, r) matmuls, and the 3×3 conv is three row taps × three column taps,
the column shift being a product with a (W, W) shift matrix. Only the input, the output and their gradients travel
through HBM.

The gate needs the mean of the whole image's y before any output, so there are two kernels per direction, and the
chain is recomputed instead of stored:
  forward   (1) Σ y per grid step → gate (the squeeze-excitation MLP, in XLA) → (2) y ⊙ gate;
  backward  (3) Σ dout ⊙ y per grid step → the gate's gradient through the MLP (XLA) → (4) du and partial weight
            gradients per grid step (summed outside).
A grid step covers `rows` image rows of one image plus two rows above and below it: the 3×3 conv reads one
neighbouring row, its backward pass two. Rows outside the image are the conv's zero padding.
"""
import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl

from mgdn_jax.kernels.pallas_util import (dot as _dot, dot_t as _dot_t, from_image_rows, image_rows,
                                          lane_sum as _lane_sum, outer as _outer, per_device, per_step, whole)

_HALO = 2
# Tokens per grid step: with the halo, both directions' blocks take a few MiB of VMEM at most (of the 16 MiB XLA:TPU
# grants a kernel by default), and the unrolled per-row code (and its compile time) stays small. The two (W, W)
# shift matrices grow with the square of the width (1 MiB each at W = 512, double-buffered).
TOKENS_PER_STEP = 1024
_SLOPE = 0.2


def rows_per_step(height: int, width: int) -> int:
  """Image rows per grid step: the largest even divisor of `height` with at most TOKENS_PER_STEP tokens of a
  `width`-wide image, at least 2 (the halo's height)."""
  if height % _HALO:
    raise ValueError(f'lce_tpu: image height {height} must be even')
  cap = max(_HALO, TOKENS_PER_STEP // width)
  return max(d for d in range(_HALO, min(height, cap) + 1, _HALO) if height % d == 0)


class _Step:
  """One grid step's view: its rows with the halo, position in the image and the weights (all f32 values).

  Local row p (0 … rows + 3) is image row start − 2 + p; rows 2 … rows + 1 are the step's own.
  """

  def __init__(self, x_ref, top_ref, bot_ref, w0t_ref, b0_ref, k1t_ref, b1_ref, w2t_ref, b2_ref, shift_ref, *,
               height: int, rows: int):
    self.x, self.top, self.bot, self.rows = x_ref, top_ref, bot_ref, rows
    start = (pl.program_id(0) % (height // rows)) * rows
    self.top_valid = start > 0
    self.bot_valid = start + rows < height
    f32 = lambda ref: ref[...].astype(jnp.float32)
    self.w0t, self.b0, self.b1, self.w2t, self.b2 = map(f32, (w0t_ref, b0_ref, b1_ref, w2t_ref, b2_ref))
    self.k1t = [k1t_ref[t].astype(jnp.float32) for t in range(9)]  # tap (i, j) at 3i + j, as (r_out, r_in)
    self.left, self.right = shift_ref[0].astype(jnp.float32), shift_ref[1].astype(jnp.float32)

  def input_row(self, p: int):
    """(C, W) f32 local row p."""
    r = self.rows
    ref, q = (self.top, p) if p < _HALO else (self.x, p - _HALO) if p < r + _HALO else (self.bot, p - r - _HALO)
    return ref[q].astype(jnp.float32)

  def valid(self, p: int, value):
    """`value` where local row p is inside the image, else zeros (the 3×3 conv's padding)."""
    if _HALO <= p < self.rows + _HALO:
      return value
    return jnp.where(self.top_valid if p < _HALO else self.bot_valid, value, 0.0)

  def squeezed(self, lo: int, hi: int):
    """{p: (r, W) conv0 output of local row p, zero outside the image} for lo ≤ p < hi."""
    return {p: self.valid(p, _dot(self.w0t, self.input_row(p)) + self.b0) for p in range(lo, hi)}

  def shift(self, a, d: int):
    """(a @ S_d)[:, w] = a[:, w + d], zero past the edge (d = ±1)."""
    return _dot(a, self.left if d < 0 else self.right)

  def conv1(self, m, p: int):
    """(r, W) 3×3 conv output of local row p from the squeezed rows p − 1 … p + 1."""
    cols = [sum(_dot(self.k1t[3 * i + j], m[p + i - 1]) for i in range(3)) for j in range(3)]
    return self.shift(cols[0], -1) + cols[1] + self.shift(cols[2], 1) + self.b1

  def chain(self, m, p: int):
    """(r, W) z1, (C, W) z2 and y of local row p."""
    z1 = self.conv1(m, p)
    z2 = _dot(self.w2t, z1) + self.b2
    return z1, z2, jnp.where(z2 >= 0, z2, _SLOPE * z2)


def _own_outputs(step: _Step):
  """[(p, z1, z2, y)] for the step's own rows."""
  m = step.squeezed(1, step.rows + 3)
  return [(p,) + step.chain(m, p) for p in range(_HALO, step.rows + _HALO)]


def _pool_kernel(*refs, height: int, rows: int):
  *inputs, sum_ref = refs
  step = _Step(*inputs, height=height, rows=rows)
  sum_ref[...] = sum(_lane_sum(y) for _, _, _, y in _own_outputs(step))[None]


def _apply_kernel(*refs, height: int, rows: int):
  *inputs, gate_ref, out_ref = refs
  step = _Step(*inputs, height=height, rows=rows)
  gate = gate_ref[0].astype(jnp.float32)
  for p, _, _, y in _own_outputs(step):
    out_ref[p - _HALO] = (y * gate).astype(out_ref.dtype)


def _gate_grad_kernel(*refs, height: int, rows: int):
  *inputs, dout_ref, sum_ref = refs
  step = _Step(*inputs, height=height, rows=rows)
  sum_ref[...] = sum(_lane_sum(dout_ref[p - _HALO].astype(jnp.float32) * y)
                     for p, _, _, y in _own_outputs(step))[None]


def _backward_kernel(*refs, height: int, rows: int):
  *inputs, gate_ref, dpool_ref, dout_ref, dtop_ref, dbot_ref, dx_ref, dw0t_ref, db0_ref, dk1t_ref, db1_ref, \
      dw2t_ref, db2_ref = refs
  step = _Step(*inputs, height=height, rows=rows)
  gate, dpool = gate_ref[0].astype(jnp.float32), dpool_ref[0].astype(jnp.float32)

  def dout(p):
    ref, q = (dtop_ref, 1) if p < _HALO else (dbot_ref, 0) if p >= rows + _HALO else (dout_ref, p - _HALO)
    return ref[q].astype(jnp.float32)

  m = step.squeezed(0, rows + 4)
  own = range(_HALO, rows + _HALO)
  dk1t = [0.0] * 9
  dw2t = db2 = db1 = 0.0
  # g[p][j] = dz1[p] @ S_jᵀ: the gradient of tap column j's shifted input, for the rows whose conv reads row p ± 1.
  g = {}
  for p in range(1, rows + 3):
    z1, z2, _ = step.chain(m, p)
    dz2 = (dout(p) * gate + dpool) * jnp.where(z2 >= 0, 1.0, _SLOPE)
    dz1 = step.valid(p, _dot_t(step.w2t, dz2))
    g[p] = [step.shift(dz1, 1), dz1, step.shift(dz1, -1)]  # S_dᵀ = S_−d
    if p in own:  # each z1 row's weight gradients belong to the step that owns the row
      dw2t = dw2t + _outer(dz2, z1)
      db2 = db2 + _lane_sum(dz2)
      db1 = db1 + _lane_sum(dz1)
      for i in range(3):
        for j in range(3):
          dk1t[3 * i + j] = dk1t[3 * i + j] + _outer(g[p][j], m[p + i - 1])
  dw0t = db0 = 0.0
  for q in own:
    # Row q feeds tap row i of z1 rows p = q − i + 1.
    dz0 = sum(_dot_t(step.k1t[3 * i + j], g[q - i + 1][j]) for i in range(3) for j in range(3))
    dx_ref[q - _HALO] = _dot_t(step.w0t, dz0).astype(dx_ref.dtype)
    dw0t = dw0t + _outer(dz0, step.input_row(q))
    db0 = db0 + _lane_sum(dz0)
  for ref, total in ((dw0t_ref, dw0t), (db0_ref, db0), (db1_ref, db1), (dw2t_ref, dw2t), (db2_ref, db2)):
    ref[...] = total[None]
  dk1t_ref[...] = jnp.stack(dk1t)[None]


def _kernel_weights(w0, b0, w1, b1, w2, b2):
  """The convs in the kernels' form: (r, C) w0ᵀ, (r, 1) b0, (9, r, r) 3×3 taps (i, j) at 3i + j as (out, in),
  (r, 1) b1, (C, r) w2ᵀ, (C, 1) b2; from HWIO kernels and (O,) biases."""
  c, r = w0.shape[2:]
  return (w0.reshape(c, r).T, b0.reshape(r, 1), w1.reshape(9, r, r).transpose(0, 2, 1), b1.reshape(r, 1),
          w2.reshape(r, c).T, b2.reshape(c, 1))


def _row_specs(shape, rows: int) -> tuple[pl.BlockSpec, pl.BlockSpec, pl.BlockSpec]:
  """BlockSpecs of (N·H, C, W) rows: a grid step's own `rows`, the two rows above and the two below them (clamped
  to the array; the kernels treat rows outside the image as padding)."""
  n_rows, c, w = shape
  last, per = n_rows // _HALO - 1, rows // _HALO
  return (pl.BlockSpec((rows, c, w), lambda i: (i, 0, 0)),
          pl.BlockSpec((_HALO, c, w), lambda i: (jnp.maximum(i * per - 1, 0), 0, 0)),
          pl.BlockSpec((_HALO, c, w), lambda i: (jnp.minimum((i + 1) * per, last), 0, 0)))


def _call(kernel, x, weights, extras, extra_specs, out_shapes, out_specs, height: int, rows: int, interpret: bool):
  """One pallas_call over the (N·H, C, W) rows in steps of `rows` (plus their halos), weights whole, `extras` with
  their own specs."""
  n_rows, _, w = x.shape
  block, top, bot = _row_specs(x.shape, rows)
  shifts = jnp.stack([jnp.eye(w, k=1, dtype=x.dtype), jnp.eye(w, k=-1, dtype=x.dtype)])  # S₋₁, S₊₁
  args = (x, x, x) + tuple(weights) + (shifts,) + tuple(extras)
  specs = [block, top, bot] + [whole(a.shape) for a in weights] + [whole(shifts.shape)] + list(extra_specs)
  return pl.pallas_call(functools.partial(kernel, height=height, rows=rows), grid=(n_rows // rows,),
                        in_specs=specs, out_specs=out_specs, out_shape=out_shapes, interpret=interpret)(*args)


def _image_spec(c: int, height: int, rows: int) -> pl.BlockSpec:
  """(1, C, 1) per-image vectors (gate, pooled gradient), each grid step seeing its image's."""
  steps_per_image = height // rows
  return pl.BlockSpec((1, c, 1), lambda i: (i // steps_per_image, 0, 0))


def _per_image_sum(partials, n: int):
  """(steps, C, 1) per-step sums → (N, C)."""
  return partials.reshape(n, -1, partials.shape[1]).sum(axis=1)


def _squeeze_excite(pooled, fc0, fc2):
  """(N, C) mean of y → (N, C) gate."""
  return jax.nn.sigmoid(_relu(pooled @ fc0) @ fc2)


def _relu(a):
  return jnp.maximum(a, 0)


def _forward(x, weights, fc0, fc2, height: int, rows: int, interpret: bool):
  n_rows, c, w = x.shape
  n, steps = n_rows // height, n_rows // rows
  sums = _call(_pool_kernel, x, weights, (), (), jax.ShapeDtypeStruct((steps, c, 1), jnp.float32),
               per_step((c, 1)), height, rows, interpret)
  pooled = _per_image_sum(sums, n) / (height * w)
  gate = _squeeze_excite(pooled, fc0.astype(jnp.float32), fc2.astype(jnp.float32))
  out = _call(_apply_kernel, x, weights, (gate[..., None],), (_image_spec(c, height, rows),),
              jax.ShapeDtypeStruct(x.shape, x.dtype), _row_specs(x.shape, rows)[0], height, rows, interpret)
  return out, (pooled, gate)


def _backward(x, weights, fc0, fc2, pooled, gate, dout, height: int, rows: int, interpret: bool):
  n_rows, c, w = x.shape
  n, steps = n_rows // height, n_rows // rows
  block, dtop, dbot = _row_specs(x.shape, rows)
  sums = _call(_gate_grad_kernel, x, weights, (dout,), (block,), jax.ShapeDtypeStruct((steps, c, 1), jnp.float32),
               per_step((c, 1)), height, rows, interpret)
  _, se_vjp = jax.vjp(_squeeze_excite, pooled, fc0.astype(jnp.float32), fc2.astype(jnp.float32))
  dpooled, dfc0, dfc2 = se_vjp(_per_image_sum(sums, n))
  image = _image_spec(c, height, rows)
  dx, *partials = _call(
      _backward_kernel, x, weights, (gate[..., None], (dpooled / (height * w))[..., None], dout, dout, dout),
      (image, image, block, dtop, dbot),
      [jax.ShapeDtypeStruct(x.shape, x.dtype)] + [jax.ShapeDtypeStruct((steps,) + a.shape, jnp.float32)
                                                  for a in weights],
      [block] + [per_step(a.shape) for a in weights], height, rows, interpret)
  dweights = tuple(jnp.sum(p, axis=0).astype(a.dtype) for p, a in zip(partials, weights))
  return dx, dweights, dfc0.astype(fc0.dtype), dfc2.astype(fc2.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _local(x, weights, fc0, fc2, height, rows, interpret):
  """(N·H, C, W) → (N·H, C, W): this device's image rows, channels before width."""
  return _forward(x, weights, fc0, fc2, height, rows, interpret)[0]


def _local_fwd(x, weights, fc0, fc2, height, rows, interpret):
  out, (pooled, gate) = _forward(x, weights, fc0, fc2, height, rows, interpret)
  return out, (x, weights, fc0, fc2, pooled, gate)


def _local_bwd(height, rows, interpret, residuals, dout):
  return _backward(*residuals, dout, height, rows, interpret)


_local.defvjp(_local_fwd, _local_bwd)


def local_context(x: jax.Array, w0: jax.Array, b0: jax.Array, w1: jax.Array, b1: jax.Array, w2: jax.Array,
                  b2: jax.Array, fc0: jax.Array, fc2: jax.Array, *, mesh: jax.sharding.Mesh | None = None,
                  interpret: bool = False, rows: int | None = None) -> jax.Array:
  """The LCE's output y ⊙ gate.

  Args:
    x: (N, H, W, C) the block's LayerNorm-1 output; H even.
    w0, b0: (1, 1, C, r), (r,) the 1×1 squeeze conv (HWIO).
    w1, b1: (3, 3, r, r), (r,) the 3×3 conv (zero padding 1).
    w2, b2: (1, 1, r, C), (C,) the 1×1 expand conv.
    fc0, fc2: (C, r), (r, C) the gate's Linear layers (no bias).
    mesh: a ('data',) mesh the images are split over (the kernels run on each device's own images), or None.
    interpret: run the kernels in Pallas's interpreter (any backend).
    rows: image rows per grid step (even, dividing H); default `rows_per_step(H, W)`.
  Returns:
    (N, H, W, C) in the dtype of x; everything inside the kernels in f32.
  """
  _, h, w, _ = x.shape
  rows = rows or rows_per_step(h, w)
  if rows % _HALO or h % rows:
    raise ValueError(f'lce_tpu: rows={rows} must be even and divide the image height {h}')

  def run(x, convs, fc0, fc2):
    return from_image_rows(_local(image_rows(x), _kernel_weights(*convs), fc0, fc2, h, rows, interpret), h)

  return per_device(run, mesh, x, (w0, b0, w1, b1, w2, b2), fc0, fc2)
