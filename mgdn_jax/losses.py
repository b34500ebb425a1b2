"""Training losses of MGDN (paper §3.2.3 and §3.4): L1, μ-law L1 and the masked MI loss.

Reconstruction terms:
  * `l1_loss` — ‖I_o − GT‖₁ with mean reduction (MEF, MFF, GDSR).
  * `mu_law_l1_loss` — the official HDR 'mapped_L1': L1 between μ-law tonemapped (`tonemap.mu_law_jax`)
    prediction and target.

Masked MI loss (paper eqs. 3–6; the official release has no code for it, so this is a reconstruction):
for every stage n and every stream pair (i, j)
  S_k  = conv1x1_{n,k}(C_k^n)                                  one map per stream and stage, (N, H, W, 1)
  GM   = sigmoid(convs_n([sobel(S_i), sobel(S_j)]))            soft mask of shared structure, (N, H, W, 1)
  T_k  = S_k · (1 − GM)                                        eq. 3: the uncommon parts
  MaskMI = 2 · (1 − H(v_i, v_j) / (H(v_i) + H(v_j)))           eq. 4: normalised MI (symmetric uncertainty)
where v_k are the values of T_k, min–max normalised per image to [0, 1], and the entropies come from a
differentiable soft joint histogram of the paired values (see `normalized_mutual_information`).

Reading of eq. 4: `−Σ v1 log v2 − KL(v1‖v2) = −Σ v1 log v2 − Σ v1 log v1 + Σ v1 log v2 = −Σ v1 log v1`, i.e. the
paper's "KL-based" marginal entropy is just the Shannon entropy of v1. A joint entropy needs a joint distribution,
which the paper never defines; the natural one for "paired pixel values" is the (Parzen-smoothed) joint histogram,
whose marginals then give H(v1), H(v2) consistently, so that 0 ≤ MaskMI ≤ 1 holds exactly.
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from mgdn_jax import tonemap
from mgdn_jax.kernels import KernelConv

_EPS = 1e-6


def l1_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error over all elements, computed in float32. pred, target: same shape, e.g. (N, H, W, C)."""
  _check_same_shape(pred, target, 'l1_loss')
  return jnp.mean(jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32)))


def mu_law_l1_loss(pred: jax.Array, target: jax.Array, mu: float = tonemap.MU) -> jax.Array:
  """L1 between μ-law tonemapped pred and target, mean reduction (the official HDR 'mapped_L1')."""
  _check_same_shape(pred, target, 'mu_law_l1_loss')
  return jnp.mean(jnp.abs(tonemap.mu_law_jax(pred, mu) - tonemap.mu_law_jax(target, mu)))


def mi_pairs(guidance: str, num_streams: int, reference_stream: int = 0) -> tuple[tuple[int, int], ...]:
  """Stream pairs the masked MI loss is computed on.

  'mutual': every pair (i, j) with i < j (K=2 → ((0, 1),), paper eq. 5).
  'reference': the reference stream r with every other stream, ((r, k) for k ≠ r) (HDR: ((1, 0), (1, 2)), eq. 6).
  """
  if num_streams < 2:
    raise ValueError(f'losses.mi_pairs: num_streams must be >= 2, got {num_streams}')
  if guidance == 'mutual':
    return tuple((i, j) for i in range(num_streams) for j in range(i + 1, num_streams))
  if guidance == 'reference':
    if not 0 <= reference_stream < num_streams:
      raise ValueError(f'losses.mi_pairs: reference_stream={reference_stream} not in [0, {num_streams})')
    return tuple((reference_stream, k) for k in range(num_streams) if k != reference_stream)
  raise ValueError(f"losses.mi_pairs: guidance must be 'mutual' or 'reference', got {guidance!r}")


