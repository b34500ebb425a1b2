"""Image, HDR and depth file formats for the fuse command.

Images in memory are float32 `(H, W, C)` arrays; LDR images lie in [0, 1] (8-bit /255, 16-bit /65535), HDR images
are linear radiance and depth maps are `(H, W)` float32 metres.

Formats:
* in: PNG (8/16-bit, grey or colour), TIFF (8/16-bit or float), JPEG, BMP, PPM;
* out: PNG and TIFF (8 or 16 bits), JPEG (8 bits, quality 95), Radiance `.hdr` (the codec in `mgdn_jax.rgbe`:
  imageio has no `.hdr` codec without the FreeImage binary), OpenEXR `.exr` when the `OpenEXR` package is installed;
* depth in/out: `.npy` (float metres) and 16-bit PNG/TIFF (integer units, metres = value / depth_scale).

Pillow truncates 16-bit colour PNGs to 8 bits, so those go through `mgdn_jax.png16` instead.

Every reader checks the image size from the file's header against one pixel limit, MAX_PIXELS, before it
decodes anything, and integer pixels become floats in one step (`to_float32`), so decoding holds at most one float
copy of an image.

Every writer goes through `atomic_write`: the bytes go to a temporary file in the destination folder that is
renamed over the target only when complete, so a failure never leaves a partial output behind.
"""

import contextlib
import os
import pathlib
import struct
import tempfile
import warnings

import numpy as np
from PIL import Image
import tifffile

from mgdn_jax import png16, rgbe

LDR_SUFFIXES = ('.png', '.tif', '.tiff', '.jpg', '.jpeg', '.bmp', '.ppm')
HDR_SUFFIXES = ('.hdr', '.exr')
DEPTH_SUFFIXES = ('.npy', '.png', '.tif', '.tiff')
# The largest image any reader decodes: PIL's own decompression-bomb bound (2 × Image.MAX_IMAGE_PIXELS), applied
# to every format and bit depth (a 14000² 16-bit PNG compresses to about 1 MB and decodes to gigabytes).
MAX_PIXELS = 178_956_970


class InputError(ValueError):
  """A user-facing problem with an input or output file; the CLI prints its message as a one-line error."""


class PixelLimitError(InputError):
  """An image larger than MAX_PIXELS, found from its header."""


# ----------------------------------------------------------------------------------------------- atomic writes


def check_writable(path) -> pathlib.Path:
  """Fails early (before any compute) when `path` cannot be created."""
  path = pathlib.Path(path)
  folder = path.parent if str(path.parent) else pathlib.Path('.')
  if not folder.is_dir():
    raise InputError(f'cannot write output {path}: folder {folder} does not exist')
  if not os.access(folder, os.W_OK | os.X_OK):
    raise InputError(f'cannot write output {path}: folder {folder} is not writable')
  if path.is_dir():
    raise InputError(f'cannot write output {path}: it is a directory')
  return path


def _default_mode(path) -> None:
  """mkstemp makes files private (0600); give the output the permissions a plain open() would."""
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_path(path, suffix='.part'):
  """Yields a temporary path beside `path`; renamed onto `path` only if the block finishes without an exception."""
  path = check_writable(path)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix=suffix)
  os.close(fd)
  try:
    yield tmp
    _default_mode(tmp)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


@contextlib.contextmanager
def atomic_write(path):
  """Yields a binary file object; renamed onto `path` only if the block finishes without an exception."""
  with atomic_path(path) as tmp, open(tmp, 'wb') as f:  # a named file object: tifffile needs its name
    yield f


# ------------------------------------------------------------------------------------------------- LDR images


def _check_size(path, h: int, w: int, what: str) -> tuple[int, int]:
  if h * w > MAX_PIXELS:
    raise PixelLimitError(f'cannot read {what} {path}: {w}x{h} pixels exceeds the limit of {MAX_PIXELS:,} pixels')
  return h, w


def _npy_shape(path) -> tuple[int, ...]:
  with open(path, 'rb') as f:
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, _ = read_header(f)
  return shape


