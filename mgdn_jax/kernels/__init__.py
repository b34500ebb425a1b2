"""Backend-tuned implementations of generic layers (dense, k×k and depthwise conv, GELU), apart from the paper's ops.

Each replaces a JAX autodiff gradient that XLA:CPU runs on slow kernels with a hand-written VJP (see each module);
`dispatch.select` is the one place that picks between the tuned VJP and autodiff, from a `gradients` value that
training takes from `config.gradients` ('auto' resolved by `mgdn_jax.platform` from the target mesh).
`KernelConv` / `KernelLinear` are the NNX layers computed by them.
"""
from mgdn_jax.kernels.conv import conv2d
from mgdn_jax.kernels.dense import dense
from mgdn_jax.kernels.depthwise import depthwise_conv
from mgdn_jax.kernels.dispatch import AUTODIFF, GRADIENTS, PALLAS_TPU, PFF_KERNELS, TUNED_CPU, XLA, select
from mgdn_jax.kernels.gelu import gelu
from mgdn_jax.kernels.layers import KernelConv, KernelLinear, set_gradients
