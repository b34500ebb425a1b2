"""How a multi-focus model's fit depends on the strength of the defocus: PSNR against the sharp target of
complementary pairs whose out-of-focus parts are Gaussian-blurred with each σ of a list.

  python tools/defocus_sweep.py --photos=~/heldout/photos/drpl_mff/images \\
      --photos=~/mgdn_data/photos/drpl_mff/images --checkpoint=~/weights/mgdn_mff \\
      --checkpoint=~/mgdn_runs/mff_drpl_lr1e-3

Real focal stacks are blurred by many amounts; the DRPL recipe blurs with one (7×7, σ = 2). Each photo gives one
pair: a seeded random `--patch`² crop and smooth-blob focus mask (`data_pipelines.synth`), the same at every σ, with
the out-of-focus part of both sides blurred with the row's σ (±3σ kernel). The average of the two sources is
printed beside as the trivial baseline: where the blur is too weak to matter, it is what a model should match.
σ = 0 gives both sources the sharp photo itself: a fuser should return it unchanged, and one that sharpens what
both sources show alike scores low there.
`--checkpoint` takes anything `fuse` takes ([raw:] as in fit_check.py) and may repeat.
"""
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo, when run as a script

SIGMAS = (0.0, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
SEED = 7


def photos_of(folders: list[str], per_folder: int) -> list[pathlib.Path]:
  """Up to `per_folder` photos of each folder, evenly spaced in sorted order."""
  import numpy as np
  from data_pipelines import common
  out = []
  for folder in folders:
    images = common.list_images(common.require_dir(pathlib.Path(folder).expanduser(), 'folder of sharp photos'))
    if not images:
      raise common.DataError(f'{folder}: no images (.jpg/.png/...)')
    picks = np.unique(np.linspace(0, len(images) - 1, min(per_folder, len(images))).astype(int))
    out += [images[int(i)] for i in picks]
  return out


def pairs(photos: list[pathlib.Path], sigma: float, patch: int) -> dict:
  """{'stream_0': near, 'stream_1': far, 'target': sharp}, each (N, patch, patch, 3) float32 in [0, 1]."""
  import numpy as np
  from data_pipelines import common
  from data_pipelines import synth
  near, far, sharp = [], [], []
  for i, path in enumerate(photos):
    photo = common.read_rgb8(path)
    if min(photo.shape[:2]) < patch:
      raise common.DataError(f'{path}: {photo.shape[0]}x{photo.shape[1]} is smaller than --patch={patch}')
    rng = np.random.default_rng([SEED, i])
    crop = synth.random_crop(rng, photo, patch, patch)
    a, b = (crop, crop) if sigma == 0 else synth.drpl_pair(crop, synth.random_mask(rng, patch, patch), (sigma, sigma))
    near.append(a), far.append(b), sharp.append(crop)
  return {k: np.stack(v).astype(np.float32) / 255 for k, v in
          (('stream_0', near), ('stream_1', far), ('target', sharp))}


def sweep(fusers: dict, photos: list[pathlib.Path], sigmas, patch: int) -> list[tuple[float, dict[str, float]]]:
  """[(σ, {'average': PSNR, name: PSNR, …})] for `fusers` = {name: batch → (N, H, W, 3) fused}."""
  from tools import fit_check
  rows = []
  for sigma in sigmas:
    batch = pairs(photos, sigma, patch)
    psnr = {'average': fit_check.scores((batch['stream_0'] + batch['stream_1']) / 2, batch['target'])['PSNR']}
    psnr.update({name: fit_check.scores(fuse(batch), batch['target'])['PSNR'] for name, fuse in fusers.items()})
    rows.append((sigma, psnr))
  return rows


PROG = 'defocus_sweep'


def define_flags(f) -> None:
  from absl import flags
  from benchmarks import common as flag_types
  flags.DEFINE_multi_string('photos', None, 'folder of sharp photos (repeatable)', required=True, flag_values=f)
  flags.DEFINE_multi_string('checkpoint', None, '[raw:]weights file, short name, exported model or workdir of an '
                            'MFF model (repeatable)', required=True, flag_values=f)
  flag_types.define_list('sigmas', ','.join(map(str, SIGMAS)), 'blur σ of the rows (0: no blur)', f, item=float,
                          lower_bound=0)
  flags.DEFINE_integer('per_folder', 24, 'photos taken from each folder, evenly spaced', lower_bound=1,
                       flag_values=f)
  flags.DEFINE_integer('patch', 128, 'side of the crop', lower_bound=16, flag_values=f)


def main(argv=None) -> None:
  from mgdn_jax import cli
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  from data_pipelines import common
  from tools import fit_check
  try:
    photos = photos_of(args.photos, args.per_folder)
    loaded, task = fit_check.load_models(PROG, args.checkpoint)
    if task != 'mff':
      cli.fail(PROG, f'the checkpoints are {task} models; the sweep is for mff')
    rows = sweep({spec: lambda b, m=model: fit_check.fused(m, b) for spec, model in loaded}, photos, args.sigmas,
                 args.patch)
  except common.DataError as e:
    cli.fail(PROG, e)
  names = list(rows[0][1])
  print(f'{len(photos)} photos, {args.patch}² crops; PSNR (dB) against the sharp photo')
  widths = [max(len(n), 7) for n in names]
  print(f'{"σ":>5}  ' + '  '.join(f'{n:>{w}}' for n, w in zip(names, widths)))
  for sigma, psnr in rows:
    print(f'{sigma:5.2f}  ' + '  '.join(f'{psnr[n]:{w}.2f}' for n, w in zip(names, widths)))


if __name__ == '__main__':
  main()
