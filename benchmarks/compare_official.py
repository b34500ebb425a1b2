"""The train_bench.py measurements on the official PyTorch MGDN (eager and torch.compile), with JAX / official ratios.

  pip install -r requirements-bench.txt                  # torch (CPU), benchmark-only
  python benchmarks/compare_official.py --official_repo=/tmp/mgdn_official              # everything, 3 rounds
  python benchmarks/compare_official.py --official_repo=/tmp/mgdn_official --tasks=mff --modes=eager \
      --rounds=1 --steps=1 --nohdr_inference             # quick
  python benchmarks/compare_official.py --official_repo=/tmp/mgdn_official --jax_results=/tmp/jax_train.json
                                                         # reuse a train_bench.py --json_out run (not paired)
  python benchmarks/compare_official.py --official_repo=/tmp/mgdn_official --modes=eager,eager_bf16 \
      --jax_dtype=bfloat16 --rounds=1 --steps=10 --nohdr_inference      # on a GPU: bf16 JAX vs eager f32 / bf16

Backend: the official model runs on CUDA when torch sees a GPU (JAX then runs there too), else on the CPU. f32
matmuls may use TF32 on both sides (XLA's default precision; torch's 'high' matmul precision). `*_bf16` modes
run the official step under `torch.autocast(bfloat16)`. Memory columns show the device peak when every result has
one (GPU), else the process RSS.

Side by side: this machine's speed drifts by up to 1.7× within an hour, so a ratio of two runs taken apart
measures the drift as much as the code. Each round runs, per task, the JAX step (train_bench.py's child) and the
official step back to back, JAX first in even rounds and official first in odd ones; the table prints every
round's ratio and their median.

`--official_repo` is a local checkout of github.com/Guanys-dar/MGDN (commit dd157ff); nothing of it is copied here.
Its model imports timm only for DropPath / to_2tuple / trunc_normal_; a stand-in `timm` module with those three
(written here) is put into sys.modules first, so neither timm nor torchvision is needed.

Official train step: the release has no training code, so the step is forward (train mode, DropPath on) + L1
(μ-law L1 for HDR) + backward + Adam (lr 2e-4). It has no masked-MI loss: its model does not return the MGDF
features. The JAX step does more work (MI loss, EMA, finite-check). Constructor calls are the official scripts'
(MGDN_REFERENCE §1). torch uses every core (set_num_threads(os.cpu_count())), as XLA:CPU does. Each case runs in
its own process (peak RSS is that case's); torch.compile's compile time is its first step minus a later step;
a case that failed is not retried in later rounds. torch.compile runs with inductor's layout optimisation off
(see run_train: with it, torch 2.13 crashes on the official model's backward).
"""
import atexit
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from mgdn_jax import cli  # pylint: disable=g-import-not-at-top,wrong-import-position
from mgdn_jax import platform  # pylint: disable=g-import-not-at-top,wrong-import-position

PROG = 'compare_official'

_CTOR = {
    'mef': ('MGFF', dict(GF_chans=60, embed_dim=60, depths=[6, 6], num_heads=[6, 6], window_size=8,
                         kernel_num=[1, 1, 1], mlp_ratio=2., inference=False), (3, 3)),
    'mff': ('MGFF', dict(GF_chans=30, embed_dim=30, depths=[3, 3], num_heads=[3, 3], window_size=4,
                         kernel_num=[1, 1, 1], mlp_ratio=2., inference=False), (3, 3)),
    'hdr': ('MGFF_Deghosting', dict(embed_dim=60, depths=[6, 6, 6], num_heads=[6, 6, 6], window_size=8,
                                    kernel_num=[1, 1, 1], mlp_ratio=4., inference=False), (6, 6, 6)),
}


def _install_timm_standin(torch) -> None:
  """sys.modules['timm.models.layers'] with DropPath (timm semantics, scale_by_keep), to_2tuple, trunc_normal_."""

  class DropPath(torch.nn.Module):
    def __init__(self, drop_prob=0., scale_by_keep=True):
      super().__init__()
      self.drop_prob, self.scale_by_keep = drop_prob, scale_by_keep

    def forward(self, x):
      if self.drop_prob == 0. or not self.training:
        return x
      keep = 1. - self.drop_prob
      mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
      return x * (mask / keep if self.scale_by_keep else mask)

  def to_2tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x, x)

  def trunc_normal_(tensor, mean=0., std=1., a=-2., b=2.):
    return torch.nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)

  layers = types.ModuleType('timm.models.layers')
  layers.DropPath, layers.to_2tuple, layers.trunc_normal_ = DropPath, to_2tuple, trunc_normal_
  timm = types.ModuleType('timm')
  models = types.ModuleType('timm.models')
  timm.models, models.layers = models, layers
  sys.modules.update({'timm': timm, 'timm.models': models, 'timm.models.layers': layers})


