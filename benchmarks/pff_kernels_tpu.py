"""One PFF block and each of its parts, forward + backward, as XLA:TPU compiles them with and without the Pallas
kernels (`config.pff_kernels`): HBM bytes accessed and kernels (fusions) per chip, compiled ahead of time.

  python benchmarks/pff_kernels_tpu.py                          # HDR's block (C 60, 6 heads, 8×8 windows, MLP ×4)
  python benchmarks/pff_kernels_tpu.py --task=mff --topology=v5e:2x2 --images_per_chip=2

Needs libtpu (the bench extra), as benchmarks/aot_tpu.py does; nothing runs on a TPU. Parts: the window attention
layer (on the block's (N, nW, T, C) windows, shifted-window mask), the MLP branch with LayerNorm 2, the local context
extractor (LCE), and the whole shifted block. Each is `jax.grad` of Σ part(x) · cotangent with respect to its
parameters and input, the images split over the topology's chips; numbers are one chip's (`cost_analysis()` 'bytes
accessed', fusions as aot_tpu.py counts them). A Pallas kernel's bytes are its operands and results: what it moves
between HBM and VMEM.
"""
import os
import sys

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import aot_tpu  # pylint: disable=g-import-not-at-top,wrong-import-position

PROG = 'pff_kernels_tpu'
PARTS = ('attention', 'mlp', 'lce', 'block')


def part_fn(part: str, block, mask):
  """x ↦ the part's output, from a PFFBlock module (its attention on windows of x, its MLP branch, its LCE, itself)."""
  from mgdn_jax.ops import window_partition  # pylint: disable=g-import-not-at-top
  if part == 'attention':
    return lambda x: block.attn(window_partition(x, block.window_size), mask)
  if part == 'mlp':
    return block._mlp_branch  # pylint: disable=protected-access
  if part == 'lce':
    return block.lce
  return block


def measure(task: str, topology: str, images_per_chip: int, patch: int) -> list[dict]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from mgdn_jax import kernels, sharding  # pylint: disable=g-import-not-at-top
  from mgdn_jax.layers import pff  # pylint: disable=g-import-not-at-top
  from mgdn_jax.ops import shift_attention_mask  # pylint: disable=g-import-not-at-top
  mesh = aot_tpu.topology_mesh(topology)
  m = aot_tpu.task_config(task, '', 1, 1, patch, '').model
  ws = m.window_size
  block = pff.PFFBlock(m.embed_dim, m.num_heads[0], ws, ws // 2, m.mlp_ratio, 0.0, rngs=nnx.Rngs(0))
  mask = jnp.asarray(shift_attention_mask(patch, patch, ws, ws // 2))
  x = jax.ShapeDtypeStruct((images_per_chip * mesh.devices.size, patch, patch, m.embed_dim), jnp.float32,
                           sharding=sharding.batch_sharding(mesh))
  rows = []
  for part in PARTS:
    for choice in kernels.PFF_KERNELS:
      pff.use_kernels(block, choice, mesh)
      graphdef, params = nnx.split(block)

      def loss(params, x, cotangent):
        out = part_fn(part, nnx.merge(graphdef, params), mask)(x)
        return jnp.sum(out * cotangent.reshape(out.shape))

      compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(
          sharding.abstract_with_sharding(params, mesh), x, x).compile()
      cost = compiled.cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      rows.append(dict(part=part, pff_kernels=choice, bytes=float(cost['bytes accessed']),
                       fusions=aot_tpu.hlo_stats(compiled.as_text())['fusions']))
      print(f'{part:9s} {choice:10s} {rows[-1]["bytes"] / 1e6:9.1f} MB {rows[-1]["fusions"]:4d} fusions', flush=True)
  return rows


def main(argv=None) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from mgdn_jax import cli, tasks  # pylint: disable=g-import-not-at-top

  def define(f):
    flags.DEFINE_enum('task', 'hdr', list(tasks.NAMES), "whose PFF block (configs/<task>.py's model)", flag_values=f)
    flags.DEFINE_string('topology', 'v5e:2x2', 'TPU topology as libtpu names it', flag_values=f)
    flags.DEFINE_integer('images_per_chip', 1, 'images per chip', lower_bound=1, flag_values=f)
    flags.DEFINE_integer('patch', 128, 'image side (a multiple of the window size)', lower_bound=8, flag_values=f)

  args, _ = cli.parse(PROG, __doc__, define, argv)
  print(f'{args.task} PFF block, {args.images_per_chip} × {args.patch}² per chip on {args.topology}, forward + '
        'backward, per chip:')
  measure(args.task, args.topology, args.images_per_chip, args.patch)


if __name__ == '__main__':
  main()
