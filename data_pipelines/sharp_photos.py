"""Builds a `drpl_mff` manual_dir (a folder of sharp photos) from photos already on the machine.

  python -m data_pipelines.sharp_photos --out=/data/drpl_mff --skimage --mefb=../shared/data/mefb
  python -m data_pipelines.sharp_photos --out=/data/drpl_mff --folder=~/Pictures/sharp

Sources (any combination):
* `--skimage`: the photos that ship inside scikit-image (no download; grey ones become RGB);
* `--mefb=DIR`: an MEFB-layout folder (`<Name>/<Name>_A.*`, `<Name>_B.*`), each under/over pair fused into one
  well-exposed photo with OpenCV's Mertens exposure fusion (needs `opencv-python-headless`);
* `--folder=DIR`: any folder of sharp images, copied as PNG.
Every photo lands as `<out>/images/<source>_<name>.png`; photos smaller than the DRPL crop (256²) are skipped
and listed. Nothing existing is replaced: a non-empty `<out>/images` stops the script before any work, and the
folder is written under a temporary name and renamed into place only once every photo is written.
"""
import pathlib
import shutil
import sys
import tempfile

from absl import flags

PROG = 'sharp_photos'


def define_flags(f: flags.FlagValues) -> None:
  """sharp_photos' flags on `f` (mgdn_jax.cli.parse)."""
  flags.DEFINE_string('out', None, 'The drpl_mff manual_dir to create (photos go to OUT/images).', required=True,
                      flag_values=f)
  flags.DEFINE_bool('skimage', False, "Add scikit-image's shipped photos.", flag_values=f)
  flags.DEFINE_string('mefb', None, 'MEFB-layout folder whose pairs are fused with Mertens.', flag_values=f)
  flags.DEFINE_string('folder', None, 'Folder of sharp images to add.', flag_values=f)

# scikit-image photos of at least 256² that ship with the package (the others are fetched on demand).
SKIMAGE_PHOTOS = ('astronaut', 'brick', 'camera', 'chelsea', 'coffee', 'colorwheel', 'grass', 'gravel',
                  'hubble_deep_field', 'immunohistochemistry', 'moon', 'rocket', 'retina', 'coins', 'clock',
                  'cell')
MIN_SIZE = 256


def skimage_photos():
  """(name, uint8 (H, W, 3)) for each of SKIMAGE_PHOTOS."""
  import numpy as np
  from skimage import data
  for name in SKIMAGE_PHOTOS:
    img = np.asarray(getattr(data, name)())
    if img.ndim == 2:
      img = np.repeat(img[..., None], 3, axis=-1)
    yield name, np.ascontiguousarray(img[..., :3].astype(np.uint8))


def mefb_photos(root: pathlib.Path):
  """(scene, uint8 (H, W, 3)) Mertens fusion of each `<scene>/*_[AaBb].*` pair of an MEFB-layout folder."""
  import numpy as np
  from data_pipelines import common
  from mgdn_jax.metrics import baselines
  if baselines.import_cv2() is None:
    raise common.DataError('--mefb needs OpenCV for the Mertens fusion: pip install opencv-python-headless')
  root = common.require_dir(root, 'MEFB-layout folder')
  scenes = sorted(p for p in root.iterdir() if p.is_dir())
  if not scenes:
    raise common.DataError(f'{root}: no scene folders (expected <Name>/<Name>_A.*, <Name>_B.*)')
  for scene in scenes:
    pair = []
    for letter in 'AB':
      found = [p for p in common.list_images(scene) if p.stem[-2:].upper() == f'_{letter}']
      if len(found) != 1:
        raise common.DataError(f'{scene}: expected one *_{letter}.* image, found {len(found)}')
      pair.append(common.read_rgb8(found[0]))
    if pair[0].shape != pair[1].shape:
      raise common.DataError(f'{scene}: the _A and _B images differ in size ({pair[0].shape} vs {pair[1].shape})')
    yield scene.name, np.ascontiguousarray(baselines.baseline('mertens', pair))


def folder_photos(root: pathlib.Path):
  from data_pipelines import common
  root = common.require_dir(root, 'folder of sharp images')
  for path in common.list_images(root):
    yield path.stem, common.read_rgb8(path)


def write_photos(out: pathlib.Path, sources) -> tuple[int, list[str]]:
  """Writes `(prefix, iterable of (name, uint8 (H, W, 3)))` sources as `out/images/<prefix>_<name>.png`.

  Returns (photos written, names skipped for being smaller than MIN_SIZE). Raises DataError (nothing written)
  when `out/images` already holds files or a source fails.
  """
  from PIL import Image
  from data_pipelines import common
  images = out / 'images'
  if images.exists() and any(images.iterdir()):
    raise common.DataError(f'{images} already holds files; choose a new --out (nothing was changed)')
  out.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix='.images.', dir=out))
  written, skipped = 0, []
  try:
    for prefix, photos in sources:
      for name, img in photos:
        if min(img.shape[:2]) < MIN_SIZE:
          skipped.append(f'{prefix}_{name} ({img.shape[0]}x{img.shape[1]})')
          continue
        Image.fromarray(img).save(staging / f'{prefix}_{name}.png')
        written += 1
    if not written:
      raise common.DataError(f'no photo of at least {MIN_SIZE}x{MIN_SIZE} in the sources')
    if images.exists():
      images.rmdir()  # empty (checked above): replacing it loses nothing
    staging.rename(images)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  return written, skipped


def main(argv=None) -> None:
  from mgdn_jax import cli
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  from data_pipelines import common
  sources = []
  if args.skimage:
    sources.append(('skimage', skimage_photos()))
  if args.mefb:
    sources.append(('mefb', mefb_photos(pathlib.Path(args.mefb).expanduser())))
  if args.folder:
    sources.append(('photo', folder_photos(pathlib.Path(args.folder).expanduser())))
  if not sources:
    cli.usage_error(PROG, 'no source given: pass --skimage, --mefb=DIR and/or --folder=DIR')
  images = pathlib.Path(args.out).expanduser() / 'images'
  try:
    written, skipped = write_photos(images.parent, sources)
  except common.DataError as e:
    cli.fail(PROG, e)
  if skipped:
    print(f'skipped {len(skipped)} photos smaller than {MIN_SIZE}²: {", ".join(skipped)}', file=sys.stderr)
  print(f'wrote {written} sharp photos to {images}')


if __name__ == '__main__':
  main(sys.argv[1:])
