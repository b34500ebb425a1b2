"""One MGDN stage: MGDF, then PFF on the merged features, then per-stream re-injection (MGDN_REFERENCE §4.1–4.2).

No stage-level residual: each stream's next input is a 1×1 conv of cat(PFF output, that stream's MGDF output).
"""
import jax
import jax.numpy as jnp
from flax import nnx

from mgdn_jax.layers.common import conv
from mgdn_jax.layers.mgdf import MGDF
from mgdn_jax.layers.pff import PFFBlock


class Stage(nnx.Module):
  """__call__(feats: K × (N,H,W,C), rng) → (K × (N,H,W,C) next features, K × (N,H,W,C) MGDF outputs)."""

  def __init__(self, dim: int, num_streams: int, depth: int, num_heads: int, window_size: int,
               mlp_ratio: float, drop_path_rates, *, guidance: str, reference_stream: int, mgca_heads: int,
               kernel_size: int, attention: str, dynamic_filter: bool, rngs: nnx.Rngs, dtype=jnp.float32):
    self.mgdf = MGDF(dim, num_streams, guidance=guidance, reference_stream=reference_stream,
                     mgca_heads=mgca_heads, kernel_size=kernel_size, attention=attention,
                     dynamic=dynamic_filter, rngs=rngs, dtype=dtype)
    self.adjust_channel = conv(num_streams * dim, dim, 1, rngs=rngs, dtype=dtype)
    self.blocks = nnx.List([
        PFFBlock(dim, num_heads, window_size, 0 if j % 2 == 0 else window_size // 2, mlp_ratio,
                 float(drop_path_rates[j]), rngs=rngs, dtype=dtype) for j in range(depth)])
    self.dilated_conv = conv(dim, dim, 3, dilation=2, rngs=rngs, dtype=dtype)
    self.adjust_out = nnx.List([conv(2 * dim, dim, 1, rngs=rngs, dtype=dtype) for _ in range(num_streams)])

  def __call__(self, feats, rng: jax.Array | None = None):
    outs = self.mgdf(feats)
    x = self.adjust_channel(jnp.concatenate(outs, axis=-1))
    rngs = jax.random.split(rng, len(self.blocks)) if rng is not None else [None] * len(self.blocks)
    for block, block_rng in zip(self.blocks, rngs):
      x = block(x, block_rng)
    r = self.dilated_conv(x)
    nxt = tuple(adj(jnp.concatenate([r, o], axis=-1)) for adj, o in zip(self.adjust_out, outs))
    return nxt, outs