def sobel_gradients(x: jax.Array) -> jax.Array:
  """|∂x/∂h| + |∂x/∂w| with the 3×3 Sobel kernels, edge-padded so borders carry no fake edges.

  The L1 form (not the Euclidean magnitude) keeps the gradient finite where both derivatives vanish.
  x: (N, H, W, 1) → (N, H, W, 1), float32.
  """
  xp = jnp.pad(x.astype(jnp.float32), ((0, 0), (1, 1), (1, 1), (0, 0)), mode='edge')
  h, w = x.shape[1], x.shape[2]
  tap = lambda dy, dx: xp[:, dy:dy + h, dx:dx + w, :]  # noqa: E731 — shifted view, dy/dx in {0, 1, 2}
  # Sobel = derivative [-1, 0, 1] along one axis ⊗ smoothing [1, 2, 1] along the other.
  gx = sum(s * (tap(dy, 2) - tap(dy, 0)) for dy, s in ((0, 1.), (1, 2.), (2, 1.)))
  gy = sum(s * (tap(2, dx) - tap(0, dx)) for dx, s in ((0, 1.), (1, 2.), (2, 1.)))
  return jnp.abs(gx) + jnp.abs(gy)


def soft_joint_histogram(v1: jax.Array, v2: jax.Array, num_bins: int, bandwidth: float) -> jax.Array:
  """Parzen (Gaussian-kernel) joint histogram of paired values in [0, 1].

  Each value spreads unit mass over `num_bins` bin centres (b + 0.5) / num_bins with a Gaussian of std
  `bandwidth` (softmax over bins, so the mass is exactly 1 even when far kernels underflow). The joint is a batched
  matmul of the (N, bins, P) × (N, P, bins) weights: memory O(N·P·bins), never O(N·P·bins²).
  v1, v2: (N, P) → (N, bins, bins), each image's histogram sums to 1.
  """
  centres = (jnp.arange(num_bins, dtype=jnp.float32) + 0.5) / num_bins
  def weights(v):
    return jax.nn.softmax(-0.5 * jnp.square((v[..., None] - centres) / bandwidth), axis=-1)  # (N, P, bins)
  w1, w2 = weights(v1), weights(v2)
  return jnp.einsum('npa,npb->nab', w1, w2, precision=jax.lax.Precision.HIGHEST) / v1.shape[1]


def _entropy(p: jax.Array, axes) -> jax.Array:
  # max() keeps log finite (and its gradient too) for empty bins; 0·log(tiny) = 0.
  return -jnp.sum(p * jnp.log(jnp.maximum(p, 1e-12)), axis=axes)


def normalized_mutual_information(v1: jax.Array, v2: jax.Array, *, num_bins: int = 32,
                                  bandwidth: float | None = None) -> jax.Array:
  """Differentiable NMI 2·(1 − H(v1,v2)/(H(v1)+H(v2))) = 2·I/(H(v1)+H(v2)) per image, in [0, 1].

  v1, v2: (N, P) values in [0, 1] (paired pixels). bandwidth: kernel std in value units; None → 0.5 / num_bins
  (half a bin: a value's mass stays on ~3 bins, little smoothing bias, still a smooth function of the value).
  The mutual information I is clipped at 0 against round-off and the denominator gets an ε, so two constant maps
  (zero entropy) give 0, not NaN. Returns (N,).
  """
  if bandwidth is None:
    bandwidth = 0.5 / num_bins
  joint = soft_joint_histogram(v1, v2, num_bins, bandwidth)
  h1 = _entropy(jnp.sum(joint, axis=2), -1)
  h2 = _entropy(jnp.sum(joint, axis=1), -1)
  h12 = _entropy(joint, (-2, -1))
  mi = jnp.maximum(h1 + h2 - h12, 0.)
  return 2. * mi / (h1 + h2 + _EPS)


def _minmax_per_image(v: jax.Array) -> jax.Array:
  """(N, P) → (N, P) in [0, 1]. Scale- and shift-invariant, so the mask cannot lower the loss just by shrinking T."""
  lo = jnp.min(v, axis=1, keepdims=True)
  hi = jnp.max(v, axis=1, keepdims=True)
  return (v - lo) / (hi - lo + _EPS)


def _subsample(x: jax.Array, max_samples: int | None) -> jax.Array:
  """(N, H, W, 1) → (N, P) with P ≤ max_samples: the same fixed spatial stride on both axes (deterministic)."""
  h, w = x.shape[1], x.shape[2]
  if max_samples is not None and h * w > max_samples:
    s = max(1, math.ceil(math.sqrt(h * w / max_samples)))
    while math.ceil(h / s) * math.ceil(w / s) > max_samples:
      s += 1
    x = x[:, ::s, ::s, :]
  return x.reshape(x.shape[0], -1)


