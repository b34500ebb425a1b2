"""Device mesh and shardings: a 1-D ('data',) mesh over every device of every process.

The train state is replicated (P()), batches are split along their leading axis (P('data')); XLA inserts the
gradient all-reduce. Axes are `AxisType.Auto`: with Explicit axes (jax.make_mesh's default) ordinary reshapes of a
batch-sharded activation raise ShardingTypeError.
"""

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA = 'data'


def make_mesh(devices: Any = None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA,), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA))


def check_batch_size(global_batch: int, mesh: Mesh) -> None:
  """One-line error when the global batch cannot be split evenly over devices and processes."""
  n, procs = mesh.devices.size, jax.process_count()
  if global_batch % n:
    raise ValueError(f'config.batch_size={global_batch} is not divisible by the {n} devices of the mesh; '
                     f'use a multiple of {n} (e.g. --config.batch_size={max(n, global_batch // n * n or n)}).')
  if global_batch % procs:
    raise ValueError(f'config.batch_size={global_batch} is not divisible by the {procs} processes.')


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Host-local numpy batch (this process's rows) → global jax.Arrays split over 'data'.

  Non-numeric entries (e.g. example names) stay on the host.
  """
  sharding = batch_sharding(mesh)
  out = {}
  for k, v in local.items():
    v = np.asarray(v)
    if v.dtype.kind in 'fiub':
      out[k] = jax.make_array_from_process_local_data(sharding, v)
  return out


def abstract_with_sharding(abstract_state: Any, mesh: Mesh) -> Any:
  """ShapeDtypeStructs carrying the target sharding: orbax restores onto this mesh whatever wrote the checkpoint."""
  rep = replicated(mesh)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=rep), abstract_state)
