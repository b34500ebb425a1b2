"""Radiance RGBE (`.hdr`): the one codec of the project, used by the Kalantari builder and the fuse CLI.

Format: a text header ending in an empty line, a resolution line `-Y <H> +X <W>`, then H scanlines of W RGBE
pixels. A scanline is either flat (W × 4 bytes) or "new" run-length encoded: the bytes 2, 2, W >> 8, W & 255,
then each of the four components in turn as runs (a count byte > 128 repeats the next byte count − 128 times,
otherwise `count` literal bytes follow).

Decoding convention: a pixel (r, g, b, e) is (r, g, b) · 2^(e − 136), and 0 when e = 0. The official evaluation
reads Kalantari's `HDRImg.hdr` through the H5 files that MATLAB prepares with `hdrread`, which decodes
(r / 256) · 2^(e − 128), the same value; OpenCV and FreeImage (imageio) decode it alike. Radiance's own library
adds half a step ((r + 0.5) · 2^(e − 136)); that is not what the official numbers were computed on.

Encoding truncates the mantissas (Ward's float2rgbe), so encode(decode(rgbe)) gives back the same bytes.
Nothing here touches the file system: `image_io` reads and writes the files.
"""
import re

import numpy as np

RADIANCE_MAGIC = (b'#?RADIANCE', b'#?RGBE')
_RESOLUTION = re.compile(rb'^-Y (\d+) \+X (\d+)$')
_RLE_WIDTHS = range(8, 0x8000)  # RLE is defined for these widths only
_RUN = 128  # longest literal run


def parse_header(data: bytes) -> tuple[int, int, int]:
  """(H, W, offset of the first scanline) from the start of a file; raises ValueError naming what is wrong."""
  if not data.startswith(RADIANCE_MAGIC):
    raise ValueError('not a Radiance file (no #?RADIANCE header)')
  end = data.find(b'\n\n')
  if end < 0:
    raise ValueError('corrupt Radiance header (no blank line after it)')
  header = data[:end]
  if b'FORMAT=' in header and b'FORMAT=32-bit_rle_rgbe' not in header:
    raise ValueError('unsupported Radiance format (only 32-bit_rle_rgbe; XYZE is not supported)')
  line_end = data.find(b'\n', end + 2)
  line = data[end + 2:line_end if line_end >= 0 else None].strip()
  m = _RESOLUTION.match(line)
  if line_end < 0 or not m:
    raise ValueError(f'unsupported resolution line {line[:40]!r} (need -Y H +X W)')
  return int(m[1]), int(m[2]), line_end + 1


def _rle_scanline(buf: memoryview, pos: int, width: int) -> tuple[np.ndarray, int]:
  line = np.empty((4, width), np.uint8)
  for c in range(4):
    x = 0
    while x < width:
      count = buf[pos]
      if count > 128:
        count -= 128
        if x + count > width:
          raise ValueError('corrupt run-length scanline (run past the end of the line)')
        line[c, x:x + count] = buf[pos + 1]
        pos += 2
      else:
        if count == 0 or x + count > width:
          raise ValueError(f'corrupt run-length scanline (literal count {count})')
        chunk = buf[pos + 1:pos + 1 + count]
        if len(chunk) != count:
          raise IndexError
        line[c, x:x + count] = np.frombuffer(chunk, np.uint8)
        pos += 1 + count
      x += count
  return line.T, pos


def decode_bytes(data: bytes) -> np.ndarray:
  """The uint8 (H, W, 4) RGBE pixels of a whole file."""
  height, width, pos = parse_header(data)
  buf = memoryview(data)
  rgbe = np.empty((height, width, 4), np.uint8)
  try:
    for y in range(height):
      if width in _RLE_WIDTHS and bytes(buf[pos:pos + 4]) == bytes((2, 2, width >> 8, width & 255)):
        rgbe[y], pos = _rle_scanline(buf, pos + 4, width)
      else:
        line = np.frombuffer(buf[pos:pos + 4 * width], np.uint8)
        if line.size != 4 * width:
          raise IndexError
        rgbe[y] = line.reshape(width, 4)
        pos += 4 * width
  except IndexError:
    raise ValueError(f'truncated pixel data (the file ends before {height} scanlines)') from None
  return rgbe


def to_float(rgbe: np.ndarray) -> np.ndarray:
  """uint8 (H, W, 4) → float32 (H, W, 3): (r, g, b) · 2^(e − 136), 0 where e = 0 (see the module docstring)."""
  e = rgbe[..., 3:].astype(np.int32)
  scale = np.where(e > 0, np.ldexp(np.float32(1), e - 136), np.float32(0)).astype(np.float32)
  out = rgbe[..., :3].astype(np.float32)
  out *= scale  # exact: an 8-bit integer times a power of two
  return out


def from_float(img: np.ndarray) -> np.ndarray:
  """float (H, W, 3) → uint8 (H, W, 4): the largest channel sets the exponent, mantissas are truncated."""
  img = np.maximum(np.asarray(img, np.float64), 0.)
  peak = img.max(axis=-1)
  mantissa, exponent = np.frexp(peak)
  ok = peak > 1e-32
  scale = np.where(ok, mantissa * 256. / np.where(ok, peak, 1.), 0.)
  rgbe = np.empty(img.shape[:2] + (4,), np.uint8)
  rgbe[..., :3] = np.minimum(np.floor(img * scale[..., None]), 255)
  rgbe[..., 3] = np.where(ok, exponent + 128, 0)
  return rgbe


def encode(img: np.ndarray) -> bytes:
  """A whole `.hdr` file for float (H, W, 3) linear RGB.

  Scanlines are run-length encoded as literal runs only (valid for every reader, and vectorised); widths outside
  the RLE range are written flat.
  """
  rgbe = from_float(img)
  h, w = rgbe.shape[:2]
  header = f'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {h} +X {w}\n'.encode()
  if w not in _RLE_WIDTHS:
    return header + rgbe.tobytes()
  planes = np.moveaxis(rgbe, 2, 1)  # (H, 4, W): RLE scanlines store each component separately
  chunks = []
  for start in range(0, w, _RUN):
    part = planes[..., start:start + _RUN]
    chunks += [np.full((h, 4, 1), part.shape[-1], np.uint8), part]
  body = np.concatenate(chunks, axis=-1).reshape(h, -1)
  marker = np.tile(np.array([2, 2, w >> 8, w & 255], np.uint8), (h, 1))
  return header + np.concatenate([marker, body], axis=1).tobytes()
