"""The Pallas PFF kernels (kernels/attention_tpu.py, kernels/mlp_tpu.py, kernels/lce_tpu.py; run in Pallas's
interpreter here) give the values and gradients of the layers' XLA path, on one device and with the images split
over 8 (the attention with and without the shift mask, the LCE with one and several grid steps per image); the
training step runs them where its plan says so."""
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import train_bench
from configs import mef
from mgdn_jax import sharding
from mgdn_jax import train
from mgdn_jax.kernels import attention_tpu, gelu, lce_tpu, mlp_tpu
from mgdn_jax.layers import pff
from mgdn_jax.ops import window_attention

N, NW, T, C, HEADS = 8, 4, 16, 12, 2
SCALE = (C // HEADS) ** -0.5


def _reference(x, w_qkv, b_qkv, bias, mask, w_proj, b_proj):
  """The XLA path of WindowAttention: Linear, ops.window_attention, Linear."""
  q, k, v = (x @ w_qkv + b_qkv).reshape(N, NW, T, 3, HEADS, C // HEADS).transpose(3, 0, 1, 4, 2, 5)
  out = window_attention(q * SCALE, k, v, bias, mask).transpose(0, 1, 3, 2, 4).reshape(N, NW, T, C)
  return out @ w_proj + b_proj


@pytest.mark.parametrize('masked', [True, False])
@pytest.mark.parametrize('split', [False, True])
def test_values_and_gradients_match_the_xla_layer(masked, split):
  rng = np.random.default_rng(0)
  normal = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
  params = (normal(N, NW, T, C), 0.3 * normal(C, 3 * C), normal(3 * C), normal(HEADS, T, T),
            0.3 * normal(C, C), normal(C))
  mask = jnp.asarray(np.where(rng.random((NW, T, T)) < 0.2, -100., 0.), jnp.float32) if masked else None
  cotangent = normal(N, NW, T, C)
  mesh = sharding.make_mesh() if split else None
  ours = lambda x, wq, bq, b, wp, bp: attention_tpu.window_attention_block(
      x, wq, bq, b, mask, wp, bp, num_heads=HEADS, scale=SCALE, mesh=mesh, interpret=True)
  theirs = lambda x, wq, bq, b, wp, bp: _reference(x, wq, bq, b, mask, wp, bp)
  grads = lambda fn: jax.jit(jax.value_and_grad(lambda *a: jnp.sum(fn(*a) * cotangent), argnums=tuple(range(6))))
  np.testing.assert_allclose(jax.jit(ours)(*params), theirs(*params), rtol=1e-5, atol=1e-5)
  (value, got), (ref_value, want) = grads(ours)(*params), grads(theirs)(*params)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5)
  for name, a, b in zip(('x', 'w_qkv', 'b_qkv', 'bias', 'w_proj', 'b_proj'), got, want):
    # Weight gradients are sums over all windows (over all 8 devices when split).
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()), err_msg=name)


def test_windows_per_step_divides_the_images_windows():
  assert attention_tpu.windows_per_step(256, 64) == 8     # HDR/MEF: 8×8 windows of a 128² patch
  assert attention_tpu.windows_per_step(1024, 16) == 32   # MFF/GDSR: 4×4 windows
  assert attention_tpu.windows_per_step(6, 64) == 6
  assert attention_tpu.windows_per_step(7, 16) == 7
  assert attention_tpu.windows_per_step(35, 64) == 7
  assert attention_tpu.windows_per_step(3, 1024) == 1


@pytest.mark.parametrize('split', [False, True])
def test_mlp_branch_matches_layer_norm_and_mlp(split):
  rng = np.random.default_rng(2)
  normal = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
  params = (normal(8, 8, 8, C), 1 + 0.1 * normal(C), normal(C), 0.3 * normal(C, 4 * C), normal(4 * C),
            0.3 * normal(4 * C, C), normal(C))
  cotangent = normal(8, 8, 8, C)
  mesh = sharding.make_mesh() if split else None

  def theirs(x, gamma, beta, w1, b1, w2, b2):
    norm = nnx.LayerNorm(C, epsilon=1e-5, rngs=nnx.Rngs(0))
    norm.scale[...], norm.bias[...] = gamma, beta
    return gelu(norm(x) @ w1 + b1) @ w2 + b2

  ours = lambda *a: mlp_tpu.layer_norm_mlp(*a, mesh=mesh, interpret=True)
  grads = lambda fn: jax.jit(jax.grad(lambda *a: jnp.sum(fn(*a) * cotangent), argnums=tuple(range(7))))
  np.testing.assert_allclose(jax.jit(ours)(*params), theirs(*params), rtol=1e-5, atol=1e-5)
  for name, a, b in zip(('x', 'gamma', 'beta', 'w1', 'b1', 'w2', 'b2'), grads(ours)(*params), grads(theirs)(*params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.abs(b).max()), err_msg=name)


