"""MGDF: mutual-guided dynamic filter (MGDN §3.2; `DeepMuGIF` / `HDR_DeepMuGIF` of the official code).

For every filtered stream k a kernel volume is predicted from the MGCA output and applied as a per-pixel 7×7
filter to the stream's own features, then a 1×1 conv + LeakyReLU(0.1) (MGDN_REFERENCE §4.4–4.5).

Guidance, generalised from the official 2- and 3-input classes to K ≥ 2 streams:
* 'mutual' (MEF, MFF, GDSR): stream k is filtered with kernels from MGCA(guide=F_k, other=F_other); for K = 2
  F_other is the other stream (exactly the official net), for K > 2 the mean of the other streams' features.
* 'reference' (HDR): streams k ≠ r are filtered with kernels from MGCA(guide=F_r, other=F_k); the reference
  stream r is not filtered but passes two 3×3 conv + LeakyReLU(0.1) (`conv_ref`). K = 3, r = 1 is the official net.
With `dynamic_filter=False` (Table 5 ablation) the predictor's last 1×1 conv emits C features that are used
directly: the same static conv stack in place of per-pixel filtering.
"""
import jax
import jax.numpy as jnp
from flax import nnx

from mgdn_jax.layers.common import conv, leaky_relu
from mgdn_jax.layers.mgca import MGCA
from mgdn_jax.ops import dynamic_filter


class KernelPredictor(nnx.Module):
  """3×3 conv → LReLU(0.1) → 3×3 conv → LReLU(0.1) → 1×1 conv.  (N,H,W,C) → (N,H,W,out), raw (no softmax)."""

  def __init__(self, dim: int, out_ch: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
    self.conv0 = conv(dim, dim, 3, rngs=rngs, dtype=dtype)
    self.conv1 = conv(dim, dim, 3, rngs=rngs, dtype=dtype)
    self.conv2 = conv(dim, out_ch, 1, rngs=rngs, dtype=dtype)

  def __call__(self, g: jax.Array) -> jax.Array:
    return self.conv2(leaky_relu(self.conv1(leaky_relu(self.conv0(g), 0.1)), 0.1))


class MGDF(nnx.Module):
  """__call__(feats: K × (N,H,W,C)) → K × (N,H,W,C) MGDF outputs (the paper's C_kⁿ, the MI loss's inputs)."""

  def __init__(self, dim: int, num_streams: int, *, guidance: str = "mutual", reference_stream: int = 0,
               mgca_heads: int = 6, kernel_size: int = 7, attention: str = "cross", dynamic: bool = True,
               rngs: nnx.Rngs, dtype=jnp.float32):
    if guidance not in ("mutual", "reference"):
      raise ValueError(f"guidance must be 'mutual' or 'reference', got {guidance!r}")
    if attention not in ("cross", "self"):
      raise ValueError(f"attention must be 'cross' or 'self', got {attention!r}")
    self.num_streams = num_streams
    self.guidance = guidance
    self.reference_stream = reference_stream
    self.kernel_size = kernel_size
    self.attention = attention
    self.dynamic = dynamic
    self.filtered = tuple(k for k in range(num_streams) if guidance == "mutual" or k != reference_stream)
    out_ch = kernel_size * kernel_size if dynamic else dim
    self.mgca = MGCA(dim, mgca_heads, rngs=rngs, dtype=dtype)
    self.predictors = nnx.List([KernelPredictor(dim, out_ch, rngs=rngs, dtype=dtype) for _ in self.filtered])
    self.conv_out = nnx.List([conv(dim, dim, 1, rngs=rngs, dtype=dtype) for _ in self.filtered])
    if guidance == "reference":
      self.conv_ref0 = conv(dim, dim, 3, rngs=rngs, dtype=dtype)
      self.conv_ref1 = conv(dim, dim, 3, rngs=rngs, dtype=dtype)

  def _guide_and_other(self, feats, k):
    if self.attention == "self":
      return feats[k], feats[k]
    if self.guidance == "reference":
      return feats[self.reference_stream], feats[k]
    others = [f for i, f in enumerate(feats) if i != k]
    other = others[0] if len(others) == 1 else sum(others[1:], others[0]) / len(others)
    return feats[k], other

  def __call__(self, feats):
    if len(feats) != self.num_streams:
      raise ValueError(f"MGDF built for {self.num_streams} streams got {len(feats)}")
    outs = list(feats)
    for idx, k in enumerate(self.filtered):
      guide, other = self._guide_and_other(feats, k)
      kernels = self.predictors[idx](self.mgca(guide, other))
      y = dynamic_filter(feats[k], kernels, self.kernel_size) if self.dynamic else kernels
      outs[k] = leaky_relu(self.conv_out[idx](y), 0.1)
    if self.guidance == "reference":
      r = self.reference_stream
      outs[r] = leaky_relu(self.conv_ref1(leaky_relu(self.conv_ref0(feats[r]), 0.1)), 0.1)
    return tuple(outs)