def _models_dir(repo: str) -> str:
  models_dir = os.path.join(os.path.abspath(repo), 'models')
  if not os.path.isfile(os.path.join(models_dir, 'MGFF', 'DYKPN.py')):
    cli.fail(PROG, f'{models_dir}/MGFF/DYKPN.py not found; --official_repo must be a checkout of Guanys-dar/MGDN')
  return models_dir


MODES = ('eager', 'compile', 'eager_bf16', 'compile_bf16')


def torch_device(torch) -> str:
  """'cuda' when torch sees a GPU (the JAX side then runs on it too), else 'cpu'."""
  return 'cuda' if torch.cuda.is_available() else 'cpu'


def build_official(repo: str, task: str):
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  if torch.cuda.is_available():  # CPU runs stay exactly as measured in earlier sessions
    # f32 matmuls on TF32 tensor cores, as XLA:GPU runs JAX's default-precision f32 dots and convs (cuDNN convs
    # already default to TF32 in torch).
    torch.set_float32_matmul_precision('high')
  _install_timm_standin(torch)
  models_dir = _models_dir(repo)
  sys.path.insert(0, models_dir)
  dykpn = __import__('MGFF.DYKPN', fromlist=['x'])
  cls, kwargs, chans = _CTOR[task]
  torch.manual_seed(0)
  return torch, getattr(dykpn, cls)(**kwargs).to(torch_device(torch)), chans


def _autocast(torch, mode: str):
  """bf16 autocast for the *_bf16 modes (torch's mixed precision: matmuls/convs in bf16, params f32)."""
  return torch.autocast(torch_device(torch), dtype=torch.bfloat16, enabled=mode.endswith('_bf16'))


def _peak_device_mb(torch) -> float | None:
  return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def run_train(repo: str, task: str, mode: str, batch: int, size: int, steps: int) -> dict:
  torch, model, chans = build_official(repo, task)
  model.train()
  if mode.startswith('compile'):
    # torch 2.13's inductor stores conv activations channels-last ("layout optimisation") but its meta kernel of
    # the eager fallback replication_pad2d_backward (the dynamic filter's replicate padding) promises a
    # contiguous result: a stride assertion, then glibc heap corruption. Without the layout pass it compiles.
    torch._inductor.config.layout_optimization = False  # pylint: disable=protected-access
  step_model = torch.compile(model) if mode.startswith('compile') else model
  opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999))
  g = torch.Generator().manual_seed(0)
  dev = torch_device(torch)
  xs = [torch.rand(batch, c, size, size, generator=g).to(dev) for c in chans]
  target = torch.rand(batch, 3, size, size, generator=g).to(dev)

  def recon(out):
    if task == 'hdr':  # μ-law L1, μ = 5000, as the JAX HDR config
      tm = lambda x: torch.log1p(5000. * x) / math.log1p(5000.)
      return (tm(out.clamp_min(0.)) - tm(target)).abs().mean()
    return (out - target).abs().mean()

  def step():
    opt.zero_grad(set_to_none=True)
    with _autocast(torch, mode):
      loss = recon(step_model(*xs).float())
    loss.backward()
    opt.step()
    return loss.item()  # waits for the GPU too

  t = time.perf_counter()
  step()
  first_s = time.perf_counter() - t
  timing = common.timed_steps(step, steps)
  step_s = timing['step_s']
  return dict(kind='train', task=task, mode=mode, batch=batch, size=size, **timing, steps_per_s=1 / step_s,
              images_per_s=batch / step_s, compile_s=first_s - step_s if mode.startswith('compile') else None,
              rss_mb=common.peak_rss_mb(), device_peak_mb=_peak_device_mb(torch), device=dev,
              load=common.load_avg(), torch=torch.__version__, threads=torch.get_num_threads())


