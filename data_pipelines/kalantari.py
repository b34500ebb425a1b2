"""`kalantari`: the HDR deghosting dataset of Kalantari & Ramamoorthi (SIGGRAPH 2017), 74 train / 15 test scenes.

Layout of manual_dir/kalantari, as distributed: `Training/<scene>/` and `Test/<...>/<scene>/` (the test set comes in
sub-folders such as PAPER/ and EXTRA/). Each scene folder holds three 16-bit RGB TIFF exposures (sorted by file
name = capture order, short to long), `exposure.txt` (one EV per frame, increasing) and `HDRImg.hdr` (Radiance,
linear, aligned with the middle frame). A scene is any folder with a .tif/.hdr/exposure.txt in it; its name is its
path relative to the split folder.
Features: image_0..2 uint16 (under, reference, over), exposures float32 EV (3,), target float32 linear HDR,
name. The HDR-domain inputs L^2.2 / 2^EV are computed by the input pipeline.
"""
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import common
from mgdn_jax import image_io

SPLIT_FOLDERS = {'train': 'Training', 'test': 'Test'}


def _is_scene(folder: pathlib.Path) -> bool:
  return any(p.suffix.lower() in ('.tif', '.tiff', '.hdr') or p.name == 'exposure.txt'
             for p in folder.iterdir() if p.is_file())


def read_exposures(path: pathlib.Path) -> np.ndarray:
  if not path.is_file():
    raise common.DataError(f'{path}: missing exposure file (one EV per frame)')
  try:
    evs = np.array([float(v) for v in path.read_text().split()], np.float32)
  except ValueError:
    raise common.DataError(f'{path}: exposure file must hold numbers (one EV per frame)') from None
  if evs.shape != (3,):
    raise common.DataError(f'{path}: expected 3 EVs, found {evs.size}')
  if not np.all(np.diff(evs) > 0):
    raise common.DataError(f'{path}: EVs {evs.tolist()} are not increasing (frames must go from under to over)')
  return evs


def _tiff_header(path: pathlib.Path) -> tuple[tuple[int, int], np.dtype, int]:
  import tifffile
  common.check_pixel_limit(path)
  try:
    with tifffile.TiffFile(path) as tif:
      page = tif.pages[0]
      shape, dtype = page.shape, page.dtype
  except Exception as e:
    raise common.DataError(f'{path}: unreadable or corrupt TIFF ({type(e).__name__}: {e})') from None
  if dtype != np.uint16:
    raise common.DataError(f'{path}: wrong bit depth ({dtype}), expected a 16-bit TIFF')
  channels = shape[2] if len(shape) == 3 else 1
  if channels not in (3, 4):
    raise common.DataError(f'{path}: expected an RGB image, got shape {shape}')
  return shape[:2], dtype, channels


def _hdr_size(path: pathlib.Path) -> tuple[int, int]:
  try:
    return image_io.image_size(path, 'HDR image')
  except image_io.InputError as e:
    raise common.DataError(str(e)) from None


def read_target(path: pathlib.Path) -> np.ndarray:
  """The ground truth `HDRImg.hdr` as float32 linear RGB, decoded as the official evaluation reads it."""
  try:
    return image_io.read_hdr(path)
  except image_io.InputError as e:
    raise common.DataError(str(e)) from None


def scan_scene(folder: pathlib.Path) -> list[pathlib.Path]:
  """Checks one scene from file headers; returns its three TIFFs in stream order."""
  tiffs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in ('.tif', '.tiff'))
  if len(tiffs) != 3:
    raise common.DataError(f'{folder}: expected 3 TIFF exposures, found {len(tiffs)}')
  read_exposures(folder / 'exposure.txt')
  hdr = folder / 'HDRImg.hdr'
  if not hdr.is_file():
    raise common.DataError(f'{hdr}: missing ground-truth HDR image')
  shapes = [_tiff_header(p)[0] for p in tiffs] + [_hdr_size(hdr)]
  common.check_same_size(folder.name, tiffs + [hdr], shapes)
  return tiffs


def scan(root: pathlib.Path) -> dict[str, list[tuple[str, pathlib.Path, list[pathlib.Path]]]]:
  root = common.require_dir(root, 'Kalantari HDR dataset')
  splits = {}
  for split, sub in SPLIT_FOLDERS.items():
    base = root / sub
    if not base.is_dir():
      continue
    folders = sorted(p for p in [base, *base.rglob('*')] if p.is_dir() and _is_scene(p))
    splits[split] = [(p.relative_to(base).as_posix(), p, scan_scene(p)) for p in folders]
    if not splits[split]:
      raise common.DataError(f'{base}: no scene folders (expected <scene>/ with 3 TIFFs, exposure.txt, HDRImg.hdr)')
  if not splits:
    raise common.DataError(f'{root}: no Training/ or Test/ folder (Kalantari layout)')
  return splits


class Kalantari(tfds.core.GeneratorBasedBuilder):
  """Kalantari 2017 dynamic-scene HDR dataset: three LDR exposures with motion and an aligned HDR ground truth."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the training and test sets from
  https://cseweb.ucsd.edu/~viscomp/projects/SIG17HDR/ and extract them into manual_dir (manual_dir/kalantari for
  the pipelines) so that it holds Training/<scene>/ and Test/.../<scene>/ folders, each with three 16-bit TIFFs,
  exposure.txt and HDRImg.hdr.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=common.hdr_features(),
                                          homepage='https://cseweb.ucsd.edu/~viscomp/projects/SIG17HDR/')

  def _split_generators(self, dl_manager):
    splits = scan(pathlib.Path(dl_manager.manual_dir))
    return {split: self._generate_examples(scenes) for split, scenes in splits.items()}

  def _generate_examples(self, scenes):
    for name, folder, tiffs in scenes:
      example = {f'image_{k}': common.read_rgb16_tiff(p) for k, p in enumerate(tiffs)}
      example['exposures'] = read_exposures(folder / 'exposure.txt')
      target = read_target(folder / 'HDRImg.hdr')
      if target.shape != example['image_1'].shape:
        raise common.DataError(f'{folder / "HDRImg.hdr"}: size {target.shape} differs from the TIFFs')
      example['target'] = target
      example['name'] = name
      yield name, example
