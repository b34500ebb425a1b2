"""Image, HDR and depth file formats for the fuse command.

Images in memory are float32 `(H, W, C)` arrays; LDR images lie in [0, 1] (8-bit /255, 16-bit /65535), HDR images
are linear radiance and depth maps are `(H, W)` float32 metres.

Formats:
* in: PNG (8/16-bit, grey or colour), TIFF (8/16-bit or float), JPEG, BMP, PPM;
* out: PNG and TIFF (8 or 16 bits), JPEG (8 bits, quality 95), Radiance `.hdr` (own RGBE codec below: imageio
  has no `.hdr` codec without the FreeImage binary), OpenEXR `.exr` when the `OpenEXR` package is installed;
* depth in/out: `.npy` (float metres) and 16-bit PNG/TIFF (integer units, metres = value / depth_scale).

Pillow truncates 16-bit colour PNGs to 8 bits, so those are written by the small PNG encoder below and read with
TensorFlow's decoder (a declared dependency, imported only for that case).

Every writer goes through `atomic_write`: the bytes go to a temporary file in the destination folder that is
renamed over the target only when complete, so a failure never leaves a partial output behind.
"""

import contextlib
import io
import os
import pathlib
import struct
import tempfile
import zlib

import numpy as np
from PIL import Image
import tifffile

LDR_SUFFIXES = ('.png', '.tif', '.tiff', '.jpg', '.jpeg', '.bmp', '.ppm')
HDR_SUFFIXES = ('.hdr', '.exr')
DEPTH_SUFFIXES = ('.npy', '.png', '.tif', '.tiff')
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


class InputError(ValueError):
  """A user-facing problem with an input or output file; the CLI prints its message as a one-line error."""


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


def _png_header(data: bytes) -> tuple[int, int]:
  """(bit depth, colour type) from a PNG's IHDR chunk."""
  return data[24], data[25]


def _read_png16_colour(data: bytes) -> np.ndarray:
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # keep TensorFlow's start-up chatter off the console
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.decode_png(data, dtype=tf.uint16).numpy()


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
  """The raw pixel array of an image file: uint8/uint16/float, `(H, W)` or `(H, W, C)`."""
  path = pathlib.Path(path)
  try:
    if path.suffix.lower() in ('.tif', '.tiff'):
      arr = tifffile.imread(path)
    else:
      data = path.read_bytes()
      if data[:8] == _PNG_SIGNATURE and _png_header(data) in ((16, 2), (16, 6)):
        arr = _read_png16_colour(data)
      else:
        with Image.open(io.BytesIO(data)) as im:
          arr = _pil_to_array(im)
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f'cannot read image {path}: {type(e).__name__}: {e}') from None
  if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (1, 2, 3, 4):
    arr = np.moveaxis(arr, 0, -1)  # planar TIFF (C, H, W)
  if arr.ndim not in (2, 3) or arr.size == 0:
    raise InputError(f'cannot read image {path}: unexpected pixel array shape {arr.shape}')
  return arr


def to_float(arr: np.ndarray, path='image') -> tuple[np.ndarray, int]:
  """Integer pixels to float32 in [0, 1]; returns (image, bits) with bits 8, 16 or 32 (float input kept)."""
  if arr.dtype == np.uint8:
    return (arr / 255.).astype(np.float32), 8  # division in float64 like the official uint2single
  if arr.dtype == np.uint16:
    return (arr / 65535.).astype(np.float32), 16
  if arr.dtype == np.bool_:
    return arr.astype(np.float32), 8
  if np.issubdtype(arr.dtype, np.floating):
    return arr.astype(np.float32), 32
  raise InputError(f'cannot read image {path}: unsupported pixel type {arr.dtype}')


def read_image(path, channels: int | None = 3) -> tuple[np.ndarray, int]:
  """Reads an LDR image as float32 `(H, W, channels)` in [0, 1] and its bit depth.

  channels=3 turns grey into RGB (like the official scripts) and drops alpha; channels=None keeps what is stored.
  """
  img, bits = to_float(read_array(path), path)
  if img.ndim == 2:
    img = img[..., None]
  if channels is None:
    return img, bits
  if img.shape[-1] in (2, 4):
    img = img[..., :-1]  # drop alpha
  if img.shape[-1] == channels:
    return img, bits
  if img.shape[-1] == 1:
    return np.repeat(img, channels, axis=-1), bits
  raise InputError(f'cannot use image {path}: it has {img.shape[-1]} channels, {channels} are needed')


def quantize(img: np.ndarray, bits: int) -> np.ndarray:
  """Clamp to [0, 1], scale, round half to even (numpy, as the official uint8 conversion)."""
  if bits not in (8, 16):
    raise InputError(f'unsupported output bit depth {bits}: use 8 or 16')
  top = 2 ** bits - 1
  return np.round(np.clip(img, 0., 1.) * top).astype(np.uint8 if bits == 8 else np.uint16)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
  return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff)


def encode_png16(arr: np.ndarray) -> bytes:
  """A 16-bit grey/RGB/RGBA PNG (filter 'Up' on every row, which suits natural images)."""
  h, w = arr.shape[:2]
  c = 1 if arr.ndim == 2 else arr.shape[2]
  colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
  rows = np.ascontiguousarray(arr, '>u2').view(np.uint8).reshape(h, -1)
  up = rows.copy()
  up[1:] = rows[1:] - rows[:-1]  # uint8 arithmetic wraps modulo 256, as the PNG filter does
  raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()
  ihdr = struct.pack('>IIBBBBB', w, h, 16, colour_type, 0, 0, 0)
  return (_PNG_SIGNATURE + _png_chunk(b'IHDR', ihdr) + _png_chunk(b'IDAT', zlib.compress(raw, 6))
          + _png_chunk(b'IEND', b''))


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
      f.write(encode_png16(arr))
    elif suffix == '.png':
      Image.fromarray(arr).save(f, format='PNG')
    else:
      Image.fromarray(arr).save(f, format='JPEG', quality=95)


