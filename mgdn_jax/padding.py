"""The padding protocols of whole-image inference (numpy only, so CLIs can offer them before loading JAX).

'reflect' pads the bottom/right to a multiple of the window size (what the model does internally); 'official' is
the official MEF/MFF scripts' symmetric padding to the *next* multiple of 8; 'none' leaves the image as it is.
"""
import numpy as np

OFFICIAL_MULTIPLE = 8
PADDINGS = ('reflect', 'official', 'none')


def pad_reflect(x: np.ndarray, multiple: int) -> np.ndarray:
  """(H, W, C) → reflect-padded at the bottom/right up to a multiple (mirror without repeating the edge)."""
  h, w = x.shape[:2]
  ph, pw = (-h) % multiple, (-w) % multiple
  if ph >= h or pw >= w:
    raise ValueError(f'image {h}x{w} is too small to reflect-pad to a multiple of {multiple}')
  return np.pad(x, ((0, ph), (0, pw), (0, 0)), mode='reflect')


def pad_official(x: np.ndarray, multiple: int = OFFICIAL_MULTIPLE) -> np.ndarray:
  """(H, W, C) → the official scripts' padding: (⌊h/m⌋ + 1)·m − h flipped rows at the bottom, then columns."""
  h, w = x.shape[:2]
  ph, pw = (h // multiple + 1) * multiple - h, (w // multiple + 1) * multiple - w
  return np.pad(x, ((0, ph), (0, pw), (0, 0)), mode='symmetric')


def pad(x: np.ndarray, padding: str, multiple: int) -> np.ndarray:
  if padding == 'reflect':
    return pad_reflect(x, multiple)
  if padding == 'official':
    return pad_official(x)
  if padding == 'none':
    return x
  raise ValueError(f'unknown padding {padding!r}; use one of {PADDINGS}')
