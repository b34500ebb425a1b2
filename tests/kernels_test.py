"""The tuned kernels and their layers: values and gradients against XLA's own ops under both gradient choices,
the one dispatch, and the layers' stock parameters."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P
from jax.test_util import check_grads

from mgdn_jax import kernels, sharding
from mgdn_jax.layers.common import conv, linear
from tests import oracles

BOTH = pytest.mark.parametrize("gradients", kernels.GRADIENTS)


def _assert_close_all(got, want, **tol):
  for a, b in zip(got, want, strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), **tol)


@BOTH
def test_depthwise_conv_matches_grouped_conv_values_and_gradients(gradients):
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.standard_normal((2, 7, 9, 6)), jnp.float32)
  kernel = jnp.asarray(rng.standard_normal((3, 3, 1, 6)), jnp.float32)
  bias = jnp.asarray(rng.standard_normal((6,)), jnp.float32)
  g = jnp.asarray(rng.standard_normal((2, 7, 9, 6)), jnp.float32)
  ours = lambda *a: kernels.depthwise_conv(*a, gradients)
  np.testing.assert_allclose(np.asarray(ours(x, kernel, bias)), np.asarray(oracles.depthwise_conv(x, kernel, bias)),
                             atol=1e-5)
  grad = lambda f: jax.grad(lambda *a: jnp.sum(f(*a) * g), argnums=(0, 1, 2))(x, kernel, bias)
  _assert_close_all(grad(ours), grad(oracles.depthwise_conv), atol=1e-4, rtol=1e-5)


def test_gelu_is_exact_gelu_in_value_and_gradient():
  # Wide range, including the x ≪ 0 tail where 1 + erf cancels and the far tails where Φ saturates.
  x = jnp.concatenate([jnp.linspace(-12.0, 12.0, 4001, dtype=jnp.float32), jnp.asarray([0.0, -40.0, 40.0])])
  exact = lambda x: jax.nn.gelu(x, approximate=False)  # erfc form
  np.testing.assert_allclose(np.asarray(kernels.gelu(x)), np.asarray(exact(x)), atol=2e-6, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.vmap(jax.grad(kernels.gelu))(x)),
                             np.asarray(jax.vmap(jax.grad(exact))(x)), atol=1e-6)
  check_grads(kernels.gelu, (x[::97] + 0.013,), order=1, modes=("rev",), atol=1e-2, rtol=1e-2)
  xb = x.astype(jnp.bfloat16)
  assert kernels.gelu(xb).dtype == jnp.bfloat16
  assert jax.grad(lambda v: jnp.sum(kernels.gelu(v)))(xb).dtype == jnp.bfloat16


@BOTH
def test_conv2d_and_dense_gradients_on_a_batch_sharded_mesh(gradients):
  """Both backward forms (custom VJPs: token-major barrier, per-tap kernel gradient; or autodiff, the accelerators'
  choice) under jit on the 8-device ('data',) mesh."""
  mesh = sharding.make_mesh()
  assert mesh.size == 8
  rng = np.random.default_rng(3)
  x = jax.device_put(jnp.asarray(rng.standard_normal((8, 6, 5, 4)), jnp.float32), NamedSharding(mesh, P("data")))
  w3 = jnp.asarray(rng.standard_normal((3, 3, 4, 4)), jnp.float32)
  w1 = jnp.asarray(rng.standard_normal((4, 3)), jnp.float32)
  b3, b1 = jnp.ones((4,)), jnp.ones((3,))

  def net(x, w3, b3, w1, b1, conv_fn, dense_fn):
    return jnp.sum(jnp.sin(dense_fn(jnp.tanh(conv_fn(x, w3, b3, 2)), w1, b1)))

  grads = jax.jit(jax.grad(net, argnums=(0, 1, 2, 3, 4)), static_argnums=(5, 6))
  got = grads(x, w3, b3, w1, b1, lambda *a: kernels.conv2d(*a, gradients=gradients),
              lambda *a: kernels.dense(*a, gradients=gradients))
  want = grads(x, w3, b3, w1, b1, oracles.conv2d, oracles.dense)
  _assert_close_all(got, want, rtol=1e-5, atol=1e-4)
  assert got[0].sharding.spec == P("data")


def test_select_is_the_one_dispatch():
  tuned, plain = object(), object()
  assert kernels.select("tuned_cpu", tuned, plain) is tuned
  assert kernels.select("autodiff", tuned, plain) is plain
  for bad in ("auto", "custom"):  # 'auto' is resolved by mgdn_jax.platform before it reaches a kernel
    with pytest.raises(ValueError, match=f"gradients='{bad}'"):
      kernels.dense(jnp.ones((2, 3)), jnp.ones((3, 1)), None, bad)


def test_dilated_conv2d_keeps_its_custom_vjp_under_autodiff():
  """cuDNN's autodiff kernel gradient of a dilated conv is pathological (kernels/conv.py), so only dilation 1
  switches."""
  x, w = jnp.ones((1, 6, 6, 2)), jnp.ones((3, 3, 2, 2))
  jaxpr = lambda d, mode: str(jax.make_jaxpr(lambda a: kernels.conv2d(a, w, None, d, mode))(x))
  assert "custom_vjp" in jaxpr(2, "autodiff") and "custom_vjp" not in jaxpr(1, "autodiff")
  assert "custom_vjp" in jaxpr(1, "tuned_cpu")


def test_conv2d_rejects_even_or_mismatched_kernels():
  x = jnp.zeros((1, 4, 4, 3))
  with pytest.raises(ValueError, match="odd k"):
    kernels.conv2d(x, jnp.zeros((2, 2, 3, 1)), None)
  with pytest.raises(ValueError, match=r"\(k, k, 3, O\)"):
    kernels.conv2d(x, jnp.zeros((3, 3, 2, 1)), None)


def _module_grads(module, x, scale=1.):
  return nnx.grad(lambda m, x: jnp.sum(jnp.sin(scale * m(x))), argnums=(0, 1))(module, x)


@BOTH
@pytest.mark.parametrize("kernel,dilation,groups", [(1, 1, 1), (3, 1, 1), (3, 2, 1), (3, 1, 5)])
def test_kernel_conv_matches_nnx_conv(gradients, kernel, dilation, groups):
  """1×1 (dense), k×k (conv2d, dilated or not) and depthwise paths: same values and gradients as nnx.Conv."""
  layer = conv(5, 5 if groups > 1 else 4, kernel, dilation=dilation, groups=groups, rngs=nnx.Rngs(3))
  kernels.set_gradients(layer, gradients)
  assert isinstance(layer, kernels.KernelConv) and layer.gradients == gradients
  ref = nnx.Conv(5, layer.out_features, (kernel, kernel), padding=layer.padding, kernel_dilation=layer.kernel_dilation,
                 feature_group_count=groups, precision=jax.lax.Precision.HIGHEST, rngs=nnx.Rngs(0))
  ref.kernel[...], ref.bias[...] = layer.kernel[...], layer.bias[...]
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 6, 7, 5)), jnp.float32)
  np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(ref(x)), atol=1e-5)
  (g_layer, gx_layer), (g_ref, gx_ref) = _module_grads(layer, x), _module_grads(ref, x)
  np.testing.assert_allclose(np.asarray(gx_layer), np.asarray(gx_ref), atol=1e-5)
  for name in ("kernel", "bias"):
    np.testing.assert_allclose(np.asarray(getattr(g_layer, name)[...]), np.asarray(getattr(g_ref, name)[...]),
                               rtol=1e-5, atol=1e-4)
  assert conv(5, 4, kernel, rngs=nnx.Rngs(0), dtype=jnp.bfloat16)(x).dtype == jnp.bfloat16


@BOTH
@pytest.mark.parametrize("use_bias", [True, False])
def test_kernel_linear_matches_nnx_linear(gradients, use_bias):
  layer = linear(5, 4, use_bias=use_bias, rngs=nnx.Rngs(3))
  kernels.set_gradients(layer, gradients)
  ref = nnx.Linear(5, 4, use_bias=use_bias, rngs=nnx.Rngs(0))
  ref.kernel[...] = layer.kernel[...]
  if use_bias:
    ref.bias[...] = jnp.asarray(np.linspace(-1, 1, 4), jnp.float32)
    layer.bias[...] = ref.bias[...]
  x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 3, 6, 5)), jnp.float32)
  np.testing.assert_allclose(np.asarray(layer(x)), np.asarray(ref(x)), atol=1e-6)
  (g_layer, gx_layer), (g_ref, gx_ref) = _module_grads(layer, x, 3.), _module_grads(ref, x, 3.)
  np.testing.assert_allclose(np.asarray(gx_layer), np.asarray(gx_ref), atol=1e-5)
  for name in ("kernel", "bias") if use_bias else ("kernel",):
    np.testing.assert_allclose(np.asarray(getattr(g_layer, name)[...]), np.asarray(getattr(g_ref, name)[...]),
                               rtol=1e-5, atol=1e-5)


def test_set_gradients_reaches_every_kernel_layer_and_rejects_unknown_choices():
  from mgdn_jax import model as model_lib  # pylint: disable=g-import-not-at-top
  model = model_lib.create_model(model_lib.model_config("tiny_fusion"))
  layers = [m for _, m in nnx.iter_modules(model) if isinstance(m, (kernels.KernelConv, kernels.KernelLinear))]
  assert layers and all(m.gradients == "autodiff" for m in layers)
  kernels.set_gradients(model, "tuned_cpu")
  assert all(m.gradients == "tuned_cpu" for m in layers)
  with pytest.raises(ValueError, match="gradients='auto'"):
    kernels.set_gradients(model, "auto")
