"""`drpl_mff`: DRPL-style synthetic multi-focus training pairs generated from any folder of sharp images.

Layout of manual_dir/drpl_mff: sharp images in `images/` (or directly in the folder) and, optionally, binary focus
masks in `masks/` (white = foreground); `python -m data_pipelines.sharp_photos` builds such a folder. Recipe
(DRPL, Li et al. TIP 2020), deterministic from SEED, the file name and the pair index: a random 256×256 crop; a
mask (the masks/ file at the same sorted index modulo their count, resized to the crop, or a generated smooth-blob
mask); a 7×7 Gaussian blur (σ = 2); the complementary pair near = M·sharp + (1−M)·blur,
far = (1−M)·sharp + M·blur; target = the sharp crop.
Configs: `x1` (the default, DRPL's one pair per photo), `x8` (8 pairs per photo with different crops and masks,
for small photo collections), `x8_defocus` (as x8, but each side's out-of-focus part blurred with its own σ
drawn log-uniformly from 0.5–5 with a ±3σ kernel: a model trained on DRPL's single blur fuses weaker and
stronger defocus far worse; measured in the README's "MFF trained from scratch"), `x8_defocus_strong` (the
same with σ in 1–6, the range of the blur measured between the sources of real Lytro pairs) and
`x8_defocus_overlap` (x8_defocus_strong with a smooth region of up to 30 % left sharp in both sources, as where
real depths of field overlap: without it a model learns to sharpen what both sources show alike).
Features: image_0 = near, image_1 = far, target (uint8 RGB), name = the image file stem (`<stem>-p<k>` for pairs k ≥ 1).
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


def pair_name(stem: str, k: int) -> str:
  return stem if k == 0 else f'{stem}-p{k}'


def make_pair(path: pathlib.Path, index: int, masks: list[pathlib.Path], k: int = 0,
              defocus: tuple[float, float] | None = None, overlap: bool = False) -> dict:
  """Pair k of the photo at `path` (sorted position `index`); pair 0 is the one-pair-per-photo recipe's.

  `defocus`: a σ range; blur each side with its own `synth.defocus_sigma` from it (drawn after the crop and mask,
  which stay those of the fixed-blur recipe). None: DRPL's fixed blur. `overlap`: also leave a
  `synth.overlap_mask` region sharp in both (drawn after the σ, which stay those without it).
  """
  seed = [SEED, zlib.crc32(path.stem.encode())] + ([k] if k else [])
  rng = np.random.default_rng(seed)
  sharp = synth.random_crop(rng, common.read_rgb8(path), CROP, CROP)
  if masks:
    mask = synth.mask_from_image(common.read_rgb8(masks[(index + k) % len(masks)]), CROP, CROP)
  else:
    mask = synth.random_mask(rng, CROP, CROP)
  sigmas = (synth.defocus_sigma(rng, defocus), synth.defocus_sigma(rng, defocus)) if defocus else None
  both = synth.overlap_mask(rng, CROP, CROP) if overlap else None
  near, far = synth.drpl_pair(sharp, mask, sigmas, both)
  return {'image_0': common.png_bytes(near), 'image_1': common.png_bytes(far),
          'target': common.png_bytes(np.ascontiguousarray(sharp)), 'name': pair_name(path.stem, k)}


class DrplMffConfig(tfds.core.BuilderConfig):

  def __init__(self, *, pairs_per_image: int, defocus: tuple[float, float] | None = None, overlap: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    self.pairs_per_image = pairs_per_image
    self.defocus = defocus
    self.overlap = overlap


class DrplMff(tfds.core.GeneratorBasedBuilder):
  """Synthetic near/far-focused pairs with their all-in-focus target."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': f'Initial release: {CROP}² crops, 7×7 Gaussian blur, seed {SEED}.',
                   '1.1.0': 'Configs x1 (one pair per photo, as 1.0.0) and x8 (8 pairs per photo).'}
  BUILDER_CONFIGS = [
      *(DrplMffConfig(name=f'x{n}', pairs_per_image=n, description=f'{n} pair(s) per sharp photo') for n in (1, 8)),
      *(DrplMffConfig(name=name, pairs_per_image=8, defocus=(lo, hi),
                      description=f'8 pairs per sharp photo, each side blurred with its own σ in {lo:g}–{hi:g}')
        for name, (lo, hi) in (('x8_defocus', synth.DEFOCUS_SIGMAS),
                               ('x8_defocus_strong', synth.STRONG_DEFOCUS_SIGMAS))),
      DrplMffConfig(name='x8_defocus_overlap', pairs_per_image=8, defocus=synth.STRONG_DEFOCUS_SIGMAS, overlap=True,
                    description=f'x8_defocus_strong with up to {synth.OVERLAP_MAX:.0%} of each pair sharp in both')]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put a folder of sharp, all-in-focus photos (e.g. PASCAL VOC 2012 JPEGImages, at least 256×256 each) in
  manual_dir/images (manual_dir = manual_dir/drpl_mff for the pipelines), optionally with binary masks
  (e.g. VOC SegmentationObject rendered white-on-black) in manual_dir/masks.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=common.fusion_features(2, with_target=True))

  def _split_generators(self, dl_manager):
    images, masks = scan(pathlib.Path(dl_manager.manual_dir))
    names = {}
    for path in images:  # checked before anything is written
      for k in range(self.builder_config.pairs_per_image):
        name = pair_name(path.stem, k)
        if name in names:
          raise common.DataError(f'{path}: pair name {name!r} is also made from {names[name].name}; rename one')
        names[name] = path
    return {'train': self._generate_examples(images, masks)}

  def _generate_examples(self, images, masks):
    for index, path in enumerate(images):
      for k in range(self.builder_config.pairs_per_image):
        yield pair_name(path.stem, k), make_pair(path, index, masks, k, self.builder_config.defocus,
                                                 self.builder_config.overlap)
