"""What the Pallas TPU kernels (attention_tpu.py, mlp_tpu.py, lce_tpu.py) share: whole-array and per-grid-step
BlockSpecs, running a kernel on each device's own images of a ('data',) mesh, the (C, W) image-row layout and the
f32 matmul forms used on it."""
from typing import Callable

import jax
import jax.numpy as jnp
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


def image_rows(x: jax.Array) -> jax.Array:
  """(N, H, W, C) → (N·H, C, W): every image row as a (C, W) matrix. On a TPU this is the activations' own layout
  when W fills the 128 lanes (XLA puts W minor there), so the transposes are free."""
  n, h, w, c = x.shape
  return x.transpose(0, 1, 3, 2).reshape(n * h, c, w)


def from_image_rows(rows: jax.Array, height: int) -> jax.Array:
  """(N·H, C, W) → (N, H, W, C), the inverse of `image_rows`."""
  _, c, w = rows.shape
  return rows.reshape(-1, height, c, w).transpose(0, 1, 3, 2)


def dot(a, b):
  """a b in f32."""
  return jnp.dot(a, b, preferred_element_type=jnp.float32)


def dot_t(a, b):
  """aᵀ b in f32, contracting the first axis of both."""
  return jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)


def outer(a, b):
  """a bᵀ in f32, contracting the lanes (the image width) of both."""
  return jnp.einsum('iw,jw->ij', a, b, preferred_element_type=jnp.float32)


def lane_sum(a):
  """(K, W) → (K, 1): the sum over the image width."""
  return jnp.sum(a, axis=1, keepdims=True)
