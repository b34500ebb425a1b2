"""The train_bench.py measurements on the official PyTorch MGDN (eager and torch.compile), with JAX / official ratios.

  pip install -r requirements-bench.txt                  # torch (CPU), benchmark-only
  python benchmarks/compare_official.py --official_repo=/tmp/mgdn_official
  python benchmarks/compare_official.py --official_repo=/tmp/mgdn_official --jax_results=/tmp/jax_train.json \
      --tasks=mff --modes=eager --no_hdr_inference       # reuse a train_bench.py --json_out run; quick

`--official_repo` is a local checkout of github.com/Guanys-dar/MGDN (commit dd157ff); nothing of it is copied here.
Its model imports timm only for DropPath / to_2tuple / trunc_normal_; a stand-in `timm` module with those three
(written here) is put into sys.modules first, so neither timm nor torchvision is needed.

Official train step: the release has no training code, so the step is forward (train mode, DropPath on) + L1
(μ-law L1 for HDR) + backward + Adam (lr 2e-4). It has no masked-MI loss: its model does not return the MGDF
features. The JAX step does more work (MI loss, EMA, finite-check). Constructor calls are the official scripts'
(MGDN_REFERENCE §1). torch uses every core (set_num_threads(os.cpu_count())), as XLA:CPU does. Each case runs in
its own process (peak RSS is that case's); torch.compile's compile time is its first step minus a later step.
"""
import argparse
import json
import math
import os
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # pylint: disable=g-import-not-at-top,wrong-import-position
from mgdn_jax import host_memory  # pylint: disable=g-import-not-at-top,wrong-import-position

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


def build_official(repo: str, task: str):
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(os.cpu_count())
  _install_timm_standin(torch)
  models_dir = os.path.join(os.path.abspath(repo), 'models')
  if not os.path.isfile(os.path.join(models_dir, 'MGFF', 'DYKPN.py')):
    raise SystemExit(f'compare_official: {models_dir}/MGFF/DYKPN.py not found; --official_repo must be a checkout '
                     'of Guanys-dar/MGDN')
  sys.path.insert(0, models_dir)
  dykpn = __import__('MGFF.DYKPN', fromlist=['x'])
  cls, kwargs, chans = _CTOR[task]
  torch.manual_seed(0)
  return torch, getattr(dykpn, cls)(**kwargs), chans