def image_size(path, what: str = 'image') -> tuple[int, int]:
  """(H, W) of an image, depth or HDR file from its header alone, checked against MAX_PIXELS.

  Raises InputError naming the file (as `what`) when it is missing, not an image, or too large.
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  try:
    if suffix in ('.tif', '.tiff'):
      with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        return _check_size(path, page.imagelength, page.imagewidth, what)
    if suffix == '.npy':
      shape = _npy_shape(path)
      if len(shape) < 2:
        raise ValueError(f'array of shape {shape} is not an image')
      return _check_size(path, shape[0], shape[1], what)
    with open(path, 'rb') as f:
      head = f.read(65536)
    if suffix == '.hdr' or head.startswith(rgbe.RADIANCE_MAGIC):
      h, w, _ = rgbe.parse_header(head)
      return _check_size(path, h, w, what)
    if head.startswith(png16.SIGNATURE) and len(head) >= 24:
      w, h = struct.unpack('>II', head[16:24])
      return _check_size(path, h, w, what)
    with warnings.catch_warnings():
      warnings.simplefilter('ignore', Image.DecompressionBombWarning)
      with Image.open(path) as im:
        w, h = im.size
    return _check_size(path, h, w, what)
  except InputError:
    raise
  except Image.DecompressionBombError:
    raise PixelLimitError(f'cannot read {what} {path}: it exceeds the limit of {MAX_PIXELS:,} pixels') from None
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f'cannot read {what} {path}: {_reason(e)}') from None


def _reason(e: Exception) -> str:
  """One line for a decoder's exception (PIL names a BytesIO object or the path: the caller names the file)."""
  if isinstance(e, FileNotFoundError):
    return 'no such file'
  if isinstance(e, IsADirectoryError):
    return 'it is a folder'
  if type(e).__name__ == 'UnidentifiedImageError':
    return 'not an image file of a known format'
  if isinstance(e, OSError) and e.strerror:
    return e.strerror
  if type(e) is ValueError and str(e):  # pylint: disable=unidiomatic-typecheck  (the codecs' own messages)
    return str(e).splitlines()[0]
  return f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else "corrupt data"}'


def _pil_to_array(im: Image.Image) -> np.ndarray:
  if im.mode == 'P':
    im = im.convert('RGBA' if 'transparency' in im.info else 'RGB')
  if im.mode in ('1', 'CMYK', 'YCbCr', 'LAB', 'HSV'):
    im = im.convert('RGB')
  arr = np.asarray(im)
  if im.mode in ('I', 'I;16', 'I;16B', 'I;16L'):
    if arr.min() < 0 or arr.max() > 65535:
      raise ValueError(f'pixel values outside the 16-bit range in mode {im.mode}')
    arr = arr.astype(np.uint16)
  return arr


def read_array(path) -> np.ndarray:
  """The raw pixel array of an image file: uint8/uint16/float, `(H, W)` or `(H, W, C)`; size checked first."""
  path = pathlib.Path(path)
  image_size(path)
  try:
    if path.suffix.lower() in ('.tif', '.tiff'):
      arr = tifffile.imread(path)
    else:
      data = path.read_bytes()
      if png16.is_png16_colour(data):
        arr = png16.decode(data)  # PIL would cut these to 8 bits
      else:
        with warnings.catch_warnings():
          warnings.simplefilter('ignore', Image.DecompressionBombWarning)
          with Image.open(path) as im:
            arr = _pil_to_array(im)
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f'cannot read image {path}: {_reason(e)}') from None
  if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (1, 2, 3, 4):
    arr = np.moveaxis(arr, 0, -1)  # planar TIFF (C, H, W)
  if arr.ndim not in (2, 3) or arr.size == 0:
    raise InputError(f'cannot read image {path}: unexpected pixel array shape {arr.shape}')
  return arr