def run_hdr_inference(repo: str, mode: str, height: int, width: int, repeats: int) -> dict:
  torch, model, chans = build_official(repo, 'hdr')
  model.eval()
  fwd = torch.compile(model) if mode.startswith('compile') else model
  g = torch.Generator().manual_seed(0)
  dev = torch_device(torch)
  xs = [torch.rand(1, c, height, width, generator=g).to(dev) for c in chans]
  base = common.peak_rss_mb()
  times = []
  with torch.inference_mode(), _autocast(torch, mode):
    for _ in range(repeats + mode.startswith('compile')):
      t = time.perf_counter()
      out = fwd(*xs)
      out.sum().item()  # waits for the GPU
      times.append(time.perf_counter() - t)
  assert tuple(out.shape) == (1, 3, height, width), out.shape
  return dict(kind='hdr_inference', mode=mode, size=f'{height}x{width}', latency_s=min(times), base_rss_mb=base,
              rss_mb=common.peak_rss_mb(), device_peak_mb=_peak_device_mb(torch), device=dev,
              load=common.load_avg(), torch=torch.__version__, threads=torch.get_num_threads())


def _ratio(a, b):
  return f'{a / b:.2f}×' if a and b else 'n/a'


def paired_ratios(jax_rounds: list[dict], official_rounds: list[dict]) -> tuple[list[float | None], float | None]:
  """Per-round JAX / official images/s, and their median over the rounds where both sides ran.

  Round r's JAX result is paired with round r's official one (they ran back to back); a single JAX result (from
  --jax_results) is paired with every official round.
  """
  ratios = []
  for r, o in enumerate(official_rounds):
    j = jax_rounds[min(r, len(jax_rounds) - 1)] if jax_rounds else {}
    ok = 'error' not in j and 'error' not in o and j.get('images_per_s') and o.get('images_per_s')
    ratios.append(j['images_per_s'] / o['images_per_s'] if ok else None)
  done = [x for x in ratios if x is not None]
  return ratios, statistics.median(done) if done else None


def _per_round(results: list[dict], key: str, fmt: str = '{:.3f}') -> str:
  """'a / b / …' of results[*][key]; an error (the same in every round: failures are not retried) printed once."""
  cells = [r['error'][:80] if 'error' in r else fmt.format(r[key]) if r.get(key) is not None else 'n/a'
           for r in results]
  return ' / '.join(dict.fromkeys(cells) if all('error' in r for r in results) else cells) or 'n/a'


def _load_range(results: list[dict]) -> str:
  """min–max of the 1-minute load average at the end of each case."""
  ones = sorted(float(r['load'].split('/')[0]) for r in results if 'load' in r)
  return f'{ones[0]:.1f}–{ones[-1]:.1f}' if ones else 'n/a'


def _on_device(results: list[dict]) -> bool:
  """Whether every finished result has a device memory peak (a GPU run): memory columns then report it."""
  done = [r for r in results if 'error' not in r]
  return bool(done) and all(r.get('device_peak_mb') for r in done)


def train_table(tasks: list[str], modes: list[str], jax_runs: dict, official: dict) -> str:
  every = [r for rs in list(jax_runs.values()) + list(official.values()) for r in rs]
  mem, mem_name = ('device_peak_mb', 'device peak MB') if _on_device(every) else ('rss_mb', 'peak RSS MB')
  header = ['task', 'JAX img/s (per round)']
  for mode in modes:
    header += [f'official {mode} img/s', f'JAX / {mode} (per round)', f'JAX / {mode} median']
    header += ['torch.compile s'] if mode.startswith('compile') else []
  header += ['kernel CPU s/step JAX; official', 'JAX compile s', 'JAX executable MB', f'JAX {mem_name}',
             f'official {mem_name}', '1-min load']
  rows = []
  for task in tasks:
    js = jax_runs[task]
    row = [task, _per_round(js, 'images_per_s')]
    for mode in modes:
      os_ = official[(task, mode)]
      ratios, med = paired_ratios(js, os_)
      row += [_per_round(os_, 'images_per_s'), ' / '.join(f'{x:.2f}×' if x else 'n/a' for x in ratios),
              f'**{med:.2f}×**' if med else 'n/a']
      row += [_per_round(os_, 'compile_s', '{:.0f}')] if mode.startswith('compile') else []
    row += [_per_round(js, 'cpu_sys_s', '{:.1f}') + '; ' +
            ', '.join(f'{m}: ' + _per_round(official[(task, m)], 'cpu_sys_s', '{:.1f}') for m in modes),
            _per_round(js, 'compile_s', '{:.1f}'), _per_round(js[:1], 'mem_mb', '{:.0f}'),
            _per_round(js, mem, '{:.0f}'),
            ', '.join(f'{m}: ' + _per_round(official[(task, m)], mem, '{:.0f}') for m in modes),
            _load_range(js + [o for m in modes for o in official[(task, m)]])]
    rows.append(row)
  return common.markdown_table(header, rows)


