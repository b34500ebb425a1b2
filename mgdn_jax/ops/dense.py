"""Token-wise dense layer y = x W + b with a backward pass that keeps XLA:CPU's weight gradient on a fast kernel.

Why a custom VJP: autodiff gives dW = xᵀ g as a dot contracting the token axis of both operands. XLA:CPU's
layout assignment then stores g channel-major ((O, T), an extra transposing copy) and runs the dot in Eigen's
transposed-transposed form, ~33 GFLOP/s on one core of this CPU against ~150 GFLOP/s for the same product with
g token-major. An optimization barrier on the flattened g pins it token-major. Measured (one core, tokens
4·128², 60 → 120, with the GELU feeding g as in the MLP): forward+backward 187 → 32 ms.
"""
import jax
import jax.numpy as jnp


def _apply(x, kernel, bias):
  y = jnp.einsum("...i,io->...o", x, kernel)
  return y if bias is None else y + bias


@jax.custom_vjp
def dense(x: jax.Array, kernel: jax.Array, bias: jax.Array | None) -> jax.Array:
  """(..., I) @ (I, O) (+ (O,)) → (..., O), all in the dtype of x (the caller casts)."""
  return _apply(x, kernel, bias)


def _fwd(x, kernel, bias):
  return _apply(x, kernel, bias), (x, kernel, bias)


def _bwd(residuals, g):
  x, kernel, bias = residuals
  # Pinned token-major (T, O): without the barrier XLA transposes g for the dW dot (see module docstring).
  g2 = jax.lax.optimization_barrier(g.reshape(-1, g.shape[-1]))
  x2 = x.reshape(-1, x.shape[-1])
  dkernel = jax.lax.dot_general(x2, g2, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  dx = jnp.einsum("to,io->ti", g2, kernel).reshape(x.shape)
  dbias = None if bias is None else jnp.sum(g2.astype(jnp.float32), axis=0).astype(bias.dtype)
  return dx, dkernel.astype(kernel.dtype), dbias


dense.defvjp(_fwd, _bwd)
