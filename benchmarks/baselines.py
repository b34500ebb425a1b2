"""Formulations the benchmarks measure the model's ops against; not used by the model.

  dynamic_filter_autodiff — the op's own shift-accumulate forward, differentiated by JAX (what its custom VJP
                            replaces).
  dynamic_filter_patches  — the unfold formulation of the official code: materialises (N, H, W, C, k²).
"""
import jax
import jax.numpy as jnp

# The op's own input check and forward (private to it): the baselines differ from the op only where named above.
from mgdn_jax.ops.dynamic_filter import _check, _forward  # pylint: disable=g-importing-member


def dynamic_filter_autodiff(x: jax.Array, kernels: jax.Array, kernel_size: int = 7) -> jax.Array:
  """(N, H, W, C), (N, H, W, k²) → (N, H, W, C): `ops.dynamic_filter`'s forward without its custom VJP."""
  _check(x, kernels, kernel_size)
  return _forward(x, kernels, kernel_size)


def dynamic_filter_patches(x: jax.Array, kernels: jax.Array, kernel_size: int = 7) -> jax.Array:
  """(N, H, W, C), (N, H, W, k²) → (N, H, W, C) through `conv_general_dilated_patches` of the edge-padded input."""
  _check(x, kernels, kernel_size)
  n, h, w, c = x.shape
  r = kernel_size // 2
  patches = jax.lax.conv_general_dilated_patches(
      jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge"), (kernel_size, kernel_size), (1, 1), "VALID",
      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  # conv_general_dilated_patches orders the feature axis as (C, kh, kw).
  patches = patches.reshape(n, h, w, c, kernel_size * kernel_size)
  return jnp.einsum("nhwct,nhwt->nhwc", patches, kernels)
