"""Small building blocks shared by the layers: PyTorch-default initialisers, conv/linear factories, DropPath.

Convs and linears are `kernels.KernelConv` / `kernels.KernelLinear`: stock parameters, tuned backward passes.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mgdn_jax.kernels import KernelConv, KernelLinear

def _numpy_rng(key):
  """A numpy Generator seeded from a concrete JAX key, or None while tracing (jit / eval_shape).

  Eager NNX construction would otherwise compile one random op per parameter shape (tens of seconds for the
  small nets on 2 CPU cores); numpy draws are instant. Under tracing the jax.random path is used instead.
  """
  if isinstance(key, jax.core.Tracer):
    return None
  data = np.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key)
  return np.random.default_rng(data.astype(np.uint32).ravel().tolist())


def _uniform_init(bound_fn):
  """U(±bound) with bound = bound_fn(shape)."""

  def init(key, shape, dtype=jnp.float32):
    bound = bound_fn(shape)
    rng = _numpy_rng(key)
    if rng is None:
      return jax.random.uniform(key, shape, dtype, -bound, bound)
    return jnp.asarray(rng.uniform(-bound, bound, shape), dtype)

  return init


def normal_02(key, shape, dtype=jnp.float32):
  """timm's trunc_normal_(std=.02) with bounds ±2 (absolute): at std 0.02 effectively an untruncated normal."""
  rng = _numpy_rng(key)
  if rng is None:
    return 0.02 * jax.random.normal(key, shape, dtype)
  return jnp.asarray(0.02 * rng.standard_normal(shape), dtype)


# PyTorch's Conv2d default (kaiming_uniform with a=√5) is U(±1/√fan_in) for weights and biases alike;
# an HWIO kernel's fan_in is kh·kw·I.
_torch_conv_kernel_init = _uniform_init(lambda shape: 1.0 / math.sqrt(int(np.prod(shape[:-1]))))


def _uniform_bias_init(fan_in: int):
  return _uniform_init(lambda shape: 1.0 / math.sqrt(fan_in))


def conv(in_ch: int, out_ch: int, kernel: int, *, rngs: nnx.Rngs, dilation: int = 1, groups: int = 1,
         dtype=jnp.float32) -> KernelConv:
  """k×k conv, stride 1, zero 'same' padding, bias, PyTorch default init (params always f32)."""
  pad = dilation * (kernel - 1) // 2
  fan_in = (in_ch // groups) * kernel * kernel
  return KernelConv(in_ch, out_ch, (kernel, kernel), padding=((pad, pad), (pad, pad)),
              kernel_dilation=(dilation, dilation), feature_group_count=groups,
              kernel_init=_torch_conv_kernel_init, bias_init=_uniform_bias_init(fan_in),
              dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


def linear(in_f: int, out_f: int, *, rngs: nnx.Rngs, use_bias: bool = True, dtype=jnp.float32) -> KernelLinear:
  """Linear layer with the official init: weights N(0, 0.02²), bias 0."""
  return KernelLinear(in_f, out_f, use_bias=use_bias, kernel_init=normal_02,
                      bias_init=nnx.initializers.zeros_init(), dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


def layer_norm(dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32) -> nnx.LayerNorm:
  """LayerNorm over channels, eps 1e-5 as in PyTorch; statistics in f32."""
  return nnx.LayerNorm(dim, epsilon=1e-5, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)


def leaky_relu(x: jax.Array, slope: float) -> jax.Array:
  return jnp.where(x >= 0, x, slope * x)


def drop_path(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
  """Stochastic depth (timm, scale_by_keep): drop whole samples with prob `rate`, scale the rest by 1/keep.

  Identity when `rng` is None (evaluation) or the rate is 0.
  """
  if rng is None or rate == 0.0:
    return x
  keep = 1.0 - rate
  mask = jax.random.bernoulli(rng, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
  return jnp.where(mask, x / keep, jnp.zeros_like(x))
