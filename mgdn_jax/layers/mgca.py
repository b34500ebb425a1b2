"""MGCA: mutual-guided cross attention (MGDN §3.2.1; `CrossTransAttention`, attribute `TCA`, of the official code).

As the official code computes it (MGDN_REFERENCE §4.3, §15): the query comes from the guide stream, keys and
values from the other stream; no LayerNorm, no residual, no √d scale — a learnable per-head temperature multiplies
the logits of the L2-normalised channel attention. One module per stage serves every guidance direction.
With `attention='self'` (the Table 5 ablation) q, k and v all come from the same stream: plain transposed
self-attention with the same parameters.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from mgdn_jax.layers.common import conv
from mgdn_jax.ops import channel_attention


class MGCA(nnx.Module):
  """Channel cross-attention.  __call__(guide (N,H,W,C), other (N,H,W,C)) → (N,H,W,C)."""

  def __init__(self, dim: int, num_heads: int = 6, *, rngs: nnx.Rngs, dtype=jnp.float32):
    if dim % num_heads:
      raise ValueError(f"MGCA: embed_dim {dim} must be divisible by mgca_heads {num_heads}")
    self.num_heads = num_heads
    self.temperature = nnx.Param(jnp.ones((num_heads,), jnp.float32))
    self.q = conv(dim, dim, 1, rngs=rngs, dtype=dtype)
    self.q_dwconv = conv(dim, dim, 3, groups=dim, rngs=rngs, dtype=dtype)
    self.kv = conv(dim, 2 * dim, 1, rngs=rngs, dtype=dtype)
    self.kv_dwconv = conv(2 * dim, 2 * dim, 3, groups=2 * dim, rngs=rngs, dtype=dtype)
    self.project_out = conv(dim, dim, 1, rngs=rngs, dtype=dtype)

  def __call__(self, guide: jax.Array, other: jax.Array) -> jax.Array:
    q = self.q_dwconv(self.q(guide))
    k, v = jnp.split(self.kv_dwconv(self.kv(other)), 2, axis=-1)  # kv channels are [K | V]
    return self.project_out(channel_attention(q, k, v, self.temperature[...], self.num_heads))

