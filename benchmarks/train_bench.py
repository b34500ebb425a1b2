"""Train-step throughput of the paper configurations and full-image HDR inference, on whatever backend JAX sees.

  python benchmarks/train_bench.py                                  # mef, mff, hdr train steps + HDR 1000x1500
  python benchmarks/train_bench.py --tasks=mff --steps=3 --nohdr_inference       # quick
  python benchmarks/train_bench.py --json_out=/tmp/jax_train.json   # also keep the raw numbers (compare_official.py)
  python benchmarks/train_bench.py --nomi_loss --nohdr_inference    # the step without the masked-MI loss
  python benchmarks/train_bench.py --dtype=bfloat16 --steps=10 --nohdr_inference    # bf16 compute (accelerators)
  python benchmarks/train_bench.py --microbatch_size=4 --nohdr_inference    # batch 4 in one piece (CPU default: 2)
  python benchmarks/train_bench.py --gradients=autodiff --nohdr_inference   # the accelerators' backward on any device

Train step: exactly the training loop's jitted step (`mgdn_jax.train.build(...).step_fn`: forward with DropPath,
L1 / μ-law L1 + masked MI loss (weight 0.01), backward, Adam, EMA, finite-check; state donated) of
`configs/<task>.py` at batch 4, 128² patches, on one device. Inputs are random (time does not depend on values).
Micro-batches: the step's own default (`config.microbatch_size = 0`: 2 images per micro-batch on CPU, the whole
batch on accelerators; mgdn_jax/platform.py), or --microbatch_size. Backward passes of the conv/linear layers:
`config.gradients` ('auto': the XLA:CPU-tuned VJPs on CPU, autodiff elsewhere), or --gradients.
FLOP/s and MFU use the step's FLOPs counted from its jaxpr (benchmarks/roofline.py: every dot, convolution and
arithmetic op, loops times their trip count; the same count on every backend). XLA's own count
(`cost_analysis()`, × micro-batches) is shown beside it: it counts loop bodies once (the per-tap loops of the
custom gradients) and XLA:GPU leaves out cuDNN's convolutions. MFU needs a known peak
(accelerators in common.PEAK_TFLOPS, or --peak_tflops for a CPU). Memory = `compiled.memory_analysis()`
(temp + arguments + outputs − donated aliases); RSS = process high-water mark, each case in its own process;
device peak = `memory_stats()['peak_bytes_in_use']` where the backend keeps it (GPUs).
HDR inference: three 6-channel 1000×1500 inputs in one untiled jitted forward pass (random official-size weights).
"""
import importlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from mgdn_jax import platform  # pylint: disable=g-import-not-at-top,wrong-import-position
from mgdn_jax import tasks  # pylint: disable=g-import-not-at-top,wrong-import-position


def train_config(task: str, batch: int, size: int, without_mi_loss: bool = False, dtype: str = 'float32',
                 microbatch_size: int = 0, gradients: str = 'auto'):
  config = importlib.import_module(f'configs.{task}').get_config()
  config.batch_size = batch
  config.patch_size = size
  config.model.dtype = dtype  # compute dtype; parameters, optimizer state and losses stay f32
  config.microbatch_size = microbatch_size
  config.gradients = gradients
  if without_mi_loss:
    config.mi_weight = 0.  # the step then skips the masked-MI loss (and its gradient) altogether
  return config


