"""16-bit colour PNG: the one case Pillow gets wrong (it truncates 16-bit colour PNGs to 8 bits on read and write).

`is_png16_colour` tells such a file from its IHDR bytes; `decode` reads it with TensorFlow's decoder (a declared
dependency, imported only here and only for that case); `encode` writes grey, grey+alpha, RGB or RGBA at 16 bits
with a small encoder of its own (filter 'Up' on every row, which suits natural images).
"""
import os
import struct
import zlib

import numpy as np

SIGNATURE = b'\x89PNG\r\n\x1a\n'


def is_png16_colour(data: bytes) -> bool:
  """Whether PNG bytes `data` hold a 16-bit colour (RGB or RGBA) image: IHDR bit depth 16, colour type 2 or 6."""
  return data[:8] == SIGNATURE and data[24:26] in (b'\x10\x02', b'\x10\x06')


def decode(data: bytes) -> np.ndarray:
  """(H, W, 3 | 4) uint16 pixels of a 16-bit colour PNG."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # keep TensorFlow's start-up chatter off the console
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.io.decode_png(data, dtype=tf.uint16).numpy()


def _chunk(kind: bytes, body: bytes) -> bytes:
  return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xffffffff)


def encode(arr: np.ndarray) -> bytes:
  """PNG bytes of uint16 pixels `(H, W)` or `(H, W, C)` with C = 1 (grey), 2 (grey + alpha), 3 (RGB), 4 (RGBA)."""
  h, w = arr.shape[:2]
  c = 1 if arr.ndim == 2 else arr.shape[2]
  colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
  rows = np.ascontiguousarray(arr, '>u2').view(np.uint8).reshape(h, -1)
  up = rows.copy()
  up[1:] = rows[1:] - rows[:-1]  # uint8 arithmetic wraps modulo 256, as the PNG filter does
  raw = np.concatenate([np.full((h, 1), 2, np.uint8), up], axis=1).tobytes()
  ihdr = struct.pack('>IIBBBBB', w, h, 16, colour_type, 0, 0, 0)
  return SIGNATURE + _chunk(b'IHDR', ihdr) + _chunk(b'IDAT', zlib.compress(raw, 6)) + _chunk(b'IEND', b'')
