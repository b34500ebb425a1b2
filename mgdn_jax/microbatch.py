"""Micro-batching: one training step's gradient accumulated over sequential slices of its batch.

Every loss of the training step is a mean of per-image terms (L1, μ-law L1, the masked MI averaged over images),
so the step's loss and gradient are the mean of those of n equal micro-batches: a `lax.scan` over them computes
the same update (up to float summation order; with DropPath on, each micro-batch draws its own masks) while
holding the activations of one micro-batch at a time.

Why it is on by default on CPU (`config.microbatch_size = 0`: 2 images per device there, the whole batch on
accelerators): XLA:CPU maps the executable's whole temporary buffer afresh on every run, and the kernel zeroes
each page on its first touch (benchmarks/README.md, session 8: ~18 % of the HDR step's CPU time). A loop body's
buffers are touched once and then reused. Batch 4 × 128² on this 2-core CPU, `train_bench.py`, steps of micro-
batches of 4 / 2 / 1 images: HDR 9.5–11.2 / 7.9 / 8.8 s (plan 11.2 / 5.7 / 2.9 GB, kernel CPU s 2.7–3.4 / 0.4 /
0.2), MEF 4.9 / 4.3–4.6 / 4.7 s, MFF 1.52 / 1.39 / 1.37 s. Smaller than 2 images, the per-op overhead of the
smaller ops eats the gain. On accelerators the whole batch keeps the device busiest.
"""
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections

CPU_IMAGES_PER_DEVICE = 2


def num_microbatches(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> int:
  """How many sequential micro-batches one step of `config` runs on `mesh` (1 = the whole batch at once)."""
  batch, devices = config.batch_size, mesh.devices.size
  size = config.get('microbatch_size', 0)  # workdirs written before the field existed: auto
  if size == 0:
    on_cpu = mesh.devices.flat[0].platform == 'cpu'
    size = min(batch, CPU_IMAGES_PER_DEVICE * devices) if on_cpu else batch
    size = size if batch % size == 0 else batch
  if size < 0 or batch % size or size % devices:
    raise ValueError(f'config.microbatch_size={config.get("microbatch_size")}: must divide config.batch_size='
                     f'{batch} and be a multiple of the {devices} devices of the mesh (0 = auto).')
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