class GradientMask(nnx.Module):
  """GM = sigmoid(convs([sobel(S_i), sobel(S_j)])): several 3×3 convs + leaky ReLU, a 3×3 conv to 1 channel,
  sigmoid. (N, H, W, 1) ×2 → (N, H, W, 1) in (0, 1)."""

  def __init__(self, hidden: int, num_layers: int, *, rngs: nnx.Rngs):
    chans = [2] + [hidden] * (num_layers - 1) + [1]
    self.convs = nnx.List([
        KernelConv(cin, cout, (3, 3), padding='SAME', dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)
        for cin, cout in zip(chans[:-1], chans[1:])])

  def __call__(self, s1: jax.Array, s2: jax.Array) -> jax.Array:
    x = jnp.concatenate([sobel_gradients(s1), sobel_gradients(s2)], axis=-1)
    for i, conv in enumerate(self.convs):
      x = conv(x)
      if i < len(self.convs) - 1:
        x = jax.nn.leaky_relu(x, 0.2)
    return jax.nn.sigmoid(x)


class MaskedMILoss(nnx.Module):
  """Masked MI loss Σ_stages Σ_pairs MaskMI(S_i^n, S_j^n) (paper §3.2.3, eqs. 3–6), with trainable parameters.

  Parameters (float32; they train jointly with the model): one 1×1 conv C→1 per stream per stage and one
  `GradientMask` per stage (shared by the pairs of that stage). Pipeline per stage n and pair (i, j):
    S_k = conv1x1(C_k^n); GM = GradientMask(S_i, S_j) (Sobel |gx|+|gy| of each map, edge-padded, as 2 channels);
    T_k = S_k·(1 − GM);
    v_k = min–max(T_k) per image over a fixed strided subset of ≤ max_samples pixels (the same pixels for both);
    MaskMI = mean over the batch of `normalized_mutual_information(v_i, v_j)` (soft joint histogram, ∈ [0, 1]).
  Per-image min–max (rather than a sigmoid) makes the estimate invariant to the scale of T, so neither the
  projections nor the mask can reach a low loss by driving T towards a constant. Nothing in the paper stops the
  mask from learning other loss-lowering patterns, though: watch `gradient_masks` (e.g. its mean) in training.
  Values: NMI(x, x) ≈ 0.70 (Parzen smoothing at the default bandwidth), independent maps ≈ 0 plus a plug-in bias
  below the hard-histogram one, (bins−1)²/(2P·ln bins) (measured ≈0.003 at 32 bins, P = 16384; ≈0.04 at P = 1024).

  Args:
    channels: C, channels of every MGDF output.
    num_stages: N, stages in S.
    pairs: stream pairs, e.g. `mi_pairs(cfg.guidance, cfg.num_streams, cfg.reference_stream)`.
    num_streams: K, streams per stage in S; None → 1 + the largest index in `pairs`.
    num_bins: histogram bins per axis.
    bandwidth: Gaussian kernel std in [0, 1] value units; None → 0.5 / num_bins.
    mask_hidden: width of the mask network's hidden convs.
    mask_layers: number of 3×3 convs in the mask network (≥ 2).
    max_samples: at most this many pixels per image enter the histogram (None: all).
  """

  def __init__(self, channels: int, num_stages: int, pairs: Sequence[tuple[int, int]], *,
               num_streams: int | None = None, num_bins: int = 32, bandwidth: float | None = None,
               mask_hidden: int = 16, mask_layers: int = 3, max_samples: int | None = 16384,
               rngs: nnx.Rngs):
    pairs = tuple((int(i), int(j)) for i, j in pairs)
    if not pairs:
      raise ValueError('losses.MaskedMILoss: pairs is empty')
    if num_streams is None:
      num_streams = 1 + max(max(p) for p in pairs)
    for i, j in pairs:
      if i == j or not (0 <= i < num_streams and 0 <= j < num_streams):
        raise ValueError(f'losses.MaskedMILoss: bad pair {(i, j)} for num_streams={num_streams}')
    if channels < 1 or num_stages < 1 or num_bins < 2 or mask_layers < 2:
      raise ValueError(f'losses.MaskedMILoss: need channels>=1, num_stages>=1, num_bins>=2, mask_layers>=2, got '
                       f'{channels}, {num_stages}, {num_bins}, {mask_layers}')
    if bandwidth is not None and bandwidth <= 0:
      raise ValueError(f'losses.MaskedMILoss: bandwidth must be > 0, got {bandwidth}')
    if max_samples is not None and max_samples < 2:
      raise ValueError(f'losses.MaskedMILoss: max_samples must be >= 2 or None, got {max_samples}')
    self.channels, self.num_stages, self.num_streams = channels, num_stages, num_streams
    self.pairs, self.num_bins, self.max_samples = pairs, num_bins, max_samples
    self.bandwidth = 0.5 / num_bins if bandwidth is None else float(bandwidth)
    # Flat list: projection of stream k at stage n is proj[n * num_streams + k].
    self.proj = nnx.List([
        KernelConv(channels, 1, (1, 1), dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)  # 1×1 as a matmul
        for _ in range(num_stages * num_streams)])
    self.mask = nnx.List([GradientMask(mask_hidden, mask_layers, rngs=rngs) for _ in range(num_stages)])

  def _check(self, S) -> None:
    if not isinstance(S, (list, tuple)) or len(S) != self.num_stages:
      got = len(S) if isinstance(S, (list, tuple)) else type(S).__name__
      raise ValueError(f'losses.MaskedMILoss: S must be a list of {self.num_stages} stages, got {got}')
    for n, stage in enumerate(S):
      if not isinstance(stage, (list, tuple)) or len(stage) != self.num_streams:
        got = len(stage) if isinstance(stage, (list, tuple)) else type(stage).__name__
        raise ValueError(f'losses.MaskedMILoss: stage {n} must hold {self.num_streams} streams, got {got}')
      for k, x in enumerate(stage):
        if x.ndim != 4 or x.shape[-1] != self.channels:
          raise ValueError(f'losses.MaskedMILoss: S[{n}][{k}] must be (N, H, W, {self.channels}), got {x.shape}')
        if x.shape != stage[0].shape:
          raise ValueError(f'losses.MaskedMILoss: S[{n}][{k}] shape {x.shape} != S[{n}][0] shape {stage[0].shape}')

  def masked_nmi(self, stage: int, c_i: jax.Array, c_j: jax.Array, i: int, j: int) -> jax.Array:
    """NMI of the masked one-channel maps of streams i, j at one stage. c_*: (N, H, W, C) → (N,)."""
    s_i = self.proj[stage * self.num_streams + i](c_i.astype(jnp.float32))
    s_j = self.proj[stage * self.num_streams + j](c_j.astype(jnp.float32))
    keep = 1. - self.mask[stage](s_i, s_j)
    v_i = _minmax_per_image(_subsample(s_i * keep, self.max_samples))
    v_j = _minmax_per_image(_subsample(s_j * keep, self.max_samples))
    return normalized_mutual_information(v_i, v_j, num_bins=self.num_bins, bandwidth=self.bandwidth)

  def gradient_masks(self, S) -> list[tuple[jax.Array, ...]]:
    """GM per stage and pair, for monitoring/visualisation: list over stages of tuples over `pairs` of (N,H,W,1)."""
    self._check(S)
    out = []
    for n, stage in enumerate(S):
      s = [self.proj[n * self.num_streams + k](x.astype(jnp.float32)) for k, x in enumerate(stage)]
      out.append(tuple(self.mask[n](s[i], s[j]) for i, j in self.pairs))
    return out

  def __call__(self, S) -> jax.Array:
    """S: list over stages of tuples of K arrays (N, H, W, C) (any float dtype) → float32 scalar ≥ 0."""
    self._check(S)
    total = jnp.zeros((), jnp.float32)
    for n, stage in enumerate(S):
      for i, j in self.pairs:
        total = total + jnp.mean(self.masked_nmi(n, stage[i], stage[j], i, j))
    return total


def _check_same_shape(a: jax.Array, b: jax.Array, name: str) -> None:
  if a.shape != b.shape:
    raise ValueError(f'losses.{name}: pred shape {a.shape} != target shape {b.shape}')
