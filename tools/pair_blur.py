"""How strongly the two sources of real multi-focus pairs are blurred against each other: per tile, the Gaussian σ
that best turns one source into the other.

  python tools/pair_blur.py --sources_dir=../shared/data/lytro

Synthetic training pairs must cover the defocus a model meets; this measures it on real pairs (`A/` and `B/` with
the same file names, or `<scene>-A`/`-B` files: `data_pipelines.paired.scan_pairs`). Each pair is cut into `--tile`²
tiles in gray; in a tile where one source is sharp, the other is close to a blur of it. For every σ of a log grid
and both directions the tool fits other ≈ gain · G_σ(sharp) + offset by least squares (the sources may differ in
exposure) and keeps the best σ. A tile counts when some blur explains it at least 4× better than no blur (flat
tiles, occlusion edges and in-focus-in-both tiles do not), and a pillbox (disk) kernel of the best radius is fitted
beside the Gaussian, since real lens blur lies between the two.
"""
import dataclasses
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo, when run as a script

SIGMAS = tuple(0.3 * (10 / 0.3) ** (i / 30) for i in range(31))  # log grid, 0.3–10 px, 12 % apart
PERCENTILES = (10, 25, 50, 75, 90)
EXPLAINED = 4.0  # a tile counts when the best blur's residual is this many times below the unblurred one's
MIN_STD = 0.02   # tiles flatter than this in both sources carry no blur information


@dataclasses.dataclass(frozen=True)
class TileBlur:
  sigma: float     # best Gaussian σ (pixels)
  radius: float    # best disk radius (pixels)
  gaussian_mse: float
  disk_mse: float
  unblurred_mse: float


def _disk(radius: float):
  import numpy as np
  n, s = int(np.ceil(radius)), 8  # supersampled 8× per pixel: an anti-aliased disk for non-integer radii
  c = (np.arange((2 * n + 1) * s) + 0.5) / s - (n + 0.5)
  k = (c[:, None] ** 2 + c[None, :] ** 2 <= radius ** 2).astype(np.float64)
  k = k.reshape(2 * n + 1, s, 2 * n + 1, s).mean((1, 3))
  return k / k.sum()


def _convolve(img, kernel):
  """`img` (H, W) convolved with an odd square `kernel`, mirrored borders; by FFT, as disks grow to 41²."""
  import numpy as np
  from scipy import signal
  r = kernel.shape[0] // 2
  return signal.fftconvolve(np.pad(img, r, mode='symmetric'), kernel, mode='valid')


def _tiles(img, tile: int):
  """(H, W) → (T, tile²): the whole tiles in raster order."""
  h, w = img.shape[0] // tile * tile, img.shape[1] // tile * tile
  return img[:h, :w].reshape(h // tile, tile, w // tile, tile).swapaxes(1, 2).reshape(-1, tile * tile)


def _affine_mse(src, dst):
  """Per row, the residual of the least-squares fit dst ≈ gain · src + offset. (T, P), (T, P) → (T,)."""
  import numpy as np
  sc, dc = src - src.mean(1, keepdims=True), dst - dst.mean(1, keepdims=True)
  var_s = (sc * sc).mean(1)
  cov = (sc * dc).mean(1)
  return np.maximum((dc * dc).mean(1) - cov ** 2 / np.maximum(var_s, 1e-12), 0.)


def _best(a, b, kernels, tile):
  """Per tile, (index of the best kernel, its residual) over both directions (a → b and b → a)."""
  import numpy as np
  ta, tb = _tiles(a, tile), _tiles(b, tile)
  mse = np.stack([np.minimum(_affine_mse(_tiles(blur(a), tile), tb), _affine_mse(_tiles(blur(b), tile), ta))
                  for blur in kernels])
  return mse.argmin(0), mse.min(0)


def estimate(a, b, tile: int = 32, sigmas=SIGMAS) -> list[TileBlur]:
  """TileBlur of every tile of the gray (H, W) float pair `a`, `b` in [0, 1] that some blur explains."""
  import numpy as np
  from scipy import ndimage
  radii = [s * 2 for s in sigmas]  # a disk of radius 2σ spreads as far as a Gaussian of σ (variance σ² per axis)
  gi, gm = _best(a, b, [lambda x, s=s: ndimage.gaussian_filter(x, s, mode='reflect') for s in sigmas], tile)
  di, dm = _best(a, b, [lambda x, r=r: _convolve(x, _disk(r)) for r in radii], tile)
  ta, tb = _tiles(a, tile), _tiles(b, tile)
  plain = np.minimum(_affine_mse(ta, tb), _affine_mse(tb, ta))
  textured = np.maximum(ta.std(1), tb.std(1)) >= MIN_STD
  keep = textured & (gm * EXPLAINED < plain)
  return [TileBlur(sigmas[gi[t]], radii[di[t]], float(gm[t]), float(dm[t]), float(plain[t]))
          for t in np.flatnonzero(keep)]


def _gray(path: pathlib.Path):
  from data_pipelines import common
  from mgdn_jax.metrics import common as metrics_common
  return metrics_common.rgb2gray(common.read_rgb8(path)) / 255  # the gray the MFF metrics score


def scan(sources_dir: pathlib.Path, tile: int) -> dict[str, list[TileBlur]]:
  """{pair name: its explained tiles} for the pairs of `sources_dir` (A/ + B/, or <scene>-A/-B files)."""
  from data_pipelines import common
  from data_pipelines import paired
  out = {}
  for name, (path, other) in paired.scan_pairs(sources_dir, 'folder of real multi-focus pairs'):
    a, b = _gray(path), _gray(other)
    if a.shape != b.shape:
      raise common.DataError(f'{other}: {b.shape[0]}x{b.shape[1]}, but {path} is {a.shape[0]}x{a.shape[1]}')
    out[name] = estimate(a, b, tile)
  return out


PROG = 'pair_blur'


def define_flags(f) -> None:
  from absl import flags
  flags.DEFINE_string('sources_dir', None, 'folder with A/ and B/ of real multi-focus pairs', required=True,
                      flag_values=f)
  flags.DEFINE_integer('tile', 32, 'side of the tiles', lower_bound=8, flag_values=f)


def main(argv=None) -> None:
  import numpy as np
  from mgdn_jax import cli
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  from data_pipelines import common
  try:
    per_pair = scan(pathlib.Path(args.sources_dir).expanduser(), args.tile)
  except common.DataError as e:
    cli.fail(PROG, e)
  print(f'{"pair":<16} tiles  σ median  σ 90th')
  for name, fits in per_pair.items():
    s = [t.sigma for t in fits]
    print(f'{name:<16} {len(s):5d}  ' + (f'{np.median(s):8.2f}  {np.percentile(s, 90):6.2f}' if s else '     n/a'))
  fits = [t for v in per_pair.values() for t in v]
  if not fits:
    cli.fail(PROG, f'{args.sources_dir}: no tile is explained by a blur of the other source')
  s = np.array([t.sigma for t in fits])
  print(f'all: {len(fits)} tiles; Gaussian σ at percentiles {PERCENTILES}: '
        + ' / '.join(f'{v:.2f}' for v in np.percentile(s, PERCENTILES)))
  share = lambda lo, hi: f'{np.mean((s >= lo) & (s < hi)):.0%}'
  print(f'  σ < 1: {share(0, 1)}, 1–2: {share(1, 2)}, 2–4: {share(2, 4)}, ≥ 4: {share(4, np.inf)}')
  better = np.mean([t.gaussian_mse < t.disk_mse for t in fits])
  print(f'  a Gaussian fits better than a disk in {better:.0%} of the tiles')


if __name__ == '__main__':
  main()
