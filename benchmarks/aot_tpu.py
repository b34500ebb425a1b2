"""XLA:TPU's own numbers for the training step, compiled ahead of time for TPU slices on a host without a TPU.

  python benchmarks/aot_tpu.py                                       # mff, mef, hdr train steps on v5e:2x2
  python benchmarks/aot_tpu.py --tasks=mff --topologies=v5e:16x16    # a 256-chip pod slice, 1 image per chip
  python benchmarks/aot_tpu.py --tasks=hdr --patch_sizes=128,256     # memory growth with the patch
  python benchmarks/aot_tpu.py --tasks=hdr --inference               # full-image forward (HDR: 1000×1500 per chip)
  python benchmarks/aot_tpu.py --topologies=v5e:2x2,v5p:2x2x1,v6e:2x2 --json_out=/tmp/aot.json
  python benchmarks/aot_tpu.py --tasks=hdr --breakdown=20          # which layers the kernels and bytes come from

Needs libtpu (the bench extra: `pip install -e .[bench]`); nothing runs on a TPU. What compiles is the training
loop's own step, `train.build(config, mesh).step_fn`, for a ('data',) mesh over the compile-only devices of a TPU
topology (`jax.experimental.topologies`), with the state and batch as ShapeDtypeStructs carrying their shardings;
the step's backend decisions are what `platform.train_plan` takes for that mesh (a TPU mesh: autodiff gradients,
the whole batch at once, no XLA:CPU options). `--inference` compiles `inference.forward` on one full image per
chip (parameters replicated, images split over 'data'). Each case compiles in its own process.

Batch: `--batch_per_chip` images per chip (0: the config's global batch spread over the chips, at least 1), so the
global batch is per-chip × chips. Every number is one chip's (the SPMD program XLA compiles is one chip's):
- memory (GiB = 2³⁰ bytes): `memory_analysis()` argument / temp / output / generated-code bytes, and the HBM the
  program needs: the larger of XLA:TPU's `peak_memory_in_bytes` and arguments + outputs − donated aliases + temp +
  code (the temp allocation is reserved whole, and the peak came out below it for the paper steps);
- `cost_analysis()` 'flops' and 'bytes accessed' (GB = 10⁹ bytes), also per image. XLA counts a loop body once (the
  dilated convs' per-tap gradient loop, kernels/conv.py) and weighs elementwise ops its own way; 'jaxpr GFLOP' is
  benchmarks/roofline.py's count of the same step (loops times their trip count) divided by the chips;
- fusions: fusion instructions of the optimised HLO outside fused computations (ENTRY and loop bodies, a body
  counted once), the kernels one step launches; in brackets those of ENTRY alone. The JSON also has `all_fusions`,
  every fusion instruction including those nested inside other fusions;
- roofline: a step takes at least max(FLOPs / bf16 peak, bytes accessed / HBM bandwidth) on one chip, shown as the
  images/s per chip that floor allows (an upper bound). The bf16 peak applies to float32 models too: XLA:TPU runs
  float32 matmuls at JAX's default precision as bf16 passes. XLA:TPU's own estimate,
  `cost_analysis()['optimal_seconds']`, is kept in the JSON only: it is negative for the paper-size steps;
- compile s: trace + lower + XLA:TPU compile on this host (benchmarks/common.py), so it depends on its cores and load.
"""
import dataclasses
import importlib
import json
import os
import re
import sys
import time

# This host compiles; the targets are the topology's devices. Without it JAX would try to bring up a TPU here.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common, hlo_breakdown  # pylint: disable=g-import-not-at-top,wrong-import-position


@dataclasses.dataclass(frozen=True)
class Chip:
  name: str
  hbm_gib: float       # HBM per chip
  bf16_tflops: float   # dense bf16 peak per chip
  hbm_gb_s: float      # HBM bandwidth per chip


# Per chip, from Google Cloud's TPU pages; keyed by the device_kind libtpu reports for the topology's devices.
CHIPS = {
    'TPU v5 lite': Chip('v5e', 16., 197., 819.),
    'TPU v5': Chip('v5p', 95., 459., 2765.),
    'TPU v6 lite': Chip('v6e', 32., 918., 1640.),
}

# The full-image size `--inference` compiles by default: a Lytro pair (MFF), a typical MEFB pair (MEF), the official
# HDR test scenes untiled, an NYU depth map (GDSR).
IMAGE_SIZES = {'mff': (520, 520), 'mef': (800, 1200), 'hdr': (1000, 1500), 'gdsr': (480, 640)}

# Custom-call targets that would mean a host-only path reached the TPU program: XLA:CPU's oneDNN/XNNPACK/YNNPACK
# library calls, host callbacks.
_HOST_CALL = re.compile(r'cpu|onednn|xnn|ynn|callback', re.IGNORECASE)