def to_float32(arr: np.ndarray) -> np.ndarray:
  """The one integer → float conversion: uint8 / 255, uint16 / 65535, bool 0/1; float32 in (no copy if already).

  The division is done in float32, which rounds correctly and so gives bit for bit what the official
  `float32(img / 255.)` gives through float64 (tested for every 8- and 16-bit value) without a float64 copy.
  """
  arr = np.asarray(arr)
  if arr.dtype == np.uint8 or arr.dtype == np.uint16:
    return np.divide(arr, np.float32(np.iinfo(arr.dtype).max), dtype=np.float32)
  if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.floating):
    return arr.astype(np.float32, copy=False)
  raise TypeError(f'unsupported pixel type {arr.dtype} (uint8, uint16, bool or float)')


def to_float(arr: np.ndarray, path='image') -> tuple[np.ndarray, int]:
  """Pixels to float32 in [0, 1] (`to_float32`) and their bits: 8, 16, or 32 for float input (kept as is)."""
  bits = {np.dtype(np.uint8): 8, np.dtype(np.bool_): 8, np.dtype(np.uint16): 16}.get(arr.dtype, 32)
  try:
    return to_float32(arr), bits
  except TypeError as e:
    raise InputError(f'cannot read image {path}: {e}') from None


def read_image(path, channels: int | None = 3) -> tuple[np.ndarray, int]:
  """Reads an LDR image as float32 `(H, W, channels)` in [0, 1] and its bit depth.

  channels=3 turns grey into RGB (like the official scripts) and drops alpha; channels=None keeps what is stored.
  The channels are chosen on the integer pixels, so the float image is made once.
  """
  arr = read_array(path)
  if arr.ndim == 2:
    arr = arr[..., None]
  if channels is not None:
    if arr.shape[-1] in (2, 4):
      arr = arr[..., :-1]  # drop alpha
    if arr.shape[-1] == 1 and channels != 1:
      arr = np.broadcast_to(arr, arr.shape[:2] + (channels,))
    if arr.shape[-1] != channels:
      raise InputError(f'cannot use image {path}: it has {arr.shape[-1]} channels, {channels} are needed')
  return to_float(arr, path)


def quantize(img: np.ndarray, bits: int) -> np.ndarray:
  """Clamp to [0, 1], scale, round half to even (numpy, as the official uint8 conversion)."""
  if bits not in (8, 16):
    raise InputError(f'unsupported output bit depth {bits}: use 8 or 16')
  top = 2 ** bits - 1
  return np.round(np.clip(img, 0., 1.) * top).astype(np.uint8 if bits == 8 else np.uint16)


def write_image(path, img: np.ndarray, bits: int = 8) -> None:
  """Writes float `(H, W[, C])` in [0, 1] as PNG/TIFF (8 or 16 bits) or JPEG (8 bits)."""
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix not in ('.png', '.tif', '.tiff', '.jpg', '.jpeg'):
    raise InputError(f'cannot write {path}: unsupported image format {suffix!r} (use .png, .tif or .jpg)')
  if suffix in ('.jpg', '.jpeg') and bits != 8:
    raise InputError(f'cannot write {path}: JPEG holds 8 bits only (use .png or .tif for 16 bits)')
  arr = quantize(img, bits)
  if arr.ndim == 3 and arr.shape[-1] == 1:
    arr = arr[..., 0]
  with atomic_write(path) as f:
    if suffix in ('.tif', '.tiff'):
      tifffile.imwrite(f, arr, photometric='rgb' if arr.ndim == 3 else 'minisblack')
    elif bits == 16:
      f.write(png16.encode(arr))
    elif suffix == '.png':
      Image.fromarray(arr).save(f, format='PNG')
    else:
      Image.fromarray(arr).save(f, format='JPEG', quality=95)


# ------------------------------------------------------------------------------------------- Radiance RGBE


def write_hdr(path, img: np.ndarray) -> None:
  """Radiance `.hdr` (the `rgbe` codec)."""
  data = rgbe.encode(img)
  with atomic_write(path) as f:
    f.write(data)


def read_hdr(path) -> np.ndarray:
  """Reads a Radiance `.hdr` (flat or RLE scanlines, orientation -Y H +X W) as float32 `(H, W, 3)` linear RGB."""
  path = pathlib.Path(path)
  image_size(path, 'HDR image')
  try:
    return rgbe.to_float(rgbe.decode_bytes(path.read_bytes()))
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f'cannot read HDR image {path}: {_reason(e)}') from None


