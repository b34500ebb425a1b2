"""Latency and peak memory of whole-image inference (mgdn_jax.inference.fuse) on this machine.

  python benchmarks/inference_bench.py                     # all cases, each in a fresh process
  python benchmarks/inference_bench.py --cases=mef_1200x800 --repeats=2

Cases (random weights of the official presets, random inputs; time does not depend on the values):
* hdr_1000x1500_untiled: an HDR triplet (3 × 6 channels) in one pass;
* hdr_1000x1500_tile500: the official HDR evaluation, 2×3 tiles of 500×500 without overlap;
* mef_1200x800: a MEF pair (3 + 3 channels), 800 rows × 1200 columns, one pass.

Each case runs in its own process, so `peak RSS` (resource.getrusage high-water mark) is that case's alone; `base`
is the RSS before the first forward pass (Python, JAX, the model). Compile time is measured with JAX's own
compile-duration events and reported apart from the run time of the first call; with --repeats > 1 the later
calls are pure run time.
"""
import json
import os
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from mgdn_jax import platform  # pylint: disable=g-import-not-at-top,wrong-import-position

CASES = {
    'mef_1200x800': dict(preset='mef', size=(800, 1200), tile=None, overlap=0),
    'hdr_1000x1500_tile500': dict(preset='hdr', size=(1000, 1500), tile=500, overlap=0),
    'hdr_1000x1500_untiled': dict(preset='hdr', size=(1000, 1500), tile=None, overlap=0),
}
_COMPILE_EVENTS = ('/jax/core/compile/jaxpr_trace_duration', '/jax/core/compile/jaxpr_to_mlir_module_duration',
                   '/jax/core/compile/backend_compile_duration')


def _rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_case(name: str, repeats: int, dtype: str) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from mgdn_jax import inference  # pylint: disable=g-import-not-at-top
  from mgdn_jax import model as model_lib  # pylint: disable=g-import-not-at-top

  compile_s = [0.]
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, secs, **_: compile_s.__setitem__(0, compile_s[0] + secs) if event in _COMPILE_EVENTS else None)
  case = CASES[name]
  cfg = model_lib.model_config(case['preset'], dtype=dtype)
  model = model_lib.create_model(cfg, seed=0)
  h, w = case['size']
  rng = np.random.default_rng(0)
  images = [rng.random((h, w, c), dtype=np.float32) for c in cfg.in_channels]
  base = _rss_mb()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    out = inference.fuse(model, images, tile=case['tile'], overlap=case['overlap'], auto=False)
    times.append(time.perf_counter() - t)
  assert out.shape == (h, w, cfg.out_channels)
  n_tiles = 1 if case['tile'] is None else len(inference.tiles(h, w, case['tile'], case['overlap']))
  return dict(case=name, device=jax.devices()[0].device_kind, dtype=dtype, size=f'{h}x{w}', tiles=n_tiles,
              compile_s=round(compile_s[0], 1), first_run_s=round(times[0] - compile_s[0], 1),
              later_runs_s=[round(t, 1) for t in times[1:]], base_rss_mb=round(base),
              peak_rss_mb=round(_rss_mb()), estimate_mb=round(inference.estimate_bytes(
                  model, h + (-h) % cfg.window_size, w + (-w) % cfg.window_size) / 2**20) if case['tile'] is None
              else round(inference.estimate_bytes(model, 504, 504) / 2**20),
              cpus=os.cpu_count(), load_avg_1m=round(os.getloadavg()[0], 1))


PROG = 'inference_bench'


def define_flags(f) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  common.define_list('cases', ','.join(CASES), 'comma-separated subset of ' + ', '.join(CASES), f, choices=tuple(CASES))
  flags.DEFINE_integer('repeats', 1, 'calls of `inference.fuse` per case (the first one compiles)', lower_bound=1,
                       flag_values=f)
  flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'model compute dtype', flag_values=f)
  flags.DEFINE_string('one', None, 'internal: the case a child process runs, printed as JSON (set by the parent)',
                      flag_values=f)


def parse_args(argv=None):
  """The flags' values; `--help` and usage errors exit (mgdn_jax/cli.py)."""
  from mgdn_jax import cli  # pylint: disable=g-import-not-at-top
  return cli.parse(PROG, __doc__, define_flags, argv)[0]


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.one:
    print(json.dumps(run_case(args.one, args.repeats, args.dtype)), flush=True)
    return
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get('PYTHONPATH', ''))
  print('case | size | tiles | compile s | run s (first call) | later runs s | base RSS MB | peak RSS MB | '
        'estimate MB | load avg', flush=True)
  for name in args.cases:
    res = subprocess.run([sys.executable, __file__, f'--one={name}', f'--repeats={args.repeats}',
                          f'--dtype={args.dtype}'], capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
      print(f'{name} | failed (exit {res.returncode}): {res.stderr.strip().splitlines()[-1:]}', flush=True)
      continue
    r = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{r['case']} | {r['size']} | {r['tiles']} | {r['compile_s']} | {r['first_run_s']} | "
          f"{r['later_runs_s']} | {r['base_rss_mb']} | {r['peak_rss_mb']} | {r['estimate_mb']} | "
          f"{r['load_avg_1m']} ({r['cpus']} cpus, {r['device']}, {r['dtype']})", flush=True)


if __name__ == '__main__':
  parse_args()  # --help and usage errors answer before the process re-exec and JAX's import
  platform.tune_process()
  main()