def run_train(repo: str, task: str, mode: str, batch: int, size: int, steps: int) -> dict:
  torch, model, chans = build_official(repo, task)
  model.train()
  step_model = torch.compile(model) if mode == 'compile' else model
  opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.9, 0.999))
  g = torch.Generator().manual_seed(0)
  xs = [torch.rand(batch, c, size, size, generator=g) for c in chans]
  target = torch.rand(batch, 3, size, size, generator=g)

  def recon(out):
    if task == 'hdr':  # μ-law L1, μ = 5000, as the JAX HDR config
      tm = lambda x: torch.log1p(5000. * x) / math.log1p(5000.)
      return (tm(out.clamp_min(0.)) - tm(target)).abs().mean()
    return (out - target).abs().mean()

  def step():
    opt.zero_grad(set_to_none=True)
    loss = recon(step_model(*xs))
    loss.backward()
    opt.step()
    return loss.item()

  t = time.perf_counter()
  step()
  first_s = time.perf_counter() - t
  times = []
  for _ in range(steps):
    t = time.perf_counter()
    step()
    times.append(time.perf_counter() - t)
  times.sort()
  step_s = times[len(times) // 2]
  return dict(kind='train', task=task, mode=mode, batch=batch, size=size, step_s=step_s, steps_per_s=1 / step_s,
              images_per_s=batch / step_s, compile_s=first_s - step_s if mode == 'compile' else None,
              rss_mb=common.peak_rss_mb(), load=common.load_avg(), torch=torch.__version__,
              threads=torch.get_num_threads())


def run_hdr_inference(repo: str, mode: str, height: int, width: int, repeats: int) -> dict:
  torch, model, chans = build_official(repo, 'hdr')
  model.eval()
  fwd = torch.compile(model) if mode == 'compile' else model
  g = torch.Generator().manual_seed(0)
  xs = [torch.rand(1, c, height, width, generator=g) for c in chans]
  base = common.peak_rss_mb()
  times = []
  with torch.inference_mode():
    for _ in range(repeats + (mode == 'compile')):
      t = time.perf_counter()
      out = fwd(*xs)
      times.append(time.perf_counter() - t)
  assert tuple(out.shape) == (1, 3, height, width), out.shape
  return dict(kind='hdr_inference', mode=mode, size=f'{height}x{width}', latency_s=min(times), base_rss_mb=base,
              rss_mb=common.peak_rss_mb(), load=common.load_avg(), torch=torch.__version__,
              threads=torch.get_num_threads())


def _f3(x):
  return f'{x:.3f}' if x else 'n/a'


def _ratio(a, b):
  return f'{a / b:.2f}×' if a and b else 'n/a'


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--official_repo', required=True, help='local checkout of Guanys-dar/MGDN')
  p.add_argument('--tasks', default='mef,mff,hdr', help='comma-separated subset of mef,mff,hdr')
  p.add_argument('--modes', default='eager,compile', help='official execution modes: eager, compile')
  p.add_argument('--batch', type=int, default=4)
  p.add_argument('--size', type=int, default=128)
  p.add_argument('--steps', type=int, default=3)
  p.add_argument('--no_hdr_inference', action='store_true')
  p.add_argument('--hdr_size', default='1000x1500')
  p.add_argument('--hdr_modes', default='eager', help='official modes for HDR inference (eager, compile)')
  p.add_argument('--jax_results', default='', help='JSON of `train_bench.py --json_out` (else JAX runs here)')
  p.add_argument('--timeout', type=float, default=1800., help='seconds per case')
  p.add_argument('--one', help=argparse.SUPPRESS)  # child: 'train:<task>:<mode>' or 'hdr:<mode>'
  args = p.parse_args()
  h, w = map(int, args.hdr_size.split('x'))
  if args.one:
    parts = args.one.split(':')
    res = (run_hdr_inference(args.official_repo, parts[1], h, w, 1) if parts[0] == 'hdr' else
           run_train(args.official_repo, parts[1], parts[2], args.batch, args.size, args.steps))
    print(json.dumps(res), flush=True)
    return
  tasks = [t for t in args.tasks.split(',') if t]
  if args.jax_results:
    with open(args.jax_results) as f:
      jax_res = json.load(f)
  else:
    out = '/tmp/compare_official_jax.json'
    bench = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'train_bench.py')
    extra = ['--no_hdr_inference'] if args.no_hdr_inference else []
    common.run_isolated(bench, [f'--tasks={",".join(tasks)}', f'--batch={args.batch}', f'--size={args.size}',
                                f'--hdr_size={args.hdr_size}', f'--json_out={out}', *extra])
    with open(out) as f:
      jax_res = json.load(f)
  jax_train = {r['task']: r for r in jax_res['train'] if 'error' not in r}
  jax_hdr = next((r for r in jax_res.get('hdr_inference', []) if 'error' not in r), None)
  passthrough = [f'--official_repo={args.official_repo}', f'--batch={args.batch}', f'--size={args.size}',
                 f'--steps={args.steps}', f'--hdr_size={args.hdr_size}']
  official = {}
  for task in tasks:
    for mode in args.modes.split(','):
      official[(task, mode)] = common.run_isolated(__file__, [f'--one=train:{task}:{mode}', *passthrough],
                                                   args.timeout)
      print(json.dumps({'task': task, 'mode': mode, **official[(task, mode)]}), file=sys.stderr, flush=True)
  hdr = {}
  if not args.no_hdr_inference:
    for mode in args.hdr_modes.split(','):
      hdr[mode] = common.run_isolated(__file__, [f'--one=hdr:{mode}', *passthrough], args.timeout)
      print(json.dumps({'hdr': mode, **hdr[mode]}), file=sys.stderr, flush=True)

  print(f'Train step, batch {args.batch} × {args.size}² (images/s; ratio = JAX / official, higher is better for '
        f'JAX); load avg at the end: {common.load_avg()}\n')
  rows = []
  for task in tasks:
    j = jax_train.get(task, {})
    row = [task, _f3(j.get('images_per_s')), j.get('compile_s') or j.get('error', 'n/a')]
    for mode in args.modes.split(','):
      o = official[(task, mode)]
      row += ([_f3(o['images_per_s']), _ratio(j.get('images_per_s'), o['images_per_s'])] if 'error' not in o
              else [o['error'], 'n/a'])
      if mode == 'compile':
        row.append(o.get('compile_s'))
    row.append(f"JAX {j.get('load', '?')}; official {official[(task, args.modes.split(',')[0])].get('load', '?')}")
    rows.append(row)
  header = ['task', 'JAX img/s', 'JAX compile s']
  for mode in args.modes.split(','):
    header += [f'official {mode} img/s', f'JAX / {mode}'] + (['torch.compile s'] if mode == 'compile' else [])
  print(common.markdown_table(header + ['load avg'], rows) + '\n')
  if hdr:
    print(f'HDR inference {args.hdr_size}, untiled (ratio = JAX / official, lower is better for JAX)\n')
    hrows = []
    for mode, o in hdr.items():
      if 'error' in o or jax_hdr is None:
        hrows.append([mode, o.get('error', 'JAX result missing')] + [''] * 5)
        continue
      jmem = jax_hdr['rss_mb'] - jax_hdr['base_rss_mb']
      omem = o['rss_mb'] - o['base_rss_mb']
      hrows.append([mode, f"{jax_hdr['latency_s']:.1f} / {o['latency_s']:.1f}",
                    _ratio(jax_hdr['latency_s'], o['latency_s']), f'{jmem:.0f} / {omem:.0f}', _ratio(jmem, omem),
                    f"{jax_hdr['rss_mb']:.0f} / {o['rss_mb']:.0f}", f"JAX {jax_hdr['load']}; official {o['load']}"])
    print(common.markdown_table(['official mode', 'latency s JAX / official', 'latency ratio',
                                 'peak RSS above base MB JAX / official', 'memory ratio', 'peak RSS MB',
                                 'load avg'], hrows))


if __name__ == '__main__':
  host_memory.tune_and_reexec()
  main()
