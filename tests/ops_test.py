"""The pure ops: dynamic filter (custom VJP vs autodiff oracle), channel attention, window helpers, padding,
window attention, dense and conv2d (custom VJPs vs autodiff)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P
from jax.test_util import check_grads

from mgdn_jax import ops, sharding


def _naive_filter(x, k, ks):
  """Direct numpy loop of MGDN_REFERENCE §4.3 (replicate padding, tap 7i+j ↔ offset (i, j))."""
  r = ks // 2
  xp = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
  out = np.zeros_like(x)
  _, h, w, _ = x.shape
  for i in range(ks):
    for j in range(ks):
      out += xp[:, i:i + h, j:j + w, :] * k[..., ks * i + j:ks * i + j + 1]
  return out


@pytest.mark.parametrize("ks", [3, 7])
def test_dynamic_filter_matches_definition(ks):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 9, 11, 5)).astype(np.float32)
  k = rng.standard_normal((2, 9, 11, ks * ks)).astype(np.float32)
  want = _naive_filter(x, k, ks)
  for fn in (ops.dynamic_filter, ops.dynamic_filter_reference, ops.dynamic_filter_patches):
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
  want = jax.grad(loss(ops.dynamic_filter_reference), argnums=(0, 1))(x, k)
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
  np.testing.assert_allclose(np.asarray(out, np.float32), _naive_filter(x, k, 7), atol=0.15, rtol=0.02)


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


@pytest.mark.parametrize("gradients", ["custom", "autodiff"])
def test_depthwise_conv_matches_grouped_conv_values_and_gradients(gradients, monkeypatch):
  monkeypatch.setenv("MGDN_OPS_GRADIENTS", gradients)
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.standard_normal((2, 7, 9, 6)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((3, 3, 1, 6)), jnp.float32)
  bias = jnp.asarray(rng.standard_normal((6,)), jnp.float32)
  g = jnp.asarray(rng.standard_normal((2, 7, 9, 6)), jnp.float32)

  def grouped(a, w, b):
    y = jax.lax.conv_general_dilated(a, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     feature_group_count=6, precision=jax.lax.Precision.HIGHEST)
    return y + b

  np.testing.assert_allclose(np.asarray(ops.depthwise_conv(x, kernel, bias)), np.asarray(grouped(x, kernel, bias)),
                             atol=1e-5)
  got = jax.grad(lambda *a: jnp.sum(ops.depthwise_conv(*a) * g), argnums=(0, 1, 2))(x, kernel, bias)
  want = jax.grad(lambda *a: jnp.sum(grouped(*a) * g), argnums=(0, 1, 2))(x, kernel, bias)
  for a, b in zip(got, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-5)




@pytest.mark.parametrize("masked", [False, True])
def test_window_attention_matches_autodiff_softmax_attention(masked):
  rng = np.random.default_rng(7)
  q, k, v, g = (jnp.asarray(rng.standard_normal((2, 3, 2, 16, 5)), jnp.float32) for _ in range(4))
  bias = jnp.asarray(rng.standard_normal((2, 16, 16)), jnp.float32)
  mask = jnp.asarray(np.where(rng.random((3, 16, 16)) < 0.3, -100.0, 0.0), jnp.float32) if masked else None

  def plain(q, k, v, bias):
    s = jnp.einsum("nwhtd,nwhsd->nwhts", q, k, precision="highest") + bias
    s = s + mask[:, None] if masked else s
    return jnp.einsum("nwhts,nwhsd->nwhtd", jax.nn.softmax(s, axis=-1), v, precision="highest")

  np.testing.assert_allclose(np.asarray(ops.window_attention(q, k, v, bias, mask)), np.asarray(plain(q, k, v, bias)),
                             atol=1e-5)
  got = jax.grad(lambda *a: jnp.sum(ops.window_attention(*a, mask) * g), argnums=(0, 1, 2, 3))(q, k, v, bias)
  want = jax.grad(lambda *a: jnp.sum(plain(*a) * g), argnums=(0, 1, 2, 3))(q, k, v, bias)
  for a, b in zip(got, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)


def test_gelu_is_exact_gelu_in_value_and_gradient():
  # Wide range, including the x ≪ 0 tail where 1 + erf cancels and the far tails where Φ saturates.
  x = jnp.concatenate([jnp.linspace(-12.0, 12.0, 4001, dtype=jnp.float32), jnp.asarray([0.0, -40.0, 40.0])])
  exact = lambda x: jax.nn.gelu(x, approximate=False)  # erfc form
  np.testing.assert_allclose(np.asarray(ops.gelu(x)), np.asarray(exact(x)), atol=2e-6, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.vmap(jax.grad(ops.gelu))(x)), np.asarray(jax.vmap(jax.grad(exact))(x)),
                             atol=1e-6)
  check_grads(ops.gelu, (x[::97] + 0.013,), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)
  xb = x.astype(jnp.bfloat16)
  assert ops.gelu(xb).dtype == jnp.bfloat16 and jax.grad(lambda v: jnp.sum(ops.gelu(v)))(xb).dtype == jnp.bfloat16


@pytest.mark.parametrize("gradients", ["custom", "autodiff"])
def test_conv2d_and_dense_gradients_on_a_batch_sharded_mesh(gradients, monkeypatch):
  """Both backward forms (custom VJPs: token-major barrier, per-tap kernel gradient; or autodiff, the GPU default)
  under jit on the 8-device ('data',) mesh."""
  monkeypatch.setenv("MGDN_OPS_GRADIENTS", gradients)
  mesh = sharding.make_mesh()
  assert mesh.size == 8
  rng = np.random.default_rng(3)
  x = jax.device_put(jnp.asarray(rng.standard_normal((8, 6, 5, 4)), jnp.float32), NamedSharding(mesh, P("data")))
  w3 = jnp.asarray(rng.standard_normal((3, 3, 4, 4)), jnp.float32)
  w1 = jnp.asarray(rng.standard_normal((4, 3)), jnp.float32)
  b3, b1 = jnp.ones((4,)), jnp.ones((3,))

  def net(x, w3, b3, w1, b1, conv_fn, dense_fn):
    return jnp.sum(jnp.sin(dense_fn(jnp.tanh(conv_fn(x, w3, b3, 2)), w1, b1)))

  plain_conv = lambda x, w, b, d: jax.lax.conv_general_dilated(
      x, w, (1, 1), ((d, d), (d, d)), rhs_dilation=(d, d), dimension_numbers=("NHWC", "HWIO", "NHWC")) + b
  plain_dense = lambda x, w, b: x @ w + b
  grads = jax.jit(jax.grad(net, argnums=(0, 1, 2, 3, 4)), static_argnums=(5, 6))
  got = grads(x, w3, b3, w1, b1, ops.conv2d, ops.dense)
  want = grads(x, w3, b3, w1, b1, plain_conv, plain_dense)
  for a, b in zip(got, want):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)
  assert got[0].sharding.spec == P("data")


def test_ops_gradients_mode_comes_from_the_environment(monkeypatch):
  from mgdn_jax.ops import gradients
  monkeypatch.delenv("MGDN_OPS_GRADIENTS", raising=False)
  assert gradients.use_custom_gradients() == (jax.default_backend() == "cpu")
  monkeypatch.setenv("MGDN_OPS_GRADIENTS", "autodiff")
  assert not gradients.use_custom_gradients()
  monkeypatch.setenv("MGDN_OPS_GRADIENTS", "custom")
  assert gradients.use_custom_gradients()
  monkeypatch.setenv("MGDN_OPS_GRADIENTS", "fast")
  with pytest.raises(ValueError, match="MGDN_OPS_GRADIENTS='fast'"):
    ops.dense(jnp.ones((2, 3)), jnp.ones((3, 1)), None)


def test_dilated_conv2d_keeps_its_custom_vjp_under_autodiff_mode(monkeypatch):
  """cuDNN's autodiff kernel gradient of a dilated conv is pathological (ops/conv.py), so only dilation 1 switches."""
  monkeypatch.setenv("MGDN_OPS_GRADIENTS", "autodiff")
  x, w = jnp.ones((1, 6, 6, 2)), jnp.ones((3, 3, 2, 2))
  jaxpr = lambda d: str(jax.make_jaxpr(lambda a: ops.conv2d(a, w, None, d))(x))
  assert "custom_vjp" in jaxpr(2) and "custom_vjp" not in jaxpr(1)
  monkeypatch.setenv("MGDN_OPS_GRADIENTS", "custom")
  assert "custom_vjp" in jaxpr(1)


def test_conv2d_rejects_even_or_mismatched_kernels():
  x = jnp.zeros((1, 4, 4, 3))
  with pytest.raises(ValueError, match="odd k"):
    ops.conv2d(x, jnp.zeros((2, 2, 3, 1)), None)
  with pytest.raises(ValueError, match=r"\(k, k, 3, O\)"):
    ops.conv2d(x, jnp.zeros((3, 3, 2, 1)), None)
