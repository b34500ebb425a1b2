"""Shared helpers of the dataset builders: image reading/validation and feature specs.

Everything here runs without TensorFlow: images are validated by decoding them with PIL (or tifffile for 16-bit
TIFF) and handed to TFDS as encoded bytes (DESIGN.md §3).
"""
import io
import pathlib

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from mgdn_jax import image_io

# Extensions accepted by the official MEF/MFF scripts, plus .tiff (MEFB ships .tif; .tiff is harmless).
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.tif', '.tiff')


class DataError(ValueError):
  """A one-line problem with a dataset's files (raised before anything is written)."""


def check_pixel_limit(path: pathlib.Path) -> None:
  """Raises when the file's header gives more pixels than the one limit of every reader (`image_io.MAX_PIXELS`).

  A header that cannot be read is left to the decoder that follows, which names the problem.
  """
  try:
    image_io.image_size(path)
  except image_io.PixelLimitError as e:
    raise DataError(str(e)) from None
  except image_io.InputError:
    pass


def is_image(path: pathlib.Path) -> bool:
  return path.is_file() and path.suffix.lower() in IMAGE_EXTS


def list_images(folder: pathlib.Path) -> list[pathlib.Path]:
  """Image files directly inside `folder`, sorted by name."""
  return sorted(p for p in folder.iterdir() if is_image(p))


def require_dir(path: pathlib.Path, what: str) -> pathlib.Path:
  path = pathlib.Path(path)
  if not path.is_dir():
    raise DataError(f'{path}: missing folder ({what})')
  return path


def _check_8bit(im: Image.Image, path) -> None:
  """Raises for 16-bit or float images, including 16-bit RGB PNG/TIFF that PIL would silently cut to 8 bits."""
  rawmodes = [t.args if isinstance(t.args, str) else (t.args or ('',))[0] for t in (im.tile or [])]
  if im.mode.startswith('I;16') or im.mode in ('I', 'F') or any(';16' in str(r) for r in rawmodes):
    raise DataError(f'{path}: wrong bit depth (16-bit or float, PIL mode {im.mode}), expected an 8-bit image')


def read_rgb8(path: pathlib.Path) -> np.ndarray:
  """Decodes an 8-bit image as uint8 RGB (H, W, 3); grey becomes RGB, alpha is dropped (as OpenCV reads it)."""
  check_pixel_limit(path)
  try:
    with Image.open(path) as im:
      _check_8bit(im, path)
      im.load()
      if im.mode != 'RGB':
        im = im.convert('RGB')
      arr = np.asarray(im, dtype=np.uint8)
  except DataError:
    raise
  except Exception as e:  # PIL raises many types for corrupt files; report them all the same way.
    raise DataError(f'{path}: unreadable or corrupt image ({type(e).__name__}: {e})') from None
  return arr


def png_bytes(arr: np.ndarray) -> bytes:
  """Lossless PNG encoding of a uint8 (H, W[, C]) array (fast compression: this is a cache, not an archive)."""
  buf = io.BytesIO()
  Image.fromarray(arr).save(buf, format='PNG', compress_level=1)
  return buf.getvalue()


def encoded_rgb8(path: pathlib.Path) -> tuple[bytes, tuple[int, int]]:
  """The bytes to store for an 8-bit source image, and its (H, W).

  RGB JPEG/PNG files are stored byte-exactly (decoding them later gives exactly what PIL gives now); anything
  else (TIFF, grey, palette, alpha) is decoded to RGB and stored as lossless PNG.
  """
  arr = read_rgb8(path)
  with Image.open(path) as im:
    passthrough = im.format in ('JPEG', 'PNG') and im.mode == 'RGB'
  data = path.read_bytes() if passthrough else png_bytes(arr)
  return data, arr.shape[:2]


def read_rgb16_tiff(path: pathlib.Path) -> np.ndarray:
  """Reads a 16-bit RGB TIFF as uint16 (H, W, 3)."""
  import tifffile  # Only the HDR builder needs it.
  check_pixel_limit(path)
  try:
    arr = tifffile.imread(path)
  except Exception as e:
    raise DataError(f'{path}: unreadable or corrupt TIFF ({type(e).__name__}: {e})') from None
  if arr.dtype != np.uint16:
    raise DataError(f'{path}: wrong bit depth ({arr.dtype}), expected a 16-bit TIFF')
  if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
    raise DataError(f'{path}: expected an RGB image, got shape {arr.shape}')
  return np.ascontiguousarray(arr[..., :3])


def check_same_size(name: str, paths, shapes) -> None:
  """Raises when the streams of one scene differ in size."""
  if len(set(tuple(s) for s in shapes)) > 1:
    sizes = ', '.join(f'{p} {s[0]}x{s[1]}' for p, s in zip(paths, shapes))
    raise DataError(f'{name}: streams of different sizes ({sizes})')


def fusion_features(num_streams: int, with_target: bool) -> tfds.features.FeaturesDict:
  """image_0 … image_{K-1} (uint8 RGB, stream order), optional target, name."""
  feats = {f'image_{k}': tfds.features.Image(shape=(None, None, 3), dtype=np.uint8) for k in range(num_streams)}
  if with_target:
    feats['target'] = tfds.features.Image(shape=(None, None, 3), dtype=np.uint8)
  feats['name'] = tfds.features.Text()
  return tfds.features.FeaturesDict(feats)


def hdr_features() -> tfds.features.FeaturesDict:
  """Three uint16 LDR frames (under, reference, over), EVs, linear HDR target aligned with the reference."""
  feats = {f'image_{k}': tfds.features.Tensor(shape=(None, None, 3), dtype=np.uint16, encoding='zlib')
           for k in range(3)}
  feats['exposures'] = tfds.features.Tensor(shape=(3,), dtype=np.float32)
  feats['target'] = tfds.features.Tensor(shape=(None, None, 3), dtype=np.float32, encoding='zlib')
  feats['name'] = tfds.features.Text()
  return tfds.features.FeaturesDict(feats)


def gdsr_features() -> tfds.features.FeaturesDict:
  """RGB guide (uint8) and depth (float32, metres for NYU)."""
  return tfds.features.FeaturesDict({
      'rgb': tfds.features.Image(shape=(None, None, 3), dtype=np.uint8),
      'depth': tfds.features.Tensor(shape=(None, None), dtype=np.float32, encoding='zlib'),
      'name': tfds.features.Text(),
  })


def probe_rgb8(path: pathlib.Path) -> tuple[tuple[int, int], float]:
  """(H, W) and mean brightness of an 8-bit image, decoding JPEGs at 1/8 scale (fast, yet the whole stream is
  parsed, so truncated or corrupt files are still caught)."""
  check_pixel_limit(path)
  try:
    with Image.open(path) as im:
      size = (im.size[1], im.size[0])
      _check_8bit(im, path)
      im.draft('RGB', (max(1, im.size[0] // 8), max(1, im.size[1] // 8)))
      im.load()
      mean = float(np.asarray(im.convert('RGB'), dtype=np.float32).mean())
  except DataError:
    raise
  except Exception as e:
    raise DataError(f'{path}: unreadable or corrupt image ({type(e).__name__}: {e})') from None
  return size, mean
