"""Micro-batching: one training step's gradient accumulated over sequential slices of its batch.

Every loss of the training step is a mean of per-image terms (L1, μ-law L1, the masked MI averaged over images),
so the step's loss and gradient are the mean of those of n equal micro-batches: a `lax.scan` over them computes
the same update (up to float summation order; with DropPath on, each micro-batch draws its own masks) while
holding the activations of one micro-batch at a time. How many micro-batches a step runs by default is a
backend decision, taken by `mgdn_jax.platform.microbatch_size` from the target mesh.
"""
from typing import Any, Callable

import jax
import jax.numpy as jnp


def num_microbatches(batch: int, size: int, devices: int) -> int:
  """batch // size: how many sequential micro-batches of `size` images a step of `batch` images runs on `devices`
  (1 = the whole batch at once); a one-line error unless `size` divides `batch` and is a multiple of `devices`."""
  if size <= 0 or batch % size or size % devices:
    raise ValueError(f'config.microbatch_size={size}: must divide config.batch_size={batch} and be a multiple of '
                     f'the {devices} devices of the mesh (0 = auto).')
  return batch // size


def split(batch: Any, n: int) -> Any:
  """Leaves (B, ...) → (n, B/n, ...). Micro-batch m holds rows m, n + m, 2n + m, …: each device's contiguous block
  of the 'data'-split batch splits into its own share of every micro-batch, so no row moves between devices."""
  return jax.tree.map(lambda x: jnp.swapaxes(x.reshape(x.shape[0] // n, n, *x.shape[1:]), 0, 1), batch)


def mean_over_microbatches(fn: Callable[[Any, jax.Array], Any], batch: Any, key: jax.Array, n: int,
                           zeros: Any) -> Any:
  """Mean over n sequential micro-batches of `fn(micro_batch, key_m)` (a pytree shaped like `zeros`).

  n == 1 calls `fn(batch, key)` directly (the same key: results do not depend on whether the scan exists).
  Micro-batch m gets `fold_in(key, m)`.
  """
  if n == 1:
    return fn(batch, key)

  def body(total, xs):
    m, part = xs
    return jax.tree.map(jnp.add, total, fn(part, jax.random.fold_in(key, m))), None

  total, _ = jax.lax.scan(body, zeros, (jnp.arange(n), split(batch, n)))
  return jax.tree.map(lambda t: t / n, total)
