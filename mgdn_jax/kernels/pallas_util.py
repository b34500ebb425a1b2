"""What the Pallas TPU kernels (attention_tpu.py, mlp_tpu.py, lce_tpu.py) share: whole-array and per-grid-step
BlockSpecs, and running a kernel on each device's own images of a ('data',) mesh."""
from typing import Callable

import jax
from jax.experimental import pallas as pl
from jax.sharding import PartitionSpec as P


def whole(shape: tuple[int, ...]) -> pl.BlockSpec:
  """The whole array in every grid step (weights, the position bias)."""
  return pl.BlockSpec(shape, lambda i: (0,) * len(shape))


def per_step(shape: tuple[int, ...]) -> pl.BlockSpec:
  """One (1, *shape) slice per grid step: partial weight gradients, summed outside."""
  return pl.BlockSpec((1,) + shape, lambda i: (i,) + (0,) * len(shape))


def per_device(run: Callable, mesh: jax.sharding.Mesh | None, images: jax.Array, *replicated) -> jax.Array:
  """`run(images, *replicated)`, on each device's own images when `mesh` has several devices.

  A custom call is opaque to XLA's SPMD partitioner, which would gather every image onto every device; under
  shard_map the kernels see their device's images, and the replicated operands' gradients are summed over devices.
  """
  if mesh is None or mesh.devices.size == 1:
    return run(images, *replicated)
  data = P(mesh.axis_names[0])
  return jax.shard_map(run, mesh=mesh, in_specs=(data,) + (P(),) * len(replicated), out_specs=data,
                       check_vma=False)(images, *replicated)