def test_rows_per_step_divides_the_image_rows():
  assert mlp_tpu.rows_per_step(128, 128) == 8     # one 128² image: 8 rows of 128 tokens per step
  assert mlp_tpu.rows_per_step(4 * 520, 520) == 1
  assert mlp_tpu.rows_per_step(12, 64) == 12
  assert mlp_tpu.rows_per_step(14, 64) == 14
  assert mlp_tpu.rows_per_step(18, 64) == 9


@pytest.mark.parametrize('split, rows', [(False, 2), (False, 8), (True, 4)])
def test_local_context_extractor_matches_the_layer(split, rows):
  """rows < H: grid steps whose halo rows lie in the image, or past its edge (zero padding), or in the next image."""
  n, h, w, c = 8, 8, 16, 16
  rng = np.random.default_rng(3)
  x, cotangent = (jnp.asarray(rng.standard_normal((n, h, w, c)), jnp.float32) for _ in range(2))
  graph, params = nnx.split(pff.LocalContextExtractor(c, rngs=nnx.Rngs(0)))
  # The gate's Linear layers start at N(0, 0.02²), which leaves the gate near ½ and its gradient tiny.
  params = jax.tree.map(lambda p: 0.5 * jnp.asarray(rng.standard_normal(p.shape), p.dtype), params)
  mesh = sharding.make_mesh() if split else None

  def run(params, x, kernel):
    lce = nnx.merge(graph, params)
    if kernel:
      weights = (lce.conv0.kernel, lce.conv0.bias, lce.conv1.kernel, lce.conv1.bias, lce.conv2.kernel,
                 lce.conv2.bias, lce.fc0.kernel, lce.fc2.kernel)
      return lce_tpu.local_context(x, *(p[...] for p in weights), mesh=mesh, interpret=True, rows=rows)
    return lce(x)

  np.testing.assert_allclose(jax.jit(run, static_argnums=2)(params, x, True), run(params, x, False), rtol=1e-5,
                             atol=1e-5)
  grads = lambda kernel: jax.jit(jax.grad(lambda p, x: jnp.sum(run(p, x, kernel) * cotangent), argnums=(0, 1)))(
      params, x)
  got, want = grads(True), grads(False)
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.abs(b).max()), err_msg=jax.tree_util.keystr(path))


def test_lce_rows_per_step_are_even_divisors_of_the_height():
  assert lce_tpu.rows_per_step(128, 128) == 8
  assert lce_tpu.rows_per_step(520, 520) == 2
  assert lce_tpu.rows_per_step(24, 64) == 12
  with pytest.raises(ValueError, match='height 7'):
    lce_tpu.rows_per_step(7, 64)
  with pytest.raises(ValueError, match='rows=6'):
    lce_tpu.local_context(jnp.zeros((1, 8, 8, 16)), *([jnp.zeros(1)] * 8), rows=6)


def test_unknown_kernel_choice_is_refused():
  model = pff.WindowAttention(12, 4, 2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="pff_kernels='flash'"):
    pff.use_kernels(model, 'flash')


def test_training_step_runs_the_kernels_its_plan_names():
  """The plan's choice reaches every PFF block of the step (traced, not compiled: the values of the kernels inside a
  model are checked against the official fixtures in model_parity_test.py)."""
  mesh = sharding.make_mesh()
  calls = {}
  for kernel in ('xla', 'pallas_tpu'):
    config = mef.get_config('tiny')
    config.batch_size, config.patch_size, config.pff_kernels = 8, 16, kernel
    built = train.build(config, mesh)
    assert built.plan.pff_kernels == kernel
    jaxpr = str(built.step_fn.trace(jax.eval_shape(built.init), train_bench.batch_shapes(config)).jaxpr)
    calls[kernel] = jaxpr.count('pallas_call')
  blocks = sum(config.model.depths)
  # Forward and backward of the attention and of the MLP (one kernel each) and of the LCE (two each) in every block.
  assert calls == {'xla': 0, 'pallas_tpu': 8 * blocks}, calls
