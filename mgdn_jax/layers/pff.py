"""PFF: parallel feature fusion (MGDN §3.3) — HDR-Transformer's context-aware transformer block, NHWC.

A (shifted-)window self-attention + MLP branch (global) runs in parallel with a local context extractor (conv +
channel attention) that sees the LayerNorm-1 output; the LCE output is added after both residuals
(MGDN_REFERENCE §5).
"""
import jax
import jax.numpy as jnp
from flax import nnx

from mgdn_jax import kernels
from mgdn_jax.kernels import attention_tpu, gelu, lce_tpu, mlp_tpu
from mgdn_jax.layers.common import conv, drop_path, layer_norm, leaky_relu, linear, normal_02
from mgdn_jax.ops import (relative_position_index, shift_attention_mask, window_attention, window_partition,
                          window_reverse)


class WindowAttention(nnx.Module):
  """W-MSA with relative position bias.  (N, nW, T, C) windows (+ optional (nW, T, T) mask) → same shape.

  `pff_kernels` picks how it runs ('xla': the Linear layers and `ops.window_attention`; 'pallas_tpu': the whole
  layer as one Pallas kernel per direction, `kernels.attention_tpu`, over the images split across `mesh`);
  `use_kernels` sets both (the training step does, from its plan).
  """

  def __init__(self, dim: int, window_size: int, num_heads: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    if dim % num_heads:
      raise ValueError(f"WindowAttention: embed_dim {dim} must be divisible by num_heads {num_heads}")
    self.num_heads = num_heads
    self.window_size = window_size
    self.scale = (dim // num_heads) ** -0.5
    self.relative_position_bias_table = nnx.Param(
        normal_02(rngs.params(), ((2 * window_size - 1) ** 2, num_heads), jnp.float32))
    self.qkv = linear(dim, 3 * dim, rngs=rngs, dtype=dtype)
    self.proj = linear(dim, dim, rngs=rngs, dtype=dtype)
    self.pff_kernels = kernels.XLA
    self.mesh = None

  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    n, nw, t, c = x.shape
    hd = c // self.num_heads
    index = relative_position_index(self.window_size).reshape(-1)
    bias = self.relative_position_bias_table[...][index].reshape(t, t, self.num_heads).transpose(2, 0, 1)
    if self.pff_kernels == kernels.PALLAS_TPU:
      dtype = self.qkv.dtype or x.dtype
      weights = [p[...].astype(dtype) for p in (self.qkv.kernel, self.qkv.bias, self.proj.kernel, self.proj.bias)]
      return attention_tpu.window_attention_block(
          x.astype(dtype), weights[0], weights[1], bias, mask, weights[2], weights[3], num_heads=self.num_heads,
          scale=self.scale, mesh=self.mesh, interpret=_interpret(self.mesh))
    # qkv channels are [q | k | v], each head-major; one transpose gives all three as (N, nW, heads, T, hd).
    q, k, v = self.qkv(x).reshape(n, nw, t, 3, self.num_heads, hd).transpose(3, 0, 1, 4, 2, 5)
    out = window_attention(q * self.scale, k, v, bias, mask)  # (N, nW, heads, T, hd)
    return self.proj(out.transpose(0, 1, 3, 2, 4).reshape(n, nw, t, c))


def _interpret(mesh: jax.sharding.Mesh | None) -> bool:
  """Off a TPU mesh the Pallas kernels run in Pallas's interpreter: for tests, not speed."""
  return mesh is None or mesh.devices.flat[0].platform != 'tpu'


def use_kernels(module: nnx.Module, pff_kernels: str, mesh: jax.sharding.Mesh | None = None) -> None:
  """Sets how every PFF block in `module` runs its window attention, MLP and LCE: `pff_kernels` in
  kernels.PFF_KERNELS, over `mesh`'s devices."""
  if pff_kernels not in kernels.PFF_KERNELS:
    raise ValueError(f'pff_kernels={pff_kernels!r}: must be one of {kernels.PFF_KERNELS}')
  module.set_attributes(PFFBlock, WindowAttention, LocalContextExtractor, pff_kernels=pff_kernels, mesh=mesh,
                        raise_if_not_found=False)


class LocalContextExtractor(nnx.Module):
  """LCE: 1×1 (C→r) → 3×3 (r→r) → 1×1 (r→C) → LReLU(0.2), times a squeeze-excitation gate; r = C // 8.

  (N, H, W, C) → (N, H, W, C). With `pff_kernels` 'pallas_tpu' (`use_kernels`) it runs as `kernels.lce_tpu`.
  """

  def __init__(self, dim: int, reduction: int = 8, *, rngs: nnx.Rngs, dtype=jnp.float32):
    r = dim // reduction
    if r < 1:
      raise ValueError(f"LocalContextExtractor: embed_dim {dim} // {reduction} must be ≥ 1")
    self.conv0 = conv(dim, r, 1, rngs=rngs, dtype=dtype)
    self.conv1 = conv(r, r, 3, rngs=rngs, dtype=dtype)
    self.conv2 = conv(r, dim, 1, rngs=rngs, dtype=dtype)
    self.fc0 = linear(dim, r, use_bias=False, rngs=rngs, dtype=dtype)
    self.fc2 = linear(r, dim, use_bias=False, rngs=rngs, dtype=dtype)
    self.pff_kernels = kernels.XLA
    self.mesh = None

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.pff_kernels == kernels.PALLAS_TPU:
      dtype = self.conv0.dtype or x.dtype
      params = (self.conv0.kernel, self.conv0.bias, self.conv1.kernel, self.conv1.bias, self.conv2.kernel,
                self.conv2.bias, self.fc0.kernel, self.fc2.kernel)
      return lce_tpu.local_context(x.astype(dtype), *(p[...].astype(dtype) for p in params), mesh=self.mesh,
                                   interpret=_interpret(self.mesh))
    y = leaky_relu(self.conv2(self.conv1(self.conv0(x))), 0.2)
    pooled = jnp.mean(y.astype(jnp.float32), axis=(1, 2)).astype(y.dtype)
    gate = jax.nn.sigmoid(self.fc2(jax.nn.relu(self.fc0(pooled))))
    return y * gate[:, None, None, :]


class Mlp(nnx.Module):
  def __init__(self, dim: int, hidden: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    self.fc1 = linear(dim, hidden, rngs=rngs, dtype=dtype)
    self.fc2 = linear(hidden, dim, rngs=rngs, dtype=dtype)

  def __call__(self, x):
    return self.fc2(gelu(self.fc1(x)))


class PFFBlock(nnx.Module):
  """Context-aware transformer block.  (N,H,W,C) → (N,H,W,C); H, W multiples of the window size.

  With `pff_kernels` 'pallas_tpu' (`use_kernels`) the MLP branch, LayerNorm 2 included, is one Pallas kernel per
  direction (`kernels.mlp_tpu`), as is the window attention; the LCE is two (`kernels.lce_tpu`).
  """

  def __init__(self, dim: int, num_heads: int, window_size: int, shift: int, mlp_ratio: float,
               drop_path_rate: float, *, rngs: nnx.Rngs, dtype=jnp.float32):
    self.window_size = window_size
    self.shift = shift
    self.drop_path_rate = drop_path_rate
    self.norm1 = layer_norm(dim, rngs=rngs, dtype=dtype)
    self.attn = WindowAttention(dim, window_size, num_heads, rngs=rngs, dtype=dtype)
    self.norm2 = layer_norm(dim, rngs=rngs, dtype=dtype)
    self.mlp = Mlp(dim, int(dim * mlp_ratio), rngs=rngs, dtype=dtype)
    self.lce = LocalContextExtractor(dim, rngs=rngs, dtype=dtype)
    self.pff_kernels = kernels.XLA
    self.mesh = None

  def __call__(self, x: jax.Array, rng: jax.Array | None = None) -> jax.Array:
    _, h, w, _ = x.shape
    ws, s = self.window_size, self.shift
    u = self.norm1(x)
    local_in = u  # the LCE sees the normalised tokens
    mask = None
    if s:
      u = jnp.roll(u, (-s, -s), axis=(1, 2))
      mask = jnp.asarray(shift_attention_mask(h, w, ws, s))
    a = window_reverse(self.attn(window_partition(u, ws), mask), ws, h, w)
    if s:
      a = jnp.roll(a, (s, s), axis=(1, 2))
    rng_attn, rng_mlp = jax.random.split(rng) if rng is not None else (None, None)
    x = x + drop_path(a, self.drop_path_rate, rng_attn)
    x = x + drop_path(self._mlp_branch(x), self.drop_path_rate, rng_mlp)
    return x + self.lce(local_in)

  def _mlp_branch(self, x: jax.Array) -> jax.Array:
    if self.pff_kernels != kernels.PALLAS_TPU:
      return self.mlp(self.norm2(x))
    dtype = self.mlp.fc1.dtype or x.dtype
    layers = (self.norm2.scale, self.norm2.bias, self.mlp.fc1.kernel, self.mlp.fc1.bias, self.mlp.fc2.kernel,
              self.mlp.fc2.bias)
    return mlp_tpu.layer_norm_mlp(x.astype(dtype), *(p[...].astype(dtype) for p in layers), mesh=self.mesh,
                                  interpret=_interpret(self.mesh))
