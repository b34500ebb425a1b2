"""Channel ("transposed") attention of Restormer, used by MGCA (MGDN §3.2.1).

Attention runs over channels, not tokens: per head a (d × d) map from L2-normalised queries and keys over all
H·W positions, so the cost is linear in the number of pixels.
"""
import jax
import jax.numpy as jnp


def _l2_normalize(x: jax.Array, axis: int) -> jax.Array:
  # Same as torch.nn.functional.normalize: x / max(‖x‖₂, 1e-12).
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x / jnp.maximum(norm, 1e-12)


def channel_attention(q: jax.Array, k: jax.Array, v: jax.Array, temperature: jax.Array,
                      num_heads: int) -> jax.Array:
  """softmax(q̂ k̂ᵀ · temperature) v with per-head temperature, over the channel axis.

  Args:
    q, k, v: (N, H, W, C); channel c belongs to head c // (C / num_heads).
    temperature: (num_heads,) learnable scale that multiplies the logits.
    num_heads: number of heads h; d = C / h.
  Returns:
    (N, H, W, C) in the dtype of v; logits, normalisation and softmax are computed in f32.
  """
  n, hh, ww, c = q.shape
  if c % num_heads:
    raise ValueError(f"channel_attention: {c} channels do not split into {num_heads} heads")
  d = c // num_heads
  split = lambda t: t.reshape(n, hh * ww, num_heads, d)
  qf = _l2_normalize(split(q).astype(jnp.float32), axis=1)
  kf = _l2_normalize(split(k).astype(jnp.float32), axis=1)
  logits = jnp.einsum("nphd,nphe->nhde", qf, kf) * temperature.astype(jnp.float32)[None, :, None, None]
  attn = jax.nn.softmax(logits, axis=-1)
  out = jnp.einsum("nhde,nphe->nphd", attn.astype(v.dtype), split(v),
                   preferred_element_type=jnp.float32)
  return out.reshape(n, hh, ww, c).astype(v.dtype)
