"""Dense k×k convolution (stride 1, zero 'same' padding, optional dilation) whose kernel gradient is k² matmuls.

Why a custom VJP: XLA:CPU computes the kernel gradient of a 3×3 convolution as a convolution over the whole
image, ~30 GFLOP/s on an x86 core (the forward convolution runs at ~100). Per tap, the gradient is
dW[a, b] = Σ_tokens x_shifted(a, b)ᵀ g: one token-contracting matmul, fast when g is token-major, which an
optimization barrier guarantees (see `kernels/dense.py`). Measured (one core, (4, 128, 128, 60) → 60, fwd + bwd with
an elementwise consumer): 340 → 137 ms; 120 → 60: 574 → 234 ms. The input gradient is a forward convolution
with the flipped kernel, which XLA:CPU runs on its library kernels (see `_bwd` for why it is spelled out).

Memory: the taps run one after another (`lax.map`), so one shifted copy of the input exists at a time. (The
barrier also takes the padded input; it does not order the schedule: XLA:CPU removes barriers before scheduling.)
Unrolled taps were as fast but raised the MEF step's plan 9.4 → 11.1 GB. Training steps (batch 4, 128², interleaved
A/B on 2 x86 cores, together with `kernels.dense`): MEF 12.2–14.0 → 8.7–9.3 s, HDR 20.7–24.0 → 13.3–17.6 s, same
plans.

Under gradients='autodiff' (`kernels.dispatch`), undilated convs take XLA's autodiff gradient (cuDNN); dilated ones
keep this VJP.
"""
import functools

import jax
import jax.numpy as jnp

from mgdn_jax.kernels.dense import bias_gradient, token_contract
from mgdn_jax.kernels.dispatch import AUTODIFF, TUNED_CPU, select


def _conv(x, kernel, dilation):
  pad = dilation * (kernel.shape[0] - 1) // 2
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((pad, pad), (pad, pad)), rhs_dilation=(dilation,) * 2,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _apply(x, kernel, bias, dilation):
  y = _conv(x, kernel, dilation)
  return y if bias is None else y + bias


def conv2d(x: jax.Array, kernel: jax.Array, bias: jax.Array | None, dilation: int = 1,
           gradients: str = AUTODIFF) -> jax.Array:
  """(N, H, W, I) * (k, k, I, O) (+ (O,)) → (N, H, W, O); odd k, stride 1, zero padding dilation·(k−1)/2.

  `gradients` picks the VJP (`kernels.dispatch`); dilated convs use the per-tap one under both choices.
  """
  k = kernel.shape[0]
  if kernel.ndim != 4 or kernel.shape[1] != k or k % 2 == 0 or kernel.shape[2] != x.shape[-1]:
    raise ValueError(f"conv2d: kernel {kernel.shape} must be (k, k, {x.shape[-1]}, O) with odd k")
  # Dilated convs keep the per-tap kernel gradient on every backend: cuDNN runs autodiff's form of it (a 128×128
  # window, stride-2 convolution with a (3, 3, 60, 60) output: 10 thread blocks) in 3.3 ms on an H100, 9.8 of the
  # HDR step's 49 GPU-ms (bf16, batch 4, 128²).
  return select(TUNED_CPU if dilation > 1 else gradients, _conv2d, _apply)(x, kernel, bias, dilation)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv2d(x, kernel, bias, dilation):
  return _apply(x, kernel, bias, dilation)


def _fwd(x, kernel, bias, dilation):
  return _apply(x, kernel, bias, dilation), (x, kernel, bias)


def _bwd(dilation, residuals, g):
  x, kernel, bias = residuals
  n, h, w, c = x.shape
  k = kernel.shape[0]
  # The input gradient is the forward conv of g with the flipped kernel, I/O swapped. Materialised behind a barrier
  # because otherwise XLA folds the swap into the convolution's dimension labels (HWOI), which XLA:CPU's library
  # kernels do not take inside a while-loop body (the micro-batch loop of the training step): it then ran its
  # naive convolution loop, 400 ms instead of ~30 ms for (2, 128, 128, 60) 3×3.
  flipped = jax.lax.optimization_barrier(jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
  dx = _conv(g, flipped, dilation)
  pad = dilation * (k - 1) // 2
  xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  xp, g2 = jax.lax.optimization_barrier((xp, g.reshape(-1, g.shape[-1])))
  offsets = jnp.asarray([(a * dilation, b * dilation) for a in range(k) for b in range(k)], jnp.int32)

  def tap(offset):
    shifted = jax.lax.dynamic_slice(xp, (0, offset[0], offset[1], 0), (n, h, w, c)).reshape(-1, c)
    return token_contract(shifted, g2)

  dkernel = jax.lax.map(tap, offsets).reshape(kernel.shape).astype(kernel.dtype)
  return dx, dkernel, bias_gradient(g2, bias)


_conv2d.defvjp(_fwd, _bwd)
