"""benchmarks/roofline.py: FLOPs counted from a jaxpr (loops by trip count, XLA's count where XLA counts the same
ops) and the roofline times of its two fusion models."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from benchmarks import roofline, train_bench
from configs import mef
from mgdn_jax import model as model_lib
from mgdn_jax import sharding, train
from mgdn_jax.ops import window_attention

CHIP = dict(peak_tflops=100., hbm_tb_s=1., vector_tflops=10.)


def _cost(fn, *args, tokens=0):
  return roofline.traced_cost(jax.jit(fn).trace(*args), CHIP, tokens)


def test_dot_conv_and_elementwise_flops():
  a, b = jnp.ones((8, 16)), jnp.ones((16, 32))
  c = _cost(lambda x, y: jnp.exp(x @ y) + 1., a, b)
  assert c.matmul_flops == 2 * 8 * 16 * 32
  assert c.vector_flops == 2 * 8 * 32  # exp and add, one per output element
  x, k = jnp.ones((2, 10, 12, 3)), jnp.ones((3, 3, 3, 5))
  conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  assert _cost(conv, x, k).matmul_flops == 2 * (2 * 10 * 12 * 5) * (3 * 3 * 3)
  grouped = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                                      feature_group_count=3)
  assert _cost(grouped, x, jnp.ones((3, 3, 1, 6))).matmul_flops == 2 * (2 * 10 * 12 * 6) * (3 * 3 * 1)
  assert _cost(lambda x: jnp.sum(x, axis=0), a).vector_flops == 8 * 16  # reductions: one per input element


def test_loops_count_their_trip_count_and_cond_its_costliest_branch():
  w = jnp.ones((16, 16))
  body = lambda h, _: (jnp.tanh(h @ w), None)
  c = _cost(lambda h: jax.lax.scan(body, h, None, length=5)[0], jnp.ones((4, 16)))
  assert c.matmul_flops == 5 * 2 * 4 * 16 * 16 and c.vector_flops == 5 * 4 * 16 and c.matmul_calls == 5
  by_op = {}
  scanned = jax.jit(lambda h: jax.lax.scan(body, h, None, length=5)[0]).trace(jnp.ones((4, 16)))
  roofline.traced_cost(scanned, CHIP, by_op=by_op)
  assert {k: v.matmul_calls for k, v in by_op.items()} == {'dot_general (4, 16) x (16, 16)': 5}
  branchy = lambda p, h: jax.lax.cond(p, lambda v: v @ w @ w, lambda v: v, h)
  assert _cost(branchy, True, jnp.ones((4, 16))).matmul_flops == 2 * (2 * 4 * 16 * 16)


def test_count_matches_xla_on_a_loop_free_model_forward():
  cfg = model_lib.model_config('tiny_hdr')
  graphdef, params = nnx.split(model_lib.create_model(cfg))
  streams = [jnp.zeros((1, 16, 16, c)) for c in cfg.in_channels]
  fwd = jax.jit(lambda p, *s: nnx.merge(graphdef, p)(*s)[0])
  traced = fwd.trace(params, *streams)
  xla = traced.lower().compile().cost_analysis()
  xla = xla[0] if isinstance(xla, (list, tuple)) else xla
  ours = roofline.traced_cost(traced, CHIP).flops
  assert ours == pytest.approx(xla['flops'], rel=0.05)


def test_roofline_time_is_compute_or_memory_bound_per_matmul():
  big, small = jnp.ones((1024, 1024)), jnp.ones((1024, 4))
  c = _cost(lambda x: x @ x, big)  # 2.1 GFLOP over 12.6 MB: compute-bound on CHIP
  assert c.time_xla == pytest.approx(2 * 1024**3 / 100e12)
  assert c.mfu_bound(CHIP, 'xla') == pytest.approx(1.)
  c = _cost(lambda x, y: x @ y, big, small)  # reads 4 MB for 8 MFLOP: memory-bound
  nbytes = 4 * (1024 * 1024 + 2 * 1024 * 4)
  assert c.time_xla == pytest.approx(nbytes / 1e12)
  assert c.mfu_bound(CHIP, 'xla') == pytest.approx(2 * 1024 * 1024 * 4 / nbytes * 1e12 / 100e12)


def test_flash_model_keeps_only_the_attention_scores_on_chip():
  n, w, h, t, d = 1, 2, 2, 16, 4
  q = jnp.ones((n, w, h, t, d))
  fwd = lambda q: window_attention(q, q, q, jnp.zeros((h, t, t)), None)
  c = _cost(fwd, q, tokens=t)
  qkv = n * w * h * t * d * 4
  scores = n * w * h * t * t * 4
  assert c.matmul_bytes_xla == 4 * qkv + 2 * scores  # q kᵀ: q, k → s; e v: e, v → out
  assert c.matmul_bytes_flash == 4 * qkv
  assert _cost(fwd, q, tokens=0).matmul_bytes_flash == c.matmul_bytes_xla
  grad = _cost(lambda q: jax.grad(lambda a: fwd(a).sum())(q), q, tokens=t)  # the backward's scores too
  assert grad.matmul_bytes_flash < grad.matmul_bytes_xla - 6 * scores
  # A (T, T)-shaped matmul outside the attention scope is not a score.
  other = jnp.ones((n, w, h, t, t))
  assert _cost(lambda x: x @ x, other, tokens=t).matmul_bytes_flash == 3 * other.size * 4


def test_train_step_count_does_not_depend_on_the_micro_batch_split():
  mesh = sharding.make_mesh()
  counts = []
  for microbatch_size in (16, 8):  # one step of 16 images, then two micro-batches of 8 (one image per device)
    config = mef.get_config('tiny')
    config.batch_size, config.patch_size, config.microbatch_size = 16, 16, microbatch_size
    built = train.build(config, mesh)
    traced = built.step_fn.trace(jax.eval_shape(built.init), train_bench.batch_shapes(config))
    counts.append(roofline.traced_cost(traced, CHIP).flops)
  assert counts[0] > 0 and counts[1] == pytest.approx(counts[0], rel=1e-3)
