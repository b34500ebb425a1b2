"""`mgdn_demo`: built-in demo data for all four tasks, synthesised from photos that ship inside scikit-image.

No download and no manual_dir: a few deterministic 144×192 scenes per task and split, prepared in seconds, so
the demo training runs on a laptop CPU. Configs (stream order as the models expect):
* mef:  image_0 under, image_1 over (uint8), target = the original photo;
* mff:  DRPL-style near/far pair (binary mask, 7×7 Gaussian blur), target = the sharp photo;
* hdr:  under/reference/over uint16 frames (EVs 0,2,4 or 0,3,6) with motion in the under and over frames,
        target = linear radiance aligned with the reference;
* gdsr: the real RGB + disparity pair `stereo_motorcycle` (Middlebury 2014), cropped; disparity is stored as the
        depth map (the GDSR protocol min–max normalises it, so the unit does not matter).
"""
import numpy as np
from PIL import Image
from scipy import ndimage
import tensorflow_datasets as tfds

from data_pipelines import common
from data_pipelines import synth
from mgdn_jax import tasks

HEIGHT, WIDTH = 144, 192
_MARGIN = 12  # HDR frames are cut from a larger view so the under/over frames can move.
# (skimage.data function, split): 6 training photos and 2 test photos per fusion task.
_PHOTOS = (('astronaut', 'train'), ('coffee', 'train'), ('chelsea', 'train'), ('rocket', 'train'),
           ('immunohistochemistry', 'train'), ('hubble_deep_field', 'train'),
           ('retina', 'test'), ('colorwheel', 'test'))
_SEED = 20230601


def _photo(name: str, h: int, w: int) -> np.ndarray:
  """The skimage photo resized to cover (h, w) and centre-cropped to it, uint8 (h, w, 3)."""
  from skimage import data  # Imported lazily: only preparation needs it.
  img = getattr(data, name)()
  if img.ndim == 2:
    img = np.repeat(img[..., None], 3, axis=-1)
  img = img[..., :3]
  scale = max(h / img.shape[0], w / img.shape[1])
  size = (max(w, round(img.shape[1] * scale)), max(h, round(img.shape[0] * scale)))
  img = np.asarray(Image.fromarray(img).resize(size, Image.BICUBIC))
  y, x = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
  return np.ascontiguousarray(img[y:y + h, x:x + w])


def _motorcycle():
  """Left RGB (uint8) and disparity (float32, holes filled from the nearest valid pixel), halved in size."""
  from skimage import data
  left, _, disp = data.stereo_motorcycle()
  invalid = ~np.isfinite(disp) | (disp <= 0)
  idx = ndimage.distance_transform_edt(invalid, return_distances=False, return_indices=True)
  disp = disp[tuple(idx)].astype(np.float32)
  h, w = disp.shape[0] // 2, disp.shape[1] // 2
  rgb = np.asarray(Image.fromarray(left).resize((w, h), Image.BICUBIC))
  disp = np.asarray(Image.fromarray(disp, mode='F').resize((w, h), Image.BILINEAR), dtype=np.float32)
  return rgb, disp


def _pair_example(a: np.ndarray, b: np.ndarray, photo: np.ndarray, name: str) -> dict:
  return {'image_0': common.png_bytes(a), 'image_1': common.png_bytes(b), 'target': common.png_bytes(photo),
          'name': name}


class MgdnDemoConfig(tfds.core.BuilderConfig):
  pass


class MgdnDemo(tfds.core.GeneratorBasedBuilder):
  """Demo scenes for MEF, MFF, HDR and GDSR (configs mef, mff, hdr, gdsr)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [MgdnDemoConfig(name=t, description=f'{t} demo scenes') for t in tasks.NAMES]

  def _info(self) -> tfds.core.DatasetInfo:
    features = _KINDS[self.builder_config.name][0]()
    return self.dataset_info_from_configs(features=features, homepage='https://scikit-image.org/docs/stable/api/skimage.data.html')

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split) for split in ('train', 'test')}

  def _generate_examples(self, split):
    return getattr(self, _KINDS[self.builder_config.name][1])(split)

  def _photo_scenes(self, split, make):
    """(key, example) of `make(rng, index, photo name)` for each photo of the split; one seed per photo and task."""
    task_index = tasks.NAMES.index(self.builder_config.name)
    for index, (photo_name, photo_split) in enumerate(_PHOTOS):
      if photo_split == split:
        yield photo_name, make(np.random.default_rng([_SEED, index, task_index]), index, photo_name)

  def _mef_scenes(self, split):
    return self._photo_scenes(split, self._mef)

  def _mff_scenes(self, split):
    return self._photo_scenes(split, self._mff)

  def _hdr_scenes(self, split):
    return self._photo_scenes(split, self._hdr)

  def _hdr(self, rng, index, key):
    big = _photo(key, HEIGHT + 2 * _MARGIN, WIDTH + 2 * _MARGIN)
    evs = (0.0, 2.0, 4.0) if index % 2 == 0 else (0.0, 3.0, 6.0)
    frames, target = synth.hdr_triplet(rng, big, HEIGHT, WIDTH, evs)
    ex = {f'image_{k}': f for k, f in enumerate(frames)}
    ex.update(exposures=np.asarray(evs, np.float32), target=target, name=key)
    return ex

  def _mef(self, rng, index, key):
    del index
    photo = _photo(key, HEIGHT, WIDTH)
    return _pair_example(*synth.mef_pair(rng, photo), photo, key)

  def _mff(self, rng, index, key):
    del index
    photo = _photo(key, HEIGHT, WIDTH)
    return _pair_example(*synth.drpl_pair(photo, synth.random_mask(rng, HEIGHT, WIDTH)), photo, key)

  def _gdsr(self, split):
    rgb, disp = _motorcycle()
    h, w = disp.shape
    # A 3×3 grid of crop positions: 7 for training, the 2 bottom-right ones for testing.
    ys = np.linspace(0, h - HEIGHT, 3).astype(int)
    xs = np.linspace(0, w - WIDTH, 3).astype(int)
    cells = [(y, x) for y in ys for x in xs]
    chosen = cells[:7] if split == 'train' else cells[7:]
    for y, x in chosen:
      key = f'motorcycle_y{y}_x{x}'
      yield key, {'rgb': common.png_bytes(np.ascontiguousarray(rgb[y:y + HEIGHT, x:x + WIDTH])),
                  'depth': np.ascontiguousarray(disp[y:y + HEIGHT, x:x + WIDTH]), 'name': key}


def _fusion_features():
  return common.fusion_features(2, with_target=True)


# Per config (task): its features and the builder method generating its scenes.
_KINDS = {'mef': (_fusion_features, '_mef_scenes'), 'mff': (_fusion_features, '_mff_scenes'),
          'hdr': (common.hdr_features, '_hdr_scenes'), 'gdsr': (common.gdsr_features, '_gdsr')}
