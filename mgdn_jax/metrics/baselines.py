"""Reference outputs to compare against on MEF/MFF: classical baselines and the JPEG re-encoding of a result."""
import io
from typing import Sequence

import numpy as np
from PIL import Image

from mgdn_jax.metrics import common

BASELINES = ('average', 'mertens')


def import_cv2():
  """OpenCV when it is installed (it is optional: only the Mertens baseline needs it), else None."""
  try:
    import cv2  # pylint: disable=g-import-not-at-top
    return cv2
  except ImportError:
    return None


def baseline(kind: str, sources: Sequence[np.ndarray]) -> np.ndarray:
  """uint8 (H, W, 3) result of a classical baseline: 'average' of the sources, or OpenCV 'mertens' (MEF)."""
  if kind == 'average':
    return common.quantize_uint8(np.mean([s.astype(np.float64) for s in sources], axis=0) / 255.0)
  if kind == 'mertens':
    cv2 = import_cv2()
    if cv2 is None:
      raise ImportError('baseline mertens needs OpenCV (pip install opencv-python-headless)')
    fused = cv2.createMergeMertens().process([np.ascontiguousarray(s[..., ::-1]) for s in sources])
    return common.quantize_uint8(np.asarray(fused, np.float32)[..., ::-1])
  raise ValueError(f'unknown baseline {kind!r}: expected one of {BASELINES}')


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
  """uint8 (H, W, 3) -> encoded as JPEG at `quality` and decoded: how the official scripts' saved .jpg files
  (e.g. Lytro results, OpenCV quality 95, 4:2:0) differ from the exact network output."""
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format='JPEG', quality=quality)
  buf.seek(0)
  with Image.open(buf) as im:
    return np.asarray(im.convert('RGB'), dtype=np.uint8)
