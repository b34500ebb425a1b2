"""Forward and forward+backward time, memory and compile time of the MGDN presets, and of the dynamic filter alone.

  python benchmarks/model_bench.py                                    # all tasks, batch 1 and 4, 128², + filter
  python benchmarks/model_bench.py --tasks=mff --batches=1 --size=64 --repeats=2 --nofilter       # quick
  python benchmarks/model_bench.py --tasks= --filter_size=64          # only the dynamic-filter table

Model rows: random weights of the official presets (`model_lib.create_model`), random inputs, jitted
`fused = model(*streams)` (forward) and `grad(sum(fused))` w.r.t. the parameters (forward+backward), eval mode.
Times are the median of --repeats calls after one warm-up call. `exec MB` is the compiled executable's
`memory_analysis()`: temp + argument + output bytes (deterministic; the peak live set XLA planned). `compile s` is
trace + lower + XLA compile of the forward+backward function. The process RSS high-water mark is printed once at
the end (it accumulates over all cases of one process, so per-case RSS comes from train_bench.py's isolated runs).
Filter rows: `ops.dynamic_filter` (custom VJP), `baselines.dynamic_filter_autodiff` (the same forward, JAX
autodiff) and `baselines.dynamic_filter_patches` (unfold formulation) at MEF sizes, N=4, 128², C=60, k=7.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from mgdn_jax import platform  # pylint: disable=g-import-not-at-top,wrong-import-position
from mgdn_jax import tasks  # pylint: disable=g-import-not-at-top,wrong-import-position

PRESETS = tuple(p for name in tasks.NAMES for p in tasks.get(name).presets())


def _timed(fn, args, repeats):
  compiled, stats = common.compile_stats(fn, *args)
  stats['time_s'] = common.median_time(lambda: compiled(*args), warmup=1, repeats=repeats)
  return stats


def model_rows(task: str, batch: int, size: int, repeats: int) -> list:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from mgdn_jax import kernels  # pylint: disable=g-import-not-at-top
  from mgdn_jax import model as model_lib  # pylint: disable=g-import-not-at-top
  cfg = model_lib.model_config(task)
  target = jax.devices()[0].platform  # every case runs on this device
  model = model_lib.create_model(cfg)
  kernels.set_gradients(model, platform.resolve_gradients('auto', target))  # as the training step
  graphdef, params = nnx.split(model)
  rng = np.random.default_rng(0)
  streams = [jnp.asarray(rng.random((batch, size, size, c), dtype=np.float32)) for c in cfg.in_channels]
  fwd = jax.jit(lambda p, *s: nnx.merge(graphdef, p)(*s)[0])  # as inference
  grad = jax.jit(jax.grad(lambda p, *s: jnp.sum(nnx.merge(graphdef, p)(*s)[0])),
                 compiler_options=platform.train_compiler_options(True, target))  # as the training step
  f = _timed(fwd, (params, *streams), repeats)
  b = _timed(grad, (params, *streams), repeats)
  return [task, batch, f'{size}²', f['time_s'] * 1e3, b['time_s'] * 1e3, f['mem_mb'], b['mem_mb'],
          b['compile_s'], b['flops'] / 1e9 if b['flops'] else None, common.load_avg()]


def filter_rows(n: int, size: int, channels: int, repeats: int) -> list:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from benchmarks import baselines  # pylint: disable=g-import-not-at-top
  from mgdn_jax import ops  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random((n, size, size, channels), dtype=np.float32))
  k = jnp.asarray(rng.standard_normal((n, size, size, 49), dtype=np.float32))
  rows = []
  for name, op in (('custom VJP (model)', ops.dynamic_filter), ('autodiff', baselines.dynamic_filter_autodiff),
                   ('patches (unfold)', baselines.dynamic_filter_patches)):
    f = _timed(jax.jit(lambda a, b, op=op: op(a, b, 7)), (x, k), repeats)
    b = _timed(jax.jit(jax.grad(lambda a, b, op=op: jnp.sum(op(a, b, 7)), argnums=(0, 1))), (x, k), repeats)
    rows.append([name, f'{n} × {size}² × {channels}', f['time_s'] * 1e3, b['time_s'] * 1e3, f['mem_mb'],
                 b['mem_mb'], b['compile_s'], common.load_avg()])
  return rows


PROG = 'model_bench'


def define_flags(f) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  common.define_list('tasks', 'mef,mff,hdr,gdsr_x4,gdsr_x16', f'comma-separated subset of {PRESETS} (empty: no '
                     'model rows)', f, choices=PRESETS)
  common.define_list('batches', '1,4', 'comma-separated batch sizes of the model rows', f, item=int, lower_bound=1)
  flags.DEFINE_integer('size', 128, 'side of the square model inputs', lower_bound=1, flag_values=f)
  flags.DEFINE_integer('repeats', 3, 'timed calls per case after one warm-up call (median reported)', lower_bound=1,
                       flag_values=f)
  flags.DEFINE_bool('filter', True, 'also time the dynamic filter alone (--nofilter: model rows only)',
                    flag_values=f)
  flags.DEFINE_integer('filter_batch', 4, 'N of the dynamic-filter rows', lower_bound=1, flag_values=f)
  flags.DEFINE_integer('filter_size', 128, 'side of the dynamic-filter inputs', lower_bound=1, flag_values=f)
  flags.DEFINE_integer('filter_channels', 60, 'C of the dynamic-filter inputs', lower_bound=1, flag_values=f)


def parse_args(argv=None):
  """The flags' values; `--help` and usage errors exit (mgdn_jax/cli.py)."""
  from mgdn_jax import cli  # pylint: disable=g-import-not-at-top
  return cli.parse(PROG, __doc__, define_flags, argv)[0]


def main(argv=None) -> None:
  args = parse_args(argv)
  print(f'Machine: {common.machine()}\n')
  if args.tasks:
    rows = []
    for task in args.tasks:
      for batch in args.batches:
        rows.append(model_rows(task, batch, args.size, args.repeats))
        print(f'  done {task} batch {batch}', file=sys.stderr, flush=True)
    print(common.markdown_table(['task', 'batch', 'size', 'fwd ms', 'fwd+bwd ms', 'fwd exec MB',
                                 'fwd+bwd exec MB', 'fwd+bwd compile s', 'fwd+bwd GFLOP (XLA)', 'load avg'],
                                rows) + '\n')
  if args.filter:
    rows = filter_rows(args.filter_batch, args.filter_size, args.filter_channels, args.repeats)
    print(common.markdown_table(['dynamic filter', 'N × H·W × C', 'fwd ms', 'fwd+bwd ms', 'fwd exec MB',
                                 'fwd+bwd exec MB', 'fwd+bwd compile s', 'load avg'], rows) + '\n')
  print(f'Process peak RSS: {common.peak_rss_mb():.0f} MB (all cases above)')


if __name__ == '__main__':
  parse_args()  # --help and usage errors answer before the process re-exec and JAX's import
  platform.tune_process()
  main()
