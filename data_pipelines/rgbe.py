"""Radiance RGBE (.hdr) reading and writing in numpy (TensorFlow-free; imageio has no RGBE reader by default).

Format: a text header ending in an empty line, a resolution line `-Y <H> +X <W>`, then H scanlines of W RGBE
pixels, each scanline either flat or "new" run-length encoded (4 bytes 2, 2, W>>8, W&255, then each of the four
components as runs: a count byte > 128 repeats the next byte count−128 times, otherwise count literal bytes).
A pixel (r, g, b, e) decodes to (r, g, b)·2^(e−136) (0 when e = 0), as OpenCV and FreeImage decode it.
"""
import pathlib
import re

import numpy as np

from data_pipelines import common

_RES = re.compile(rb'^-Y (\d+) \+X (\d+)$')


def _decode_scanline(data: memoryview, pos: int, width: int, path) -> tuple[np.ndarray, int]:
  out = np.empty((4, width), np.uint8)
  for c in range(4):
    x = 0
    while x < width:
      count = data[pos]
      pos += 1
      if count > 128:
        count -= 128
        if x + count > width:
          raise common.DataError(f'{path}: corrupt RLE scanline (run past the end of the line)')
        out[c, x:x + count] = data[pos]
        pos += 1
      else:
        if count == 0 or x + count > width:
          raise common.DataError(f'{path}: corrupt RLE scanline (bad literal count {count})')
        out[c, x:x + count] = np.frombuffer(data[pos:pos + count], np.uint8)
        pos += count
      x += count
  return out.T, pos


def read_hdr(path: pathlib.Path) -> np.ndarray:
  """Reads a Radiance RGBE file as float32 (H, W, 3), linear RGB."""
  raw = pathlib.Path(path).read_bytes()
  if not raw.startswith((b'#?RADIANCE', b'#?RGBE')):
    raise common.DataError(f'{path}: not a Radiance .hdr file (no #?RADIANCE header)')
  end = raw.find(b'\n\n')
  if end < 0:
    raise common.DataError(f'{path}: corrupt Radiance header (no blank line)')
  header = raw[:end].decode('latin-1')
  if 'FORMAT=' in header and 'FORMAT=32-bit_rle_rgbe' not in header:
    raise common.DataError(f'{path}: unsupported Radiance format (only 32-bit_rle_rgbe)')
  nl = raw.find(b'\n', end + 2)
  m = _RES.match(raw[end + 2:nl].strip())
  if not m:
    raise common.DataError(f'{path}: unsupported resolution line {raw[end + 2:nl][:40]!r} (need -Y H +X W)')
  height, width = int(m[1]), int(m[2])
  data = memoryview(raw)
  pos = nl + 1
  rgbe = np.empty((height, width, 4), np.uint8)
  try:
    for y in range(height):
      head = bytes(data[pos:pos + 4])
      if 8 <= width <= 0x7FFF and head[:2] == b'\x02\x02' and (head[2] << 8 | head[3]) == width:
        rgbe[y], pos = _decode_scanline(data, pos + 4, width, path)
      else:  # flat scanline
        line = np.frombuffer(data[pos:pos + 4 * width], np.uint8)
        if line.size != 4 * width:
          raise IndexError
        rgbe[y] = line.reshape(width, 4)
        pos += 4 * width
  except IndexError:
    raise common.DataError(f'{path}: truncated pixel data (file ends before {height} scanlines)') from None
  exp = rgbe[..., 3:].astype(np.int32)
  scale = np.where(exp > 0, np.ldexp(np.float32(1), exp - 136), 0).astype(np.float32)
  return rgbe[..., :3].astype(np.float32) * scale


def read_hdr_shape(path: pathlib.Path) -> tuple[int, int]:
  """(H, W) from the header only (for cheap validation scans)."""
  with open(path, 'rb') as f:
    head = f.read(4096)
  end = head.find(b'\n\n')
  m = _RES.match(head[end + 2:head.find(b'\n', end + 2)].strip()) if end >= 0 else None
  if not head.startswith((b'#?RADIANCE', b'#?RGBE')) or not m:
    raise common.DataError(f'{path}: not a readable Radiance .hdr file (bad header)')
  return int(m[1]), int(m[2])


def _encode_channel(values: np.ndarray) -> bytes:
  """Run-length encodes one component of a scanline (runs of ≥ 4 equal bytes become run codes)."""
  out = bytearray()
  n, i = len(values), 0
  while i < n:
    j = i
    while j < n and j - i < 127 and values[j] == values[i]:
      j += 1
    if j - i >= 4:
      out += bytes((128 + j - i, values[i]))
      i = j
      continue
    k = i  # literal chunk up to the next run of ≥ 4 (or 128 bytes)
    while k < n and k - i < 128:
      if k + 3 < n and values[k] == values[k + 1] == values[k + 2] == values[k + 3]:
        break
      k += 1
    out += bytes((k - i,)) + bytes(values[i:k])
    i = k
  return bytes(out)


def float_to_rgbe(img: np.ndarray) -> np.ndarray:
  """float (H, W, 3) ≥ 0 → uint8 (H, W, 4) RGBE (mantissas truncated, as Radiance writes them)."""
  img = np.asarray(img, np.float64)
  peak = img.max(axis=-1)
  mant, exp = np.frexp(peak)
  ok = peak > 1e-32
  scale = np.where(ok, mant * 256.0 / np.where(ok, peak, 1.0), 0.0)
  rgb = np.floor(img * scale[..., None]).clip(0, 255)
  e = np.where(ok, exp + 128, 0)
  return np.concatenate([rgb, e[..., None]], axis=-1).astype(np.uint8)


def write_hdr(path: pathlib.Path, img: np.ndarray, rle: bool = True) -> None:
  """Writes float (H, W, 3) linear RGB as a Radiance file (RLE scanlines when the width allows)."""
  rgbe = float_to_rgbe(img)
  height, width = rgbe.shape[:2]
  out = bytearray(b'#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n' + f'-Y {height} +X {width}\n'.encode())
  for y in range(height):
    if rle and 8 <= width <= 0x7FFF:
      out += bytes((2, 2, width >> 8, width & 255))
      for c in range(4):
        out += _encode_channel(rgbe[y, :, c].tobytes())
    else:
      out += rgbe[y].tobytes()
  pathlib.Path(path).write_bytes(bytes(out))
