"""`nyu_gdsr`: NYU Depth v2 labelled set for guided depth super-resolution (DKN/FDSR/DCTNet/MGDN split).

Layout of manual_dir/nyu_gdsr: `Depth/<id>.npy` (float depth in metres, (H, W)) and `RGB/<id>.jpg` (the matching
RGB image). Ids 0–999 form the train split and 1000–1448 the test split; a split with no files is omitted (e.g.
when only the test set was downloaded). Features: rgb uint8 (H, W, 3), depth float32 metres (H, W), name = id.
"""
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import common

NUM_TRAIN = 1000  # ids below this are training images
NUM_IMAGES = 1449


def _load_depth(path: pathlib.Path) -> np.ndarray:
  common.check_pixel_limit(path)
  try:
    depth = np.load(path, allow_pickle=False)
  except Exception as e:
    raise common.DataError(f'{path}: unreadable depth .npy ({type(e).__name__}: {e})') from None
  if depth.ndim == 3 and depth.shape[-1] == 1:
    depth = depth[..., 0]
  if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
    raise common.DataError(f'{path}: expected a float (H, W) depth map in metres, got {depth.dtype} {depth.shape}')
  if not np.all(np.isfinite(depth)):
    raise common.DataError(f'{path}: depth has non-finite values')
  return depth.astype(np.float32)


def scan(folder: pathlib.Path) -> dict[str, list[tuple[str, pathlib.Path, pathlib.Path]]]:
  """{split: [(id, rgb path, depth path)]}, after checking every pair (readable, same size)."""
  folder = common.require_dir(folder, 'NYU v2 GDSR')
  depth_dir = common.require_dir(folder / 'Depth', 'NYU v2 depth maps <id>.npy')
  rgb_dir = common.require_dir(folder / 'RGB', 'NYU v2 RGB images <id>.jpg')
  depths = {p.stem: p for p in depth_dir.glob('*.npy')}
  rgbs = {p.stem: p for p in common.list_images(rgb_dir)}
  for stem, path in sorted({**rgbs, **depths}.items()):
    if stem not in depths or stem not in rgbs:
      missing = depth_dir / f'{stem}.npy' if stem not in depths else rgb_dir / f'{stem}.jpg'
      raise common.DataError(f'{path}: unmatched pair (missing {missing})')
    if not stem.isdigit() or int(stem) >= NUM_IMAGES:
      raise common.DataError(f'{path}: expected a numeric id 0–{NUM_IMAGES - 1} as the file name')
  splits = {'train': [], 'test': []}
  for stem in sorted(depths, key=int):
    depth = _load_depth(depths[stem])
    rgb_shape = common.read_rgb8(rgbs[stem]).shape[:2]
    common.check_same_size(stem, [rgbs[stem], depths[stem]], [rgb_shape, depth.shape])
    splits['train' if int(stem) < NUM_TRAIN else 'test'].append((stem, rgbs[stem], depths[stem]))
  if not depths:
    raise common.DataError(f'{depth_dir}: no <id>.npy depth maps')
  return {k: v for k, v in splits.items() if v}


class NyuGdsr(tfds.core.GeneratorBasedBuilder):
  """NYU v2 RGB-D pairs (Silberman et al. 2012) with the DKN train/test split."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Get the NYU v2 labelled set as converted by DKN/FDSR/DCTNet (e.g. GDSR-DCTNet's `RawDatasets/NYUDepthv2_Test`
  and its training counterpart): `Depth/<id>.npy` (metres) and `RGB/<id>.jpg`, ids 0–1448. Place both folders
  in manual_dir (manual_dir/nyu_gdsr for the pipelines).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=common.gdsr_features(),
                                          homepage='https://cs.nyu.edu/~fergus/datasets/nyu_depth_v2.html')

  def _split_generators(self, dl_manager):
    splits = scan(pathlib.Path(dl_manager.manual_dir))
    return {split: self._generate_examples(items) for split, items in splits.items()}

  def _generate_examples(self, items):
    for stem, rgb_path, depth_path in items:
      yield stem, {'rgb': common.encoded_rgb8(rgb_path)[0], 'depth': _load_depth(depth_path), 'name': stem}