def batch_shapes(config) -> dict:
  """{'stream_k': (B, P, P, C_k), 'target': (B, P, P, C_out)} f32 shapes of one training batch of `config`."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  b, p, m = config.batch_size, config.patch_size, config.model
  shapes = {f'stream_{k}': jax.ShapeDtypeStruct((b, p, p, c), np.float32) for k, c in enumerate(m.in_channels)}
  shapes['target'] = jax.ShapeDtypeStruct((b, p, p, m.out_channels), np.float32)
  return shapes


def run_train(task: str, batch: int, size: int, steps: int, peak_tflops: float,
              without_mi_loss: bool = False, dtype: str = 'float32', microbatch_size: int = 0,
              gradients: str = 'auto') -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from mgdn_jax import kernels, sharding, train  # pylint: disable=g-import-not-at-top
  config = train_config(task, batch, size, without_mi_loss, dtype, microbatch_size, gradients)
  mesh = sharding.make_mesh(jax.devices()[:1])
  t = time.perf_counter()
  built = train.build(config, mesh)
  microbatches = built.plan.microbatches
  state = train.create_state(built)
  setup_s = time.perf_counter() - t
  rng = np.random.default_rng(0)
  local = {k: rng.random(v.shape, dtype=np.float32) for k, v in batch_shapes(config).items()}
  data = sharding.global_batch(local, mesh)
  compiled, stats = common.compile_stats(built.step_fn, state, data)
  state, _ = compiled(state, data)  # warm-up (first run touches fresh buffers)
  common.block(state)
  metrics = None

  def step():
    nonlocal state, metrics
    state, metrics = compiled(state, data)
    common.block(state)

  timing = common.timed_steps(step, steps)
  step_s = timing['step_s']
  if not np.isfinite(float(metrics.compute()['loss'])):
    raise FloatingPointError(f'train_bench: non-finite loss for {task}')
  peak = common.peak_flops(peak_tflops)
  flops = stats['jaxpr_flops']
  xla_flops = stats['flops'] * microbatches if stats['flops'] else None  # XLA counts the loop body once
  flops_s = flops / step_s
  return dict(kind='train', task=task, batch=batch, size=size, microbatches=microbatches, dtype=dtype,
              mi_loss=not without_mi_loss,
              ops_gradients='custom' if built.plan.gradients == kernels.TUNED_CPU else 'autodiff', **timing,
              steps_per_s=1 / step_s, images_per_s=batch / step_s,
              step_gflop=flops / 1e9, xla_gflop=xla_flops / 1e9 if xla_flops else None,
              gflops_per_s=flops_s / 1e9, mfu=flops_s / peak if peak else None, mem_mb=stats['mem_mb'],
              compile_s=stats['compile_s'], setup_s=setup_s, rss_mb=common.peak_rss_mb(),
              device_peak_mb=common.device_peak_mb(), load=common.load_avg(), machine=common.machine())


def run_hdr_inference(height: int, width: int, repeats: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from mgdn_jax import model as model_lib  # pylint: disable=g-import-not-at-top
  cfg = model_lib.model_config('hdr')
  graphdef, params = nnx.split(model_lib.create_model(cfg))
  rng = np.random.default_rng(0)
  streams = [jax.device_put(rng.random((1, height, width, c), dtype=np.float32)) for c in cfg.in_channels]
  fwd = jax.jit(lambda p, *s: nnx.merge(graphdef, p)(*s)[0])
  base = common.peak_rss_mb()
  compiled, stats = common.compile_stats(fwd, params, *streams)
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    out = common.block(compiled(params, *streams))
    times.append(time.perf_counter() - t)
  assert out.shape == (1, height, width, 3), out.shape
  return dict(kind='hdr_inference', size=f'{height}x{width}', latency_s=min(times), mem_mb=stats['mem_mb'],
              compile_s=stats['compile_s'], base_rss_mb=base, rss_mb=common.peak_rss_mb(),
              device_peak_mb=common.device_peak_mb(), load=common.load_avg(), machine=common.machine())


def train_table(rows: list[dict]) -> str:
  return common.markdown_table(
      ['task', 'batch × size', 'dtype', 'step ms', 'steps/s', 'images/s', 'GFLOP/step (jaxpr / XLA)', 'GFLOP/s', 'MFU',
       'CPU s/step user / kernel', 'executable MB', 'device peak MB', 'peak RSS MB', 'compile s', 'load avg'],
      [[r['task'] + ('' if r.get('mi_loss', True) else ' (no MI loss)'), _batch(r),
        r.get('dtype', 'float32') + ('' if r.get('ops_gradients', 'custom') == 'custom' else ', autodiff ops'),
        r['step_s'] * 1e3, f"{r['steps_per_s']:.3f}", f"{r['images_per_s']:.3f}", _gflop(r), r['gflops_per_s'],
        f"{100 * r['mfu']:.1f}%" if r['mfu'] else 'n/a (peak unknown)', _cpu_seconds(r), r['mem_mb'],
        r.get('device_peak_mb'), r['rss_mb'], r['compile_s'], r['load']]
       if 'error' not in r else [r['task'], r['error']] + [''] * 13
       for r in rows])


def _batch(r: dict) -> str:
  """'4 × 128²', plus the micro-batch split where the step runs one ('4 × 128² in 2 micro-batches')."""
  n = r.get('microbatches', 1)
  return f"{r['batch']} × {r['size']}²" + (f' in {n} micro-batches' if n > 1 else '')


def _gflop(r: dict) -> str:
  """'jaxpr / XLA' GFLOP per step; result files written before the jaxpr count existed hold XLA's count alone."""
  if 'xla_gflop' not in r:
    return f"n/a / {common.fmt(r['step_gflop'])}"
  return f"{common.fmt(r['step_gflop'])} / {common.fmt(r['xla_gflop'])}"


def _cpu_seconds(r: dict) -> str:
  """'user / kernel' CPU seconds per step (all threads), or 'n/a' for results that predate the columns."""
  return f"{r['cpu_user_s']:.1f} / {r['cpu_sys_s']:.1f}" if r.get('cpu_sys_s') is not None else 'n/a'