def topology_mesh(name: str):
  """The project's ('data',) mesh over the compile-only devices of TPU topology `name` ('v5e:2x2', 'v5p:2x2x1', …)."""
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  from mgdn_jax import sharding  # pylint: disable=g-import-not-at-top
  # Compile-only devices touch no chip, so the lockfile libtpu takes for a process driving the TPU need not be
  # exclusive: any other JAX process on this host started without JAX_PLATFORMS holds it when libtpu is installed.
  os.environ.setdefault('ALLOW_MULTIPLE_LIBTPU_LOAD', '1')
  return sharding.make_mesh(topologies.get_topology_desc(topology_name=name, platform='tpu').devices)


def task_config(task: str, variant: str, batch_per_chip: int, chips: int, patch: int, dtype: str):
  """`configs/<task>.py[:variant]` with the global batch `batch_per_chip` × `chips` (0 per chip: the config's own
  batch spread over the chips, at least 1), `patch`² crops (0: the config's) and the model `dtype` ('': the config's)."""
  config = importlib.import_module(f'configs.{task}').get_config(variant or None)
  config.batch_size = (batch_per_chip or max(1, config.batch_size // chips)) * chips
  config.patch_size = patch or config.patch_size
  config.model.dtype = dtype or config.model.dtype
  return config


def abstract_batch(config, mesh) -> dict:
  """{'stream_k': (B, P, P, C_k), 'target': (B, P, P, C_out)} f32 ShapeDtypeStructs split over 'data'."""
  import jax  # pylint: disable=g-import-not-at-top
  from benchmarks import train_bench  # pylint: disable=g-import-not-at-top
  from mgdn_jax import sharding  # pylint: disable=g-import-not-at-top
  split = sharding.batch_sharding(mesh)
  return {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=split)
          for k, v in train_bench.batch_shapes(config).items()}


def hlo_stats(text: str) -> dict:
  """Of an optimised HLO module's text: `fusions` (fusion instructions outside fused computations), `entry_fusions`
  (those of ENTRY), `all_fusions` (every fusion instruction) and `custom_calls` (the distinct custom-call targets)."""
  bodies, entry, current = {}, None, None
  for line in text.splitlines():
    if line.endswith('{') and not line.startswith((' ', 'HloModule')):  # a computation's header
      words = line.split()
      current = (words[1] if words[0] == 'ENTRY' else words[0]).lstrip('%')
      entry = current if words[0] == 'ENTRY' else entry
      bodies[current] = []
    elif line.startswith('}'):
      current = None
    elif current is not None:
      bodies[current].append(line)
  fusion = lambda line: ', kind=k' in line  # only fusion instructions carry a fusion kind
  fused = {m.group(1) for lines in bodies.values() for line in lines if fusion(line)
           for m in [re.search(r'calls=%?([\w.\-]+)', line)] if m}
  count = lambda name: sum(map(fusion, bodies[name]))
  return dict(fusions=sum(count(n) for n in bodies if n not in fused), entry_fusions=count(entry) if entry else 0,
              all_fusions=sum(map(count, bodies)), custom_calls=sorted(set(re.findall(r'custom_call_target="([^"]+)"', text))))


def _measure(jitted, args, mesh, images_per_chip: int, kind: str) -> dict:
  """Compiles `jitted(*args)` (args sharded over `mesh`) and reads XLA:TPU's per-chip numbers (module docstring)."""
  compiled, stats = common.compile_stats(jitted, *args)
  chips, device_kind = mesh.devices.size, mesh.devices.flat[0].device_kind
  chip = CHIPS.get(device_kind)
  m = compiled.memory_analysis()
  text = compiled.as_text()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops, nbytes = float(cost.get('flops', 0.)), float(cost.get('bytes accessed', 0.))
  reserved = (m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
              + m.generated_code_size_in_bytes)
  need = max(getattr(m, 'peak_memory_in_bytes', 0), reserved)
  row = dict(kind=kind, chips=chips, device_kind=device_kind, images_per_chip=images_per_chip,
             compile_s=stats['compile_s'], argument_bytes=m.argument_size_in_bytes, temp_bytes=m.temp_size_in_bytes,
             output_bytes=m.output_size_in_bytes, alias_bytes=m.alias_size_in_bytes,
             code_bytes=m.generated_code_size_in_bytes, peak_bytes=getattr(m, 'peak_memory_in_bytes', 0),
             hbm_need_bytes=need, flops=flops, bytes_accessed=nbytes,
             jaxpr_flops=stats['jaxpr_flops'] / chips, xla_optimal_s=float(cost.get('optimal_seconds', 0.)),
             **hlo_stats(text))
  row['breakdown'] = hlo_breakdown.breakdown(text)
  row['host_calls'] = [t for t in row['custom_calls'] if _HOST_CALL.search(t)]
  if chip:
    floor_s = max(flops / (chip.bf16_tflops * 1e12), nbytes / (chip.hbm_gb_s * 1e9))
    row.update(chip=dataclasses.asdict(chip), hbm_bytes=chip.hbm_gib * 2**30, fits=need <= chip.hbm_gib * 2**30,
               roofline_images_s=images_per_chip / floor_s if floor_s else None)
  return row


def compile_train(config, mesh) -> dict:
  """The training step of `config` compiled for `mesh`: its per-chip numbers and the plan it was built with."""
  from mgdn_jax import train  # pylint: disable=g-import-not-at-top
  built = train.build(config, mesh)
  chips = mesh.devices.size
  row = _measure(built.step_fn, (built.abstract, abstract_batch(config, mesh)), mesh, config.batch_size // chips,
                 'train')
  plan = {f.name: getattr(built.plan, f.name) for f in dataclasses.fields(built.plan)}
  plan['state_device'] = str(plan['state_device'])  # a jax.Device: neither JSON nor deep-copyable
  return dict(row, plan=plan, size=f'{config.patch_size}²', global_batch=config.batch_size)


def compile_inference(config, mesh, images_per_chip: int, height: int, width: int) -> dict:
  """`inference.forward` of `config.model` on `images_per_chip` full (height, width) images per chip of `mesh`,
  padded to window multiples as `inference.fuse` pads them."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from mgdn_jax import inference, sharding  # pylint: disable=g-import-not-at-top
  from mgdn_jax import model as model_lib  # pylint: disable=g-import-not-at-top
  m = config.model
  graphdef, params = nnx.split(model_lib.create_model(m, abstract=True))
  params = sharding.abstract_with_sharding(params, mesh)
  chips, ws = mesh.devices.size, m.window_size
  shape = (images_per_chip * chips, height + (-height) % ws, width + (-width) % ws)
  split = sharding.batch_sharding(mesh)
  streams = [jax.ShapeDtypeStruct(shape + (c,), np.float32, sharding=split) for c in m.in_channels]
  row = _measure(inference.forward, (graphdef, params, *streams), mesh, images_per_chip, 'inference')
  return dict(row, size=f'{height}×{width}', global_batch=shape[0])


def run_case(task: str, topology: str, batch_per_chip: int, patch: int, dtype: str, variant: str = '',
             inference_size: str = '') -> dict:
  """One row: the train step (or with `inference_size` 'HxW', the full-image forward) of `task` on `topology`."""
  mesh = topology_mesh(topology)
  chips = mesh.devices.size
  config = task_config(task, variant, batch_per_chip, chips, patch, dtype)
  if inference_size:
    h, w = map(int, inference_size.split('x'))
    row = compile_inference(config, mesh, batch_per_chip or 1, h, w)
  else:
    row = compile_train(config, mesh)
  return dict(row, task=task + (f':{variant}' if variant else ''), topology=topology, dtype=config.model.dtype,
              load=common.load_avg())


def table(rows: list[dict]) -> str:
  gib, gb = 2**30, 1e9

  def cells(r):
    n = r['images_per_chip']
    hbm = f" / {r['hbm_bytes'] / gib:.0f} ({100 * r['hbm_need_bytes'] / r['hbm_bytes']:.0f}%)" if 'hbm_bytes' in r else ''
    return [r['task'], f"{r['topology']} ({r['chips']})", r['kind'], f"{n} × {r['size']}", r['dtype'],
            f"{r['compile_s']:.0f}", ' / '.join(f'{r[k] / gib:.3f}' for k in
                                                ('argument_bytes', 'temp_bytes', 'output_bytes', 'code_bytes')),
            f"{r['hbm_need_bytes'] / gib:.2f} ({r['peak_bytes'] / gib:.2f}){hbm}",
            f"{r['flops'] / gb:.1f} ({r['flops'] / gb / n:.1f})",
            f"{r['bytes_accessed'] / gb:.1f} ({r['bytes_accessed'] / gb / n:.1f})", f"{r['jaxpr_flops'] / gb:.1f}",
            f"{r['fusions']} ({r['entry_fusions']})",
            f"{r['roofline_images_s']:.1f}" if r.get('roofline_images_s') else 'n/a', r['load']]

  return common.markdown_table(
      ['task', 'topology (chips)', 'compiled', 'per chip', 'dtype', 'compile s',
       'arg / temp / out / code GiB per chip', 'HBM need (XLA peak) GiB / HBM', 'GFLOP per chip (per image)',
       'GB accessed per chip (per image)', 'jaxpr GFLOP per chip', 'fusions (ENTRY)', 'roofline img/s/chip',
       'load avg'],
      [cells(r) if 'error' not in r else [r.get('task', '?'), r.get('topology', '?'), r['error']] + [''] * 11
       for r in rows])


def _header() -> str:
  return (f'XLA:TPU ahead-of-time compile on {os.cpu_count()} host cores; chips: '
          + '; '.join(f'{c.name} {c.hbm_gib:g} GiB HBM, {c.bf16_tflops:g} TFLOP/s bf16, {c.hbm_gb_s:g} GB/s'
                      for c in CHIPS.values()))


def _print_breakdowns(rows: list[dict], top: int) -> None:
  """Each compiled row's kernels and bytes by project function, its `top` heaviest (none for top=0)."""
  for r in rows if top else ():
    if 'breakdown' in r:
      print(f"\n{r['task']} on {r['topology']}, {r['kind']} {r['images_per_chip']} × {r['size']} per chip:\n")
      print(hlo_breakdown.table(r['breakdown'], r['bytes_accessed'], top=top))


PROG = 'aot_tpu'


def define_flags(f) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from mgdn_jax import tasks  # pylint: disable=g-import-not-at-top
  common.define_list('tasks', 'mff,mef,hdr', f'comma-separated subset of {tasks.NAMES} (configs/<task>.py)', f,
                     choices=tasks.NAMES)
  flags.DEFINE_string('variant', '', "config variant, e.g. 'tiny' (default: the paper settings)", flag_values=f)
  common.define_list('topologies', 'v5e:2x2', 'comma-separated TPU topologies as libtpu names them: v5e:2x2, v5e:4x4, '
                     'v5e:16x16, v5p:2x2x1, v6e:2x2, …', f)
  common.define_list('batch_per_chip', '0', "comma-separated images per chip (0: the config's global batch over the "
                     'chips, at least 1)', f, item=int, lower_bound=0)
  common.define_list('patch_sizes', '0', "comma-separated training crop sizes (0: the config's, 128)", f, item=int,
                     lower_bound=0)
  flags.DEFINE_enum('dtype', '', ['', 'float32', 'bfloat16'], "model compute dtype ('': the config's, float32)",
                    flag_values=f)
  flags.DEFINE_bool('inference', False, 'compile the full-image inference forward instead of the train step',
                    flag_values=f)
  common.define_size('image', '', f'HxW of --inference (default per task: {IMAGE_SIZES})', f, optional=True)
  flags.DEFINE_integer('breakdown', 0, "also print, per case, the N project functions whose kernels move the most "
                       'bytes (benchmarks/hlo_breakdown.py; the JSON keeps all of them)', lower_bound=0, flag_values=f)
  flags.DEFINE_string('json_out', '', 'also write the rows as JSON here', flag_values=f)
  common.define_list('table_from', '', 'print the table of these --json_out files (comma-separated), compiling '
                     'nothing', f)
  flags.DEFINE_string('one', None, "internal: the case a child process runs, 'task|topology|batch_per_chip|patch' "
                      '(set by the parent)', flag_values=f)


def main(argv=None) -> None:
  from mgdn_jax import cli  # pylint: disable=g-import-not-at-top
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  if args.table_from:
    rows = []
    for path in args.table_from:
      try:
        with open(path) as f:
          rows += json.load(f)
      except (OSError, ValueError) as e:
        cli.fail(PROG, f'--table_from: {path}: {e}')
    print(table(rows))
    _print_breakdowns(rows, args.breakdown)
    return
  if args.one:
    task, topology, batch, patch = args.one.split('|')
    size = (args.image or 'x'.join(map(str, IMAGE_SIZES[task]))) if args.inference else ''
    print(json.dumps(run_case(task, topology, int(batch), int(patch), args.dtype, args.variant, size)), flush=True)
    return
  passthrough = [f'--dtype={args.dtype}', f'--variant={args.variant}', f'--image={args.image}']
  passthrough += ['--inference'] * args.inference
  patches = [0] if args.inference else args.patch_sizes
  rows = []
  for task in args.tasks:
    for topology in args.topologies:
      for batch in args.batch_per_chip:
        for patch in patches:
          t = time.perf_counter()
          r = common.run_isolated(__file__, [f'--one={task}|{topology}|{batch}|{patch}', *passthrough])
          r.setdefault('task', task)
          r.setdefault('topology', topology)
          r['wall_s'] = time.perf_counter() - t
          rows.append(r)
          print(json.dumps(r), file=sys.stderr, flush=True)
  print(_header() + '\n')
  print(table(rows))
  _print_breakdowns(rows, args.breakdown)
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump(rows, f, indent=1)


if __name__ == '__main__':
  main()
