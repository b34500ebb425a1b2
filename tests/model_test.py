"""MGDN model behaviour: parameter counts, K-stream generalisation, ablations, bf16, stochastic depth, errors."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mgdn_jax import model as model_lib

OFFICIAL_COUNTS = {"mef": 893_551, "mff": 178_975, "hdr": 1_826_445, "gdsr_x4": 292_282, "gdsr_x8": 292_282,
                   "gdsr_x16": 1_127_374}


def _count_abstract(cfg):
  abstract = model_lib.create_model(cfg, abstract=True)
  return model_lib.count_params(abstract)


@pytest.mark.parametrize("name", sorted(OFFICIAL_COUNTS))
def test_official_parameter_counts(name):
  assert _count_abstract(model_lib.model_config(name)) == OFFICIAL_COUNTS[name]


def test_self_attention_ablation_keeps_parameter_count():
  cfg = model_lib.model_config("mef")
  assert _count_abstract(model_lib.model_config("mef", attention="self")) == _count_abstract(cfg)


def _streams(cfg, h=12, w=14, n=2, seed=0):
  keys = jax.random.split(jax.random.key(seed), cfg.num_streams)
  return [jax.random.uniform(k, (n, h, w, c)) for k, c in zip(keys, cfg.in_channels)]


@functools.partial(jax.jit, static_argnames=("graphdef", "train"))
def _forward(graphdef, state, streams, train, rng):
  return nnx.merge(graphdef, state)(*streams, train=train, rng=rng)


def _apply(model, *streams, train=False, rng=None):
  """The model under jit; one jitted function for all tests, so an equal model on equal shapes compiles once."""
  graphdef, state = nnx.split(model)
  return _forward(graphdef, state, streams, train=train, rng=rng)


@pytest.mark.parametrize("preset,overrides", [
    ("tiny_fusion", {}),
    ("tiny_fusion", {"attention": "self"}),
    ("tiny_fusion", {"dynamic_filter": False}),
    ("tiny_hdr", {}),
    ("tiny_gdsr", {}),
])
def test_forward_shapes(preset, overrides):
  cfg = model_lib.model_config(preset, **overrides)
  model = model_lib.create_model(cfg)
  fused, feats = _apply(model, *_streams(cfg))
  assert fused.shape == (2, 12, 14, cfg.out_channels) and fused.dtype == jnp.float32
  assert bool(jnp.all((fused > 0) & (fused < 1)))
  assert len(feats) == len(cfg.depths)
  assert all(s.shape == (2, 12, 16, cfg.embed_dim) for stage in feats for s in stage)  # padded to the window


def test_four_streams_run_and_train():
  """K = 4 (the paper: 'more inputs can be readily inferred'): Adam steps on a fixed target reduce the L1."""
  cfg = model_lib.model_config("tiny_fusion", num_streams=4, in_channels=(3, 3, 3, 3), depths=(1,),
                               num_heads=(2,))
  model = model_lib.create_model(cfg)
  streams = _streams(cfg, h=8, w=8, n=1)
  target = jnp.mean(jnp.stack(streams), axis=0)
  graphdef, params = nnx.split(model)
  opt = optax.adam(3e-3)
  opt_state = opt.init(params)

  @jax.jit
  def step(params, opt_state):
    def loss_fn(p):
      fused, feats = nnx.merge(graphdef, p)(*streams)
      assert len(feats[0]) == 4
      return jnp.mean(jnp.abs(fused - target))
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  losses = []
  for _ in range(15):
    params, opt_state, loss = step(params, opt_state)
    losses.append(float(loss))
  assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses


def test_bfloat16_close_to_float32():
  cfg = model_lib.model_config("tiny_fusion")
  f32 = model_lib.create_model(cfg)
  bf16 = model_lib.create_model(model_lib.model_config("tiny_fusion", dtype="bfloat16"))
  nnx.update(bf16, nnx.state(f32))  # same f32 parameters, bf16 compute
  streams = _streams(cfg)
  a, _ = _apply(f32, *streams)
  b, feats = _apply(bf16, *streams)
  assert b.dtype == jnp.float32 and feats[0][0].dtype == jnp.bfloat16
  assert jax.tree.leaves(nnx.state(bf16, nnx.Param))[0].dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=3e-2)


def test_stochastic_depth_only_in_training():
  cfg = model_lib.model_config("tiny_fusion", drop_path_rate=0.9)  # high rate: two keys surely drop differently
  model = model_lib.create_model(cfg)
  streams = _streams(cfg)
  eval_a, _ = _apply(model, *streams)
  eval_b, _ = _apply(model, *streams, train=False, rng=jax.random.key(1))
  np.testing.assert_array_equal(np.asarray(eval_a), np.asarray(eval_b))
  train_a, _ = _apply(model, *streams, train=True, rng=jax.random.key(1))
  train_b, _ = _apply(model, *streams, train=True, rng=jax.random.key(2))
  assert not np.allclose(np.asarray(train_a), np.asarray(train_b))
  with pytest.raises(ValueError, match="needs rng"):
    model(*streams, train=True)


@pytest.mark.parametrize("make,message", [
    (lambda s: s[:1], "expects 2 input streams, got 1"),
    (lambda s: [s[0], s[1][..., :2]], "stream 1 must have 3 channels, got 2"),
    (lambda s: [s[0], s[1][:, :10]], r"stream 1 has batch/spatial size \(2, 10, 14\)"),
    (lambda s: [s[0], (s[1] * 255).astype(jnp.uint8)], "stream 1 must be floating point"),
    (lambda s: [s[0][0], s[1]], r"stream 0 must be \(N, H, W, C\)"),
])
def test_bad_inputs(make, message):
  cfg = model_lib.model_config("tiny_fusion")
  model = model_lib.create_model(cfg, abstract=True)
  with pytest.raises(ValueError, match=message):
    model(*make(_streams(cfg)))


def test_bad_configs():
  with pytest.raises(ValueError, match="unknown model preset"):
    model_lib.model_config("nope")
  with pytest.raises(ValueError, match="unknown model config field"):
    model_lib.model_config("mef", embed=3)
  with pytest.raises(ValueError, match="divisible by mgca_heads"):
    model_lib.create_model(model_lib.model_config("tiny_fusion", embed_dim=8), seed=0)
  with pytest.raises(ValueError, match="match in_channels"):
    model_lib.create_model(model_lib.model_config("tiny_fusion", num_streams=3), seed=0)