def hdr_table(rows: list[dict]) -> str:
  return common.markdown_table(
      ['HDR inference', 'latency s', 'executable MB', 'device peak MB', 'peak RSS MB (base)', 'compile s',
       'load avg'],
      [[r['size'], f"{r['latency_s']:.2f}", r['mem_mb'], r.get('device_peak_mb'),
        f"{r['rss_mb']:.0f} ({r['base_rss_mb']:.0f})", r['compile_s'], r['load']]
       if 'error' not in r else [r.get('size', '?'), r['error'], '', '', '', '', '']
       for r in rows])


PROG = 'train_bench'


def define_flags(f) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  common.define_list('tasks', 'mef,mff,hdr', f'comma-separated subset of {tasks.NAMES}', f, choices=tasks.NAMES)
  flags.DEFINE_integer('batch', 4, 'images per training step', lower_bound=1, flag_values=f)
  flags.DEFINE_integer('size', 128, 'side of the square training patches', lower_bound=1, flag_values=f)
  flags.DEFINE_integer('steps', 5, 'timed steps after one warm-up step (median reported)', lower_bound=1,
                       flag_values=f)
  flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                    'compute dtype of the model (config.model.dtype); parameters and Adam state stay f32',
                    flag_values=f)
  flags.DEFINE_integer('microbatch_size', 0, 'config.microbatch_size: images per sequential micro-batch (0 = the '
                       'default for the backend)', lower_bound=0, flag_values=f)
  flags.DEFINE_enum('gradients', 'auto', ['auto', 'tuned_cpu', 'autodiff'],
                    'config.gradients: backward passes of the conv/linear layers (mgdn_jax/kernels)', flag_values=f)
  flags.DEFINE_float('peak_tflops', 0., 'peak TFLOP/s of one device, for MFU on CPUs', lower_bound=0., flag_values=f)
  flags.DEFINE_bool('mi_loss', True, "with the masked-MI loss (--nomi_loss: config.mi_weight = 0, the official step's "
                    'work, which has no MI loss, to see what the loss costs)', flag_values=f)
  flags.DEFINE_bool('hdr_inference', True, 'also time full-image HDR inference (--nohdr_inference: train steps only)',
                    flag_values=f)
  common.define_size('hdr_size', '1000x1500', 'HxW of the HDR inference images', f)
  flags.DEFINE_integer('hdr_repeats', 1, 'timed HDR inference calls (the fastest reported)', lower_bound=1,
                       flag_values=f)
  flags.DEFINE_string('json_out', '', 'also write all results as JSON here', flag_values=f)
  flags.DEFINE_string('one', None, "internal: the case a child process runs, 'train:<task>' or 'hdr' (set by the "
                      'parent)', flag_values=f)


def parse_args(argv=None):
  """The flags' values; `--help` and usage errors exit (mgdn_jax/cli.py)."""
  from mgdn_jax import cli  # pylint: disable=g-import-not-at-top
  return cli.parse(PROG, __doc__, define_flags, argv)[0]


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.one:
    if args.one == 'hdr':
      res = run_hdr_inference(*common.hw(args.hdr_size), args.hdr_repeats)
    else:
      res = run_train(args.one.split(':')[1], args.batch, args.size, args.steps, args.peak_tflops,
                      not args.mi_loss, args.dtype, args.microbatch_size, args.gradients)
    print(json.dumps(res), flush=True)
    return
  passthrough = [f'--batch={args.batch}', f'--size={args.size}', f'--steps={args.steps}',
                 f'--peak_tflops={args.peak_tflops}', f'--hdr_size={args.hdr_size}',
                 f'--hdr_repeats={args.hdr_repeats}', f'--dtype={args.dtype}',
                 f'--microbatch_size={args.microbatch_size}', f'--gradients={args.gradients}',
                 '--mi_loss' if args.mi_loss else '--nomi_loss']
  train_rows, hdr_rows = [], []
  for task in args.tasks:
    r = common.run_isolated(__file__, [f'--one=train:{task}', *passthrough])
    r.setdefault('task', task)
    train_rows.append(r)
    print(json.dumps(r), file=sys.stderr, flush=True)
  if args.hdr_inference:
    r = common.run_isolated(__file__, ['--one=hdr', *passthrough])
    r.setdefault('size', args.hdr_size)
    hdr_rows.append(r)
  done = [r for r in train_rows + hdr_rows if 'machine' in r]
  print(f"Machine: {done[0]['machine'] if done else common.load_avg()}\n")
  if train_rows:
    print(train_table(train_rows) + '\n')
  if hdr_rows:
    print(hdr_table(hdr_rows))
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump(dict(train=train_rows, hdr_inference=hdr_rows), f, indent=1)


if __name__ == '__main__':
  parse_args()  # --help and usage errors answer before the process re-exec and JAX's import
  platform.tune_process()
  main()