def hdr_table(jax_hdr: dict | None, hdr: dict) -> str:
  rows = []
  on_device = _on_device(([jax_hdr] if jax_hdr else []) + list(hdr.values()))
  for mode, o in hdr.items():
    error = o.get('error') or ('JAX result missing' if jax_hdr is None else jax_hdr.get('error'))
    if error:
      rows.append([mode, error] + [''] * 5)
      continue
    if on_device:
      jmem, omem = jax_hdr['device_peak_mb'], o['device_peak_mb']
    else:
      jmem = jax_hdr['rss_mb'] - jax_hdr['base_rss_mb']
      omem = o['rss_mb'] - o['base_rss_mb']
    rows.append([mode, f"{jax_hdr['latency_s']:.1f} / {o['latency_s']:.1f}",
                 _ratio(jax_hdr['latency_s'], o['latency_s']), f'{jmem:.0f} / {omem:.0f}', _ratio(jmem, omem),
                 f"{jax_hdr['rss_mb']:.0f} / {o['rss_mb']:.0f}", f"JAX {jax_hdr['load']}; official {o['load']}"])
  mem_name = 'device peak MB' if on_device else 'peak RSS above base MB'
  return common.markdown_table(['official mode', 'latency s JAX / official', 'latency ratio',
                                f'{mem_name} JAX / official', 'memory ratio', 'peak RSS MB', 'load avg'], rows)


def define_flags(f) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('official_repo', None, 'local checkout of Guanys-dar/MGDN', required=True, flag_values=f)
  common.define_list('tasks', 'mef,mff,hdr', 'comma-separated subset of mef,mff,hdr', f, choices=tuple(_CTOR))
  common.define_list('modes', 'eager,compile', f'official execution modes, a subset of {",".join(MODES)} (_bf16: '
                     'torch.autocast bfloat16)', f, choices=MODES)
  flags.DEFINE_enum('jax_dtype', 'float32', ['float32', 'bfloat16'],
                    "the JAX step's compute dtype (train_bench.py --dtype)", flag_values=f)
  flags.DEFINE_integer('jax_microbatch_size', 0, "the JAX step's images per micro-batch (train_bench.py "
                       '--microbatch_size; 0 = its default)', lower_bound=0, flag_values=f)
  flags.DEFINE_integer('batch', 4, 'images per training step (both sides)', lower_bound=1, flag_values=f)
  flags.DEFINE_integer('size', 128, 'side of the square training patches (both sides)', lower_bound=1,
                       flag_values=f)
  flags.DEFINE_integer('steps', 3, 'timed steps per case after one untimed step (median)', lower_bound=1,
                       flag_values=f)
  flags.DEFINE_integer('rounds', 3, 'JAX and official cases of a task run back to back, in alternating order, this '
                       'many times', lower_bound=1, flag_values=f)
  flags.DEFINE_bool('hdr_inference', True, 'also compare full-image HDR inference (--nohdr_inference: train steps '
                    'only)', flag_values=f)
  common.define_size('hdr_size', '1000x1500', 'HxW of the HDR inference images', f)
  common.define_list('hdr_modes', 'eager', "official modes for HDR inference (subset of --modes' choices)", f,
                     choices=MODES)
  flags.DEFINE_string('jax_results', '', 'JSON of `train_bench.py --json_out` (else JAX runs here)', flag_values=f)
  flags.DEFINE_string('json_out', '', 'also write every raw result here', flag_values=f)
  flags.DEFINE_float('timeout', 1800., 'seconds per case', lower_bound=0., flag_values=f)
  flags.DEFINE_string('one', None, "internal: the case a child process runs, 'train:<task>:<mode>' or 'hdr:<mode>' "
                      '(set by the parent)', flag_values=f)


