"""The paper's ops: dynamic filter (custom VJP vs the autodiff oracle), channel attention, window helpers, padding,
window attention (custom VJP vs autodiff); and the benchmarks' dynamic-filter baselines against the definition."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from benchmarks import baselines
from mgdn_jax import ops
from tests import oracles


@pytest.mark.parametrize("ks", [3, 7])
def test_dynamic_filter_matches_definition(ks):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 9, 11, 5)).astype(np.float32)
  k = rng.standard_normal((2, 9, 11, ks * ks)).astype(np.float32)
  want = oracles.dynamic_filter(x, k, ks)
  for fn in (ops.dynamic_filter, baselines.dynamic_filter_autodiff, baselines.dynamic_filter_patches):
    np.testing.assert_allclose(np.asarray(fn(jnp.asarray(x), jnp.asarray(k), ks)), want, atol=1e-5)


def test_dynamic_filter_tap_order():
  """A kernel that is one-hot at tap (i, j) shifts the image by (i − 3, j − 3) (no flip)."""
  x = jnp.arange(10 * 12, dtype=jnp.float32).reshape(1, 10, 12, 1)
  k = jnp.zeros((1, 10, 12, 49)).at[..., 7 * 1 + 5].set(1.0)  # row offset −2, column offset +2
  out = ops.dynamic_filter(x, k)
  np.testing.assert_array_equal(np.asarray(out[0, 5, 4, 0]), np.asarray(x[0, 3, 6, 0]))


def test_dynamic_filter_custom_vjp_matches_autodiff():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((2, 8, 10, 4)), jnp.float32)
  k = jnp.asarray(rng.standard_normal((2, 8, 10, 49)), jnp.float32)
  g = jnp.asarray(rng.standard_normal((2, 8, 10, 4)), jnp.float32)
  loss = lambda fn: lambda a, b: jnp.sum(fn(a, b) * g)
  got = jax.grad(loss(ops.dynamic_filter), argnums=(0, 1))(x, k)
  want = jax.grad(loss(lambda a, b: oracles.dynamic_filter(a, b, 7)), argnums=(0, 1))(x, k)
  for a, b in zip(got, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-5)


def test_dynamic_filter_check_grads():
  with jax.enable_x64(True):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((1, 6, 7, 3)))
    k = jnp.asarray(rng.standard_normal((1, 6, 7, 9)))
    check_grads(lambda a, b: ops.dynamic_filter(a, b, 3), (x, k), order=1, modes=("rev",))


def test_dynamic_filter_bf16_accumulates_in_f32():
  rng = np.random.default_rng(3)
  x = rng.standard_normal((1, 8, 8, 4)).astype(np.float32)
  k = rng.standard_normal((1, 8, 8, 49)).astype(np.float32)
  out = ops.dynamic_filter(jnp.asarray(x, jnp.bfloat16), jnp.asarray(k, jnp.bfloat16))
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), oracles.dynamic_filter(x, k, 7), atol=0.15, rtol=0.02)


def test_dynamic_filter_bad_shapes():
  with pytest.raises(ValueError, match="does not fit x"):
    ops.dynamic_filter(jnp.zeros((1, 4, 4, 2)), jnp.zeros((1, 4, 4, 25)))


def test_channel_attention_matches_definition():
  rng = np.random.default_rng(4)
  n, h, w, c, heads = 2, 5, 6, 12, 3
  q, k, v = (rng.standard_normal((n, h, w, c)).astype(np.float32) for _ in range(3))
  temp = np.array([0.5, 1.0, 2.0], np.float32)
  got = np.asarray(ops.channel_attention(*map(jnp.asarray, (q, k, v, temp)), heads))
  d = c // heads
  for b in range(n):
    for hd in range(heads):
      sl = slice(hd * d, (hd + 1) * d)
      qq, kk, vv = (t[b, ..., sl].reshape(-1, d).T for t in (q, k, v))  # (d, HW)
      qq = qq / np.linalg.norm(qq, axis=1, keepdims=True)
      kk = kk / np.linalg.norm(kk, axis=1, keepdims=True)
      logits = qq @ kk.T * temp[hd]
      a = np.exp(logits - logits.max(-1, keepdims=True))
      a /= a.sum(-1, keepdims=True)
      np.testing.assert_allclose(got[b, ..., sl], (a @ vv).T.reshape(h, w, d), atol=1e-5)


def test_window_partition_roundtrip_and_order():
  x = jnp.arange(2 * 8 * 12 * 3, dtype=jnp.float32).reshape(2, 8, 12, 3)
  win = ops.window_partition(x, 4)
  assert win.shape == (2, 6, 16, 3)
  np.testing.assert_array_equal(np.asarray(win[0, 1, 0]), np.asarray(x[0, 0, 4]))  # window (0, 1), token 0
  np.testing.assert_array_equal(np.asarray(win[0, 3, 5]), np.asarray(x[0, 5, 1]))  # window (1, 0), token (1, 1)
  np.testing.assert_array_equal(np.asarray(ops.window_reverse(win, 4, 8, 12)), np.asarray(x))


def test_relative_position_index():
  idx = ops.relative_position_index(4)
  assert idx.shape == (16, 16) and idx.min() == 0 and idx.max() == 48
  assert idx[0, 0] == 3 * 7 + 3  # Δ = (0, 0) sits in the middle of the table
  assert idx[5, 0] == (1 + 3) * 7 + (1 + 3)  # query (1, 1), key (0, 0)


def test_shift_mask_regions():
  mask = ops.shift_attention_mask(8, 8, 4, 2)
  assert mask.shape == (4, 16, 16)
  assert not mask[0].any()  # the top-left window lies in one region
  assert set(np.unique(mask[3])) == {0.0, -100.0}
  assert (mask == np.swapaxes(mask, 1, 2)).all()


def test_padding():
  x = jnp.arange(5 * 6, dtype=jnp.float32).reshape(1, 5, 6, 1)
  p = ops.pad_to_multiple(x, 4)
  assert p.shape == (1, 8, 8, 1)
  np.testing.assert_array_equal(np.asarray(p[0, 5, :6, 0]), np.asarray(x[0, 3, :, 0]))  # reflect, no edge repeat
  assert ops.pad_to_multiple(x[:, :4, :4], 4).shape == (1, 4, 4, 1)
  with pytest.raises(ValueError, match="too small"):
    ops.pad_to_multiple(jnp.zeros((1, 2, 2, 1)), 8)


@pytest.mark.parametrize("masked", [False, True])
def test_window_attention_matches_autodiff_softmax_attention(masked):
  rng = np.random.default_rng(7)
  q, k, v, g = (jnp.asarray(rng.standard_normal((2, 3, 2, 16, 5)), jnp.float32) for _ in range(4))
  bias = jnp.asarray(rng.standard_normal((2, 16, 16)), jnp.float32)
  mask = jnp.asarray(np.where(rng.random((3, 16, 16)) < 0.3, -100.0, 0.0), jnp.float32) if masked else None

  plain = lambda q, k, v, bias: oracles.window_attention(q, k, v, bias, mask)
  np.testing.assert_allclose(np.asarray(ops.window_attention(q, k, v, bias, mask)), np.asarray(plain(q, k, v, bias)),
                             atol=1e-5)
  got = jax.grad(lambda *a: jnp.sum(ops.window_attention(*a, mask) * g), argnums=(0, 1, 2, 3))(q, k, v, bias)
  want = jax.grad(lambda *a: jnp.sum(plain(*a) * g), argnums=(0, 1, 2, 3))(q, k, v, bias)
  for a, b in zip(got, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)
