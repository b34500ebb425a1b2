"""Times the paper's metrics: all MFF metrics on the 20 Lytro pairs and all MEF metrics on a 1200x800 pair.

Targets (2-core CPU): MFF / 20 Lytro pairs < 60 s, MEF / one 1200x800 pair < 10 s.

  python benchmarks/metrics_bench.py [--data_dir=../shared/data]

The fused image is the plain average of the sources (the metric cost does not depend on its content).  Without
the data folder, random images of the same sizes are used.
"""
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo, when run as a script

_DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'


def _average(a, b):
  import numpy as np  # pylint: disable=g-import-not-at-top
  return ((a.astype(np.uint16) + b.astype(np.uint16) + 1) // 2).astype(np.uint8)


def _lytro_pairs(data_dir: pathlib.Path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  names = sorted(p.name for p in (data_dir / 'lytro' / 'A').glob('*.jpg')) if data_dir.is_dir() else []
  if len(names) == 20:
    return [(np.array(Image.open(data_dir / 'lytro' / 'A' / n).convert('RGB')),
             np.array(Image.open(data_dir / 'lytro' / 'B' / n).convert('RGB'))) for n in names], 'Lytro'
  rng = np.random.default_rng(0)
  return [tuple(rng.integers(0, 256, (520, 520, 3), dtype=np.uint8) for _ in range(2)) for _ in range(20)], 'random'


def _mef_pair(data_dir: pathlib.Path):
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  for folder in sorted((data_dir / 'mefb').glob('*')) if data_dir.is_dir() else []:
    files = sorted(folder.glob('*_[AaBb].*'))
    if len(files) == 2:
      a, b = (np.array(Image.open(f).convert('RGB')) for f in files)
      if a.shape[:2] in ((800, 1200), (1200, 800)):
        return a, b, folder.name
  rng = np.random.default_rng(0)
  return rng.integers(0, 256, (800, 1200, 3), dtype=np.uint8), rng.integers(0, 256, (800, 1200, 3),
                                                                             dtype=np.uint8), 'random'


def _mef_parts() -> dict:
  """The four MEF metrics, each as fn(source_a, source_b, fused) on (H, W, 3) or (H, W) uint8 arrays."""
  from mgdn_jax.metrics import fusion, mef  # pylint: disable=g-import-not-at-top
  return {
      'CE': lambda a, b, f: fusion.per_channel(mef.cross_entropy, a, b, f),
      'MEF_SSIM': lambda a, b, f: fusion.mef_ssim([a, b], f),
      'Qcb': lambda a, b, f: fusion.per_channel(mef.qcb, a, b, f),
      'VIF': lambda a, b, f: fusion.per_channel(mef.vif_fusion, a, b, f),
  }


PROG = 'metrics_bench'


def define_flags(f) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('data_dir', str(_DEFAULT_DATA), 'folder holding lytro/A, lytro/B and mefb/<scene> (random '
                      'images of the same sizes without it)', flag_values=f)


def main(argv=None) -> None:
  from mgdn_jax import cli  # pylint: disable=g-import-not-at-top
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  from mgdn_jax import metrics  # pylint: disable=g-import-not-at-top
  data_dir = pathlib.Path(args.data_dir).expanduser()

  pairs, source = _lytro_pairs(data_dir)
  for gray in (False, True):
    start = time.perf_counter()
    for a, b in pairs:
      metrics.evaluate_fusion([a, b], _average(a, b), 'mff', gray=gray)
    elapsed = time.perf_counter() - start
    print(f'MFF (Qabf, EN, PSNR_mefb, PSNR, SSIM), 20 {source} pairs 520x520, '
          f'{"gray" if gray else "rgb "}: {elapsed:6.2f} s (target < 60 s)')

  a, b, name = _mef_pair(data_dir)
  for gray in (False, True):
    f = _average(a, b)
    srcs = [metrics.rgb2gray(x) for x in (a, b, f)] if gray else [a, b, f]
    timings = {}
    for key, fn in _mef_parts().items():
      start = time.perf_counter()
      fn(*srcs)
      timings[key] = time.perf_counter() - start
    parts = ', '.join(f'{k} {v:.2f}' for k, v in timings.items())
    print(f'MEF (CE, MEF_SSIM, Qcb, VIF), {name} {a.shape[1]}x{a.shape[0]}, '
          f'{"gray" if gray else "rgb "}: {sum(timings.values()):6.2f} s (target < 10 s) [{parts}]')


if __name__ == '__main__':
  main()
