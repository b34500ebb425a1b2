"""MGDN: Mutual-Guided Dynamic Network for image fusion (Guan et al., ACM MM 2023), one model for all tasks.

K input streams (K ≥ 2) of C_k channels → input 3×3 convs → N stages (MGDF + PFF) → 3×3 conv on the
concatenated stream features + LReLU(0.2) + global skip (one stream's input feature) → 3×3 conv → sigmoid.
Inputs are reflect-padded at the bottom/right to a multiple of the window size and the output is cropped back
(MGDN_REFERENCE §3). Presets reproduce the official per-task networks exactly (parameter counts in comments:
the official "used by forward" counts).
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from mgdn_jax.layers import Stage
from mgdn_jax.layers.common import conv, leaky_relu
from mgdn_jax.ops import pad_to_multiple

_FUSION = dict(num_streams=2, in_channels=(3, 3), out_channels=3, guidance="mutual", reference_stream=0,
               skip_stream=0, shared_input_conv=False)
_HDR = dict(num_streams=3, in_channels=(6, 6, 6), out_channels=3, guidance="reference", reference_stream=1,
            skip_stream=1, shared_input_conv=True)
_GDSR = dict(num_streams=2, in_channels=(3, 1), out_channels=1, guidance="mutual", reference_stream=0,
             skip_stream=1, shared_input_conv=False)

PRESETS = {
    # Official per-task networks (MGDN_REFERENCE §1).
    "mef": dict(task="mef", **_FUSION, embed_dim=60, depths=(6, 6), num_heads=(6, 6), window_size=8,
                mlp_ratio=2.0),  # 893,551 params
    "mff": dict(task="mff", **_FUSION, embed_dim=30, depths=(3, 3), num_heads=(3, 3), window_size=4,
                mlp_ratio=2.0),  # 178,975
    "hdr": dict(task="hdr", **_HDR, embed_dim=60, depths=(6, 6, 6), num_heads=(6, 6, 6), window_size=8,
                mlp_ratio=4.0),  # 1,826,445
    "gdsr_x4": dict(task="gdsr", **_GDSR, embed_dim=30, depths=(3, 3, 3), num_heads=(6, 6, 6), window_size=4,
                    mlp_ratio=4.0),  # 292,282
    "gdsr_x8": dict(task="gdsr", **_GDSR, embed_dim=30, depths=(3, 3, 3), num_heads=(6, 6, 6), window_size=4,
                    mlp_ratio=4.0),  # 292,282
    "gdsr_x16": dict(task="gdsr", **_GDSR, embed_dim=60, depths=(3, 3, 3), num_heads=(6, 6, 6), window_size=4,
                     mlp_ratio=4.0),  # 1,127,374
    # Small networks for tests and laptops (same code paths, C=12: 2 channels per MGCA head).
    "tiny_fusion": dict(task="mef", **_FUSION, embed_dim=12, depths=(2, 2), num_heads=(2, 2), window_size=4,
                        mlp_ratio=2.0),
    "tiny_hdr": dict(task="hdr", **_HDR, embed_dim=12, depths=(2,), num_heads=(2,), window_size=4,
                     mlp_ratio=2.0),
    "tiny_gdsr": dict(task="gdsr", **_GDSR, embed_dim=12, depths=(2,), num_heads=(2,), window_size=4,
                      mlp_ratio=2.0),
}

_DEFAULTS = dict(mgca_heads=6, kernel_size=7, drop_path_rate=0.1, attention="cross", dynamic_filter=True,
                 dtype="float32")


def model_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """A model ConfigDict from a preset name (see PRESETS), with optional field overrides."""
  if name not in PRESETS:
    raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}")
  cfg = dict(_DEFAULTS, **PRESETS[name])
  unknown = set(overrides) - set(cfg)
  if unknown:
    raise ValueError(f"unknown model config field(s) {sorted(unknown)}; known: {sorted(cfg)}")
  cfg.update(overrides)
  return ml_collections.ConfigDict(cfg)


def _dtype(name: str):
  if name not in ("float32", "bfloat16"):
    raise ValueError(f"model dtype must be 'float32' or 'bfloat16', got {name!r}")
  return jnp.dtype(name)


class MGDN(nnx.Module):
  """MGDN with K streams.

  __call__(*streams, train=False, rng=None) → (fused, S):
    streams: K arrays (N, H, W, C_k), floating point, same N, H, W.
    fused:   (N, H, W, out_channels) float32 in (0, 1).
    S:       list over stages of K-tuples of (N, Hp, Wp, embed_dim): the MGDF outputs at the padded size
             (the features the masked MI loss acts on).
    train=True enables stochastic depth and needs `rng`.
  """

  def __init__(self, config: ml_collections.ConfigDict, *, rngs: nnx.Rngs):
    c = config
    k = c.num_streams
    if k < 2 or len(c.in_channels) != k:
      raise ValueError(f"num_streams must be ≥ 2 and match in_channels, got {k} and {tuple(c.in_channels)}")
    if len(c.depths) != len(c.num_heads):
      raise ValueError(f"depths {tuple(c.depths)} and num_heads {tuple(c.num_heads)} differ in length")
    if c.shared_input_conv and len(set(c.in_channels)) != 1:
      raise ValueError(f"shared_input_conv needs equal in_channels, got {tuple(c.in_channels)}")
    if not 0 <= c.skip_stream < k or not 0 <= c.reference_stream < k:
      raise ValueError(f"skip_stream {c.skip_stream} / reference_stream {c.reference_stream} out of range for "
                       f"{k} streams")
    dtype = _dtype(c.dtype)
    dim = c.embed_dim
    self.num_streams = k
    self.in_channels = tuple(c.in_channels)
    self.window_size = c.window_size
    self.skip_stream = c.skip_stream
    self.shared_input_conv = c.shared_input_conv
    self.dtype = dtype
    n_convs = 1 if c.shared_input_conv else k
    self.input_convs = nnx.List([conv(self.in_channels[i], dim, 3, rngs=rngs, dtype=dtype)
                                 for i in range(n_convs)])
    dpr = np.linspace(0.0, c.drop_path_rate, sum(c.depths))
    starts = np.cumsum((0,) + tuple(c.depths))
    self.stages = nnx.List([
        Stage(dim, k, depth, heads, c.window_size, c.mlp_ratio, dpr[starts[i]:starts[i + 1]],
              guidance=c.guidance, reference_stream=c.reference_stream, mgca_heads=c.mgca_heads,
              kernel_size=c.kernel_size, attention=c.attention, dynamic_filter=c.dynamic_filter,
              rngs=rngs, dtype=dtype)
        for i, (depth, heads) in enumerate(zip(c.depths, c.num_heads))])
    self.conv_after_body = conv(k * dim, dim, 3, rngs=rngs, dtype=dtype)
    self.conv_last = conv(dim, c.out_channels, 3, rngs=rngs, dtype=dtype)

  def _check_streams(self, streams) -> None:
    if len(streams) != self.num_streams:
      raise ValueError(f"MGDN expects {self.num_streams} input streams, got {len(streams)}")
    ref_shape = streams[0].shape
    for i, x in enumerate(streams):
      if x.ndim != 4:
        raise ValueError(f"stream {i} must be (N, H, W, C), got shape {x.shape}")
      if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"stream {i} must be floating point, got dtype {x.dtype}")
      if x.shape[-1] != self.in_channels[i]:
        raise ValueError(f"stream {i} must have {self.in_channels[i]} channels, got {x.shape[-1]}")
      if x.shape[:3] != ref_shape[:3]:
        raise ValueError(f"stream {i} has batch/spatial size {x.shape[:3]}, stream 0 has {ref_shape[:3]}")

  def __call__(self, *streams: jax.Array, train: bool = False, rng: jax.Array | None = None):
    self._check_streams(streams)
    if train and rng is None:
      raise ValueError("MGDN(train=True) needs rng for stochastic depth")
    rng = rng if train else None
    _, h, w, _ = streams[0].shape
    streams = [pad_to_multiple(x.astype(self.dtype), self.window_size) for x in streams]
    feats = tuple(self.input_convs[0 if self.shared_input_conv else i](x) for i, x in enumerate(streams))
    skip = feats[self.skip_stream]
    stage_rngs = jax.random.split(rng, len(self.stages)) if rng is not None else [None] * len(self.stages)
    features = []
    for stage, stage_rng in zip(self.stages, stage_rngs):
      feats, s = stage(feats, stage_rng)
      features.append(s)
    y = leaky_relu(self.conv_after_body(jnp.concatenate(feats, axis=-1)), 0.2) + skip
    out = jax.nn.sigmoid(self.conv_last(y).astype(jnp.float32))
    return out[:, :h, :w, :], features


def create_model(config: ml_collections.ConfigDict, *, seed: int = 0, abstract: bool = False) -> MGDN:
  """The one MGDN factory: `config` is a model config (`model_config`, or `config.model` of a run).

  abstract=False: freshly initialised parameters (official init: PyTorch conv defaults, N(0, 0.02²) linears).
  abstract=True: the same module with `jax.ShapeDtypeStruct` leaves and nothing computed (the target a checkpoint
  restores into, or a graph definition for jit).
  """
  if abstract:
    return nnx.eval_shape(lambda: MGDN(config, rngs=nnx.Rngs(seed)))
  return MGDN(config, rngs=nnx.Rngs(seed))


def count_params(model: nnx.Module) -> int:
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