def parse_args(argv=None):
  """The flags' values; `--help` and usage errors exit (mgdn_jax/cli.py)."""
  return cli.parse(PROG, __doc__, define_flags, argv)[0]


def main(argv=None) -> None:
  args = parse_args(argv)
  h, w = common.hw(args.hdr_size)
  if args.one:
    parts = args.one.split(':')
    if parts[-1].startswith('compile'):  # an empty inductor cache, so that compile_s is a cold compile in every round
      os.environ['TORCHINDUCTOR_CACHE_DIR'] = tempfile.mkdtemp(prefix='compare_official_inductor_')
      atexit.register(shutil.rmtree, os.environ['TORCHINDUCTOR_CACHE_DIR'], ignore_errors=True)
    res = (run_hdr_inference(args.official_repo, parts[1], h, w, 1) if parts[0] == 'hdr' else
           run_train(args.official_repo, parts[1], parts[2], args.batch, args.size, args.steps))
    print(json.dumps(res), flush=True)
    return
  tasks, modes = args.tasks, args.modes
  _models_dir(args.official_repo)  # fail before the first (long) case, not in every child
  bench = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'train_bench.py')
  shared = [f'--batch={args.batch}', f'--size={args.size}', f'--steps={args.steps}', f'--hdr_size={args.hdr_size}']
  jax_passthrough = [*shared, f'--dtype={args.jax_dtype}', f'--microbatch_size={args.jax_microbatch_size}']
  passthrough = [f'--official_repo={args.official_repo}', *shared]
  jax_runs, jax_hdr = {t: [] for t in tasks}, None
  if args.jax_results:
    with open(args.jax_results) as f:
      jax_res = json.load(f)
    for r in jax_res['train']:
      if r.get('task') in jax_runs:
        jax_runs[r['task']].append(r)
    jax_hdr = next((r for r in jax_res.get('hdr_inference', []) if 'error' not in r), None)

  def log(what, res):
    print(json.dumps({**what, **res}), file=sys.stderr, flush=True)

  # The machine's speed drifts by up to 1.7x between runs taken minutes apart, so each ratio comes from a JAX and
  # an official case run back to back; alternating which goes first cancels a drift within the pair.
  official = {(t, m): [] for t in tasks for m in modes}
  for rnd in range(args.rounds):
    for task in tasks:
      cases = [('jax', None)] * (not args.jax_results) + [('official', m) for m in modes]
      for side, mode in (cases if rnd % 2 == 0 else cases[::-1]):
        if side == 'jax':
          res = common.run_isolated(bench, [f'--one=train:{task}', *jax_passthrough], args.timeout)
          jax_runs[task].append(res)
          log({'round': rnd, 'side': 'jax', 'task': task}, res)
          continue
        prev = official[(task, mode)]
        if prev and 'error' in prev[-1]:  # a crash (torch.compile here) repeats: do not spend another round
          prev.append(prev[-1])
          continue
        res = common.run_isolated(__file__, [f'--one=train:{task}:{mode}', *passthrough], args.timeout)
        prev.append(res)
        log({'round': rnd, 'side': 'official', 'task': task, 'mode': mode}, res)
  hdr = {}
  if args.hdr_inference:
    if jax_hdr is None:
      jax_hdr = common.run_isolated(bench, ['--one=hdr', *jax_passthrough], args.timeout)
      log({'hdr': 'jax'}, jax_hdr)
    for mode in args.hdr_modes:
      hdr[mode] = common.run_isolated(__file__, [f'--one=hdr:{mode}', *passthrough], args.timeout)
      log({'hdr': mode}, hdr[mode])

  print(f'Train step, batch {args.batch} × {args.size}², {args.rounds} round(s), JAX and official back to back in '
        f'alternating order (images/s; ratio = JAX / official, higher is better for JAX)\n')
  print(train_table(tasks, modes, jax_runs, official) + '\n')
  if hdr:
    print(f'HDR inference {args.hdr_size}, untiled (ratio = JAX / official, lower is better for JAX)\n')
    print(hdr_table(jax_hdr, hdr))
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump(dict(jax_train=jax_runs, official_train={f'{t}:{m}': v for (t, m), v in official.items()},
                     jax_hdr=jax_hdr, official_hdr=hdr), f, indent=1)


if __name__ == '__main__':
  parse_args()  # --help and usage errors answer before the process re-exec
  platform.tune_process()
  main()
