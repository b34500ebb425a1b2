"""`drpl_mff`: DRPL-style synthetic multi-focus training pairs generated from any folder of sharp images.

Layout of manual_dir/drpl_mff: sharp images in `images/` (or directly in the folder) and, optionally, binary focus
masks in `masks/` (white = foreground). Recipe (DRPL, Li et al. TIP 2020), one pair per sharp image, deterministic
from SEED and the file name: a random 256×256 crop; a mask (the masks/ file at the same sorted index modulo their
count, resized to the crop, or a generated smooth-blob mask); a 7×7 Gaussian blur (σ = 2); the complementary
pair near = M·sharp + (1−M)·blur, far = (1−M)·sharp + M·blur; target = the sharp crop.
Features: image_0 = near, image_1 = far, target (uint8 RGB), name = image file stem.
"""
import pathlib
import zlib

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines import common
from data_pipelines import synth

CROP = 256
SEED = 0


def scan(root: pathlib.Path) -> tuple[list[pathlib.Path], list[pathlib.Path]]:
  root = common.require_dir(root, 'folder of sharp images')
  image_dir = root / 'images' if (root / 'images').is_dir() else root
  images = common.list_images(image_dir)
  if not images:
    raise common.DataError(f'{image_dir}: no sharp images (.jpg/.png/...)')
  masks = common.list_images(root / 'masks') if (root / 'masks').is_dir() else []
  if (root / 'masks').is_dir() and not masks:
    raise common.DataError(f'{root / "masks"}: mask folder has no images')
  stems = {}
  for path in images:
    (h, w), _ = common.probe_rgb8(path)
    if h < CROP or w < CROP:
      raise common.DataError(f'{path}: image {h}x{w} is smaller than the {CROP}x{CROP} crop')
    if path.stem in stems:
      raise common.DataError(f'{path}: duplicate name (also {stems[path.stem].name}); names are the keys')
    stems[path.stem] = path
  for path in masks:
    common.probe_rgb8(path)
  return images, masks


def make_pair(path: pathlib.Path, index: int, masks: list[pathlib.Path]) -> dict:
  rng = np.random.default_rng([SEED, zlib.crc32(path.stem.encode())])
  sharp = synth.random_crop(rng, common.read_rgb8(path), CROP, CROP)
  if masks:
    mask = synth.mask_from_image(common.read_rgb8(masks[index % len(masks)]), CROP, CROP)
  else:
    mask = synth.random_mask(rng, CROP, CROP)
  near, far = synth.drpl_pair(sharp, mask)
  return {'image_0': common.png_bytes(near), 'image_1': common.png_bytes(far),
          'target': common.png_bytes(np.ascontiguousarray(sharp)), 'name': path.stem}


class DrplMff(tfds.core.GeneratorBasedBuilder):
  """Synthetic near/far-focused pairs with their all-in-focus target."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': f'Initial release: {CROP}² crops, 7×7 Gaussian blur, seed {SEED}.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put a folder of sharp, all-in-focus photos (e.g. PASCAL VOC 2012 JPEGImages, at least 256×256 each) in
  manual_dir/images (manual_dir = manual_dir/drpl_mff for the pipelines), optionally with binary masks
  (e.g. VOC SegmentationObject rendered white-on-black) in manual_dir/masks.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=common.fusion_features(2, with_target=True))

  def _split_generators(self, dl_manager):
    images, masks = scan(pathlib.Path(dl_manager.manual_dir))
    return {'train': self._generate_examples(images, masks)}

  def _generate_examples(self, images, masks):
    for index, path in enumerate(images):
      yield path.stem, make_pair(path, index, masks)
