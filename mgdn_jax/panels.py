"""Side-by-side image panels with a label over each view (TensorBoard eval images, README figures)."""
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

GAP = 4        # pixels of white between views
BAR = 0.09     # label bar height as a fraction of the view height (at least 14 pixels)


def labelled_row(views: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
  """uint8 (H + bar, Σ W + gaps, 3): the uint8 (H, W_i, 3) `views` left to right, each under its label."""
  if len(views) != len(labels):
    raise ValueError(f'{len(views)} views but {len(labels)} labels')
  h = max(v.shape[0] for v in views)
  bar = max(14, int(round(h * BAR)))
  width = sum(v.shape[1] for v in views) + GAP * (len(views) - 1)
  canvas = Image.new('RGB', (width, h + bar), 'white')
  draw = ImageDraw.Draw(canvas)
  font = ImageFont.load_default(size=max(10, int(bar * 0.7)))
  x = 0
  for view, label in zip(views, labels):
    canvas.paste(Image.fromarray(np.ascontiguousarray(view[..., :3])), (x, bar))
    left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
    draw.text((x + (view.shape[1] - (right - left)) / 2, (bar - (bottom - top)) / 2 - top), label,
              fill='black', font=font)
    x += view.shape[1] + GAP
  return np.asarray(canvas)