def write_exr(path, img: np.ndarray) -> None:
  """OpenEXR (float32 RGB) through the optional `OpenEXR` package (version 3.3 or later)."""
  try:
    import OpenEXR  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise InputError(f'cannot write {path}: OpenEXR output needs the OpenEXR package '
                     '(pip install OpenEXR); write .hdr instead') from None
  with atomic_path(path, suffix='.exr') as tmp:
    header = {'compression': OpenEXR.ZIP_COMPRESSION, 'type': OpenEXR.scanlineimage}
    with OpenEXR.File(header, {'RGB': np.ascontiguousarray(img, np.float32)}) as f:
      f.write(tmp)


def write_radiance(path, img: np.ndarray) -> None:
  """Linear HDR `(H, W, 3)` to `.hdr` or `.exr` (by suffix)."""
  suffix = pathlib.Path(path).suffix.lower()
  if suffix == '.hdr':
    write_hdr(path, img)
  elif suffix == '.exr':
    write_exr(path, img)
  else:
    raise InputError(f'cannot write HDR output {path}: use .hdr or .exr')


# ------------------------------------------------------------------------------------------------------ depth


def read_depth(path, depth_scale: float = 1000.) -> np.ndarray:
  """Depth in metres `(H, W)` from `.npy` (float metres) or a 16-bit PNG/TIFF (metres = value / depth_scale)."""
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix == '.npy':
    image_size(path, 'depth')
    try:
      d = np.load(path, allow_pickle=False)
    except Exception as e:  # pylint: disable=broad-except
      raise InputError(f'cannot read depth {path}: {type(e).__name__}: {e}') from None
    d = np.asarray(d, np.float32)
  elif suffix in ('.png', '.tif', '.tiff'):
    arr = read_array(path)
    if not np.issubdtype(arr.dtype, np.integer):
      d = arr.astype(np.float32)  # float TIFF already in metres
    else:
      d = np.divide(arr, np.float32(depth_scale), dtype=np.float32)
  else:
    raise InputError(f'cannot read depth {path}: unsupported format {suffix!r} (use .npy, .png or .tif)')
  if d.ndim == 3 and d.shape[-1] == 1:
    d = d[..., 0]
  if d.ndim != 2:
    raise InputError(f'cannot read depth {path}: expected one channel, got shape {d.shape}')
  if not np.isfinite(d).all():
    raise InputError(f'cannot use depth {path}: it contains NaN or infinite values')
  return d


def write_depth(path, depth: np.ndarray, depth_scale: float = 1000.) -> None:
  """Writes metres `(H, W)` as `.npy` float32 or 16-bit PNG/TIFF (value = round(metres · depth_scale))."""
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  depth = np.asarray(depth, np.float32)
  if suffix == '.npy':
    with atomic_write(path) as f:
      np.save(f, depth)
    return
  if suffix not in ('.png', '.tif', '.tiff'):
    raise InputError(f'cannot write depth {path}: unsupported format {suffix!r} (use .npy, .png or .tif)')
  units = np.round(depth.astype(np.float64) * depth_scale)
  if units.min() < 0 or units.max() > 65535:
    raise InputError(f'cannot write depth {path}: {depth.max():.3f} m · depth_scale {depth_scale:g} exceeds 16 '
                     'bits; lower --depth_scale or write .npy')
  arr = units.astype(np.uint16)
  with atomic_write(path) as f:
    if suffix == '.png':
      Image.fromarray(arr).save(f, format='PNG')
    else:
      tifffile.imwrite(f, arr, photometric='minisblack')


def read_exposures(path) -> list[float]:
  """Exposure values in stops (EV, one per frame) from a whitespace-separated text file such as exposure.txt."""
  try:
    return [float(v) for v in pathlib.Path(path).read_text().split()]
  except (OSError, ValueError) as e:
    raise InputError(f'cannot read exposures from {path}: {e}') from None