# ------------------------------------------------------------------------------------------- Radiance RGBE


def encode_rgbe(img: np.ndarray) -> np.ndarray:
  """float `(H, W, 3)` → uint8 `(H, W, 4)` (Ward's shared-exponent encoding)."""
  img = np.maximum(np.asarray(img, np.float64), 0.)
  v = img.max(axis=-1)
  mantissa, exponent = np.frexp(v)
  scale = np.where(v > 1e-32, mantissa * 256. / np.where(v > 1e-32, v, 1.), 0.)
  rgbe = np.zeros(img.shape[:2] + (4,), np.uint8)
  rgbe[..., :3] = np.minimum(np.floor(img * scale[..., None]), 255)
  rgbe[..., 3] = np.where(v > 1e-32, exponent + 128, 0)
  return rgbe


def decode_rgbe(rgbe: np.ndarray) -> np.ndarray:
  """uint8 `(H, W, 4)` → float32 `(H, W, 3)`; values are the centres of the quantisation steps."""
  e = rgbe[..., 3].astype(np.int32)
  f = np.where(e > 0, np.ldexp(1., e - 136), 0.)
  return ((rgbe[..., :3] + 0.5) * f[..., None]).astype(np.float32)


def write_hdr(path, img: np.ndarray) -> None:
  """Radiance `.hdr`, new-style run-length scanlines stored as literal runs (valid for every reader)."""
  rgbe = encode_rgbe(img)
  h, w = rgbe.shape[:2]
  header = f'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {h} +X {w}\n'.encode()
  if 8 <= w <= 0x7fff:
    planes = np.moveaxis(rgbe, 2, 1)  # (H, 4, W): RLE scanlines store each component separately
    chunks = []
    for start in range(0, w, 128):
      part = planes[..., start:start + 128]
      chunks.append(np.full((h, 4, 1), part.shape[-1], np.uint8))
      chunks.append(part)
    body = np.concatenate(chunks, axis=-1).reshape(h, -1)
    marker = np.tile(np.array([2, 2, w >> 8, w & 255], np.uint8), (h, 1))
    data = np.concatenate([marker, body], axis=1).tobytes()
  else:
    data = rgbe.tobytes()  # flat scanlines: RLE is undefined for these widths
  with atomic_write(path) as f:
    f.write(header + data)


def _decode_rle_line(buf: memoryview, pos: int, w: int) -> tuple[np.ndarray, int]:
  line = np.empty((4, w), np.uint8)
  for c in range(4):
    x = 0
    while x < w:
      count = buf[pos]
      if count > 128:
        line[c, x:x + count - 128] = buf[pos + 1]
        x, pos = x + count - 128, pos + 2
      else:
        if count == 0 or x + count > w:
          raise ValueError('corrupt run-length scanline')
        line[c, x:x + count] = np.frombuffer(buf[pos + 1:pos + 1 + count], np.uint8)
        x, pos = x + count, pos + 1 + count
  return line.T, pos


def read_hdr(path) -> np.ndarray:
  """Reads a Radiance `.hdr` (flat or new-style RLE, orientation -Y H +X W) as float32 `(H, W, 3)`."""
  path = pathlib.Path(path)
  try:
    data = path.read_bytes()
    if not data.startswith((b'#?RADIANCE', b'#?RGBE')):
      raise ValueError('not a Radiance file')
    head_end = data.index(b'\n\n') + 2
    if b'FORMAT=32-bit_rle_xyze' in data[:head_end]:
      raise ValueError('XYZE files are not supported')
    res_end = data.index(b'\n', head_end)
    fields = data[head_end:res_end].split()
    if len(fields) != 4 or fields[0] != b'-Y' or fields[2] != b'+X':
      raise ValueError(f'unsupported orientation {data[head_end:res_end]!r}')
    h, w = int(fields[1]), int(fields[3])
    buf, pos = memoryview(data), res_end + 1
    rgbe = np.empty((h, w, 4), np.uint8)
    for y in range(h):
      if 8 <= w <= 0x7fff and buf[pos] == 2 and buf[pos + 1] == 2 and (buf[pos + 2] << 8 | buf[pos + 3]) == w:
        rgbe[y], pos = _decode_rle_line(buf, pos + 4, w)
      else:
        rgbe[y] = np.frombuffer(buf[pos:pos + 4 * w], np.uint8).reshape(w, 4)
        pos += 4 * w
  except Exception as e:  # pylint: disable=broad-except
    raise InputError(f'cannot read HDR image {path}: {type(e).__name__}: {e}') from None
  return decode_rgbe(rgbe)


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


def mu_law(x: np.ndarray, mu: float = 5000.) -> np.ndarray:
  """The μ-law tonemap log(1 + μx) / log(1 + μ) used by the HDR loss and metrics."""
  return (np.log1p(mu * np.maximum(x, 0.)) / np.log1p(mu)).astype(np.float32)


# ------------------------------------------------------------------------------------------------------ depth


def read_depth(path, depth_scale: float = 1000.) -> np.ndarray:
  """Depth in metres `(H, W)` from `.npy` (float metres) or a 16-bit PNG/TIFF (metres = value / depth_scale)."""
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix == '.npy':
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
      d = (arr.astype(np.float64) / depth_scale).astype(np.float32)
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
