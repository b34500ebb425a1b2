"""Whole-image inference: padding and tiling with blended overlaps (inputs are encoded by tasks.Task.encode).

`fuse(model, images)` runs an MGDN on K full-size `(H, W, C_k)` float32 images already in model input space and
returns the `(H, W, C_out)` float32 output. Three padding protocols:

* 'reflect' (default): reflect-pad bottom/right to a multiple of the window size, crop back. This is exactly what
  the model does internally (MGDN_REFERENCE §3.4), done here so that every compiled shape is a window multiple.
* 'official': the official MEF/MFF scripts (§10.1, §14.6): symmetric (edge-repeating) padding at the bottom and
  right to the *next* multiple of 8, which adds a full 8 rows/columns when the size is already divisible.
* 'none': hand the image to the model as is.

Tiling. MGCA is a channel attention over *all* pixels of its input and the dynamic filters depend on it, so a tile
sees different global statistics than the whole image: tiled and untiled outputs differ (beyond the seams), and
overlap only hides seams. Tiles have one fixed size (the last row/column of tiles is shifted back inside the
image), so one compilation serves all. Overlapping parts are cross-faded with linear ramps whose weights sum to 1.
`tile=500, overlap=0` on a 1000×1500 image is the official HDR evaluation (2×3 tiles, each reflect-padded to
504×504 by the model).

Without a tile size, `fuse` estimates the memory of one full-size forward pass and tiles only when it would not
fit (`auto_tile`), logging the choice.
"""

import functools
import logging
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
import tqdm

from mgdn_jax.padding import PADDINGS, pad, pad_official, pad_reflect  # noqa: F401  (the padding protocols)

DEFAULT_OVERLAP = 32
# Fraction of the free memory a forward pass may plan for (XLA scratch, fragmentation, the host copies).
MEMORY_HEADROOM = 0.6

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------- tiling


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
  """Start offsets of fixed-size tiles covering [0, size); the last one is shifted back to end at `size`."""
  if tile >= size:
    return [0]
  stride = tile - overlap
  if stride <= 0:
    raise ValueError(f'overlap {overlap} must be smaller than the tile size {tile}')
  return list(range(0, size - tile, stride)) + [size - tile]


def _ramps(starts: list[int], tile: int) -> list[np.ndarray]:
  """1-D blend weights per tile: linear ramps across each actual overlap, so neighbours' weights sum to 1."""
  out = []
  for i, s in enumerate(starts):
    w = np.ones(tile, np.float32)
    if i > 0:
      n = starts[i - 1] + tile - s
      if n > 0:
        w[:n] = np.minimum(w[:n], (np.arange(n) + 0.5) / n)
    if i + 1 < len(starts):
      n = s + tile - starts[i + 1]
      if n > 0:
        w[tile - n:] = np.minimum(w[tile - n:], (n - np.arange(n) - 0.5) / n)
    out.append(w)
  return out


def tiles(h: int, w: int, tile: int, overlap: int):
  """[(y, x, th, tw, weight (th, tw))] covering an h×w image."""
  th, tw = min(tile, h), min(tile, w)
  ys, xs = tile_starts(h, th, overlap), tile_starts(w, tw, overlap)
  wy, wx = _ramps(ys, th), _ramps(xs, tw)
  return [(y, x, th, tw, np.outer(ay, ax)) for y, ay in zip(ys, wy) for x, ax in zip(xs, wx)]


# ---------------------------------------------------------------------------------------------------- memory


def _attention_heads(model) -> int:
  heads = [m.num_heads for _, m in nnx.iter_graph(model)
           if isinstance(m, nnx.Module) and hasattr(m, 'relative_position_bias_table')]
  return max(heads, default=6)


def estimate_bytes(model, h: int, w: int) -> int:
  """Rough upper bound of the peak memory (bytes) of one float32 forward pass on an h×w input (after padding).

  Per pixel: the stream feature maps a stage keeps alive (∝ streams × channels) and the window-attention logits
  (∝ heads × ws²), plus a fixed 300 MB (compiler, runtime). Fitted to the CPU peak-RSS growth of the 'mef', 'hdr'
  and 'mff' presets from 128² to 512², then checked on full images (benchmarks/inference_bench.py): MEF 800×1200
  8.5–9.7 GiB measured vs 10.1 estimated, HDR 1000×1500 13.5–15.5 vs 18.3, a 504² HDR tile 2.8–3.2 vs 3.3.
  """
  dim = model.input_convs[0].out_features
  per_pixel = 32 * model.num_streams * dim + 12 * _attention_heads(model) * model.window_size**2 + 2500
  return int(per_pixel * h * w) + (300 << 20)


def available_bytes() -> int:
  """Free memory of the default device: accelerator memory stats, else the host's MemAvailable."""
  dev = jax.devices()[0]
  if dev.platform != 'cpu':
    stats = dev.memory_stats() or {}
    if 'bytes_limit' in stats:
      return int(stats['bytes_limit'] - stats.get('bytes_in_use', 0))
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def auto_tile(model, h: int, w: int, budget: int | None = None) -> int | None:
  """None when the whole h×w image fits in `budget` (default: a share of the free memory), else a tile size."""
  budget = int(MEMORY_HEADROOM * available_bytes()) if budget is None else budget
  if estimate_bytes(model, h, w) <= budget:
    return None
  per_pixel = (estimate_bytes(model, 1024, 1024) - estimate_bytes(model, 0, 0)) / (1024 * 1024)
  side = int(math.sqrt(max(budget - estimate_bytes(model, 0, 0), 0) / per_pixel))
  ws = model.window_size
  side = max(side // ws * ws, 8 * ws, 2 * DEFAULT_OVERLAP + ws)
  return side


# --------------------------------------------------------------------------------------------------- forward


@functools.partial(jax.jit, static_argnums=0)
def forward(graphdef, state, *streams):
  """The jitted whole-image forward pass: K (N, H, W, C_k) inputs, H and W window multiples → (N, H, W, C_out)
  float32. Public so that benchmarks/aot_tpu.py compiles exactly this function for a TPU mesh."""
  model = nnx.merge(graphdef, state)
  fused, _ = model(*streams, train=False, rng=None)
  return fused.astype(jnp.float32)


def _run(model, streams: list[np.ndarray]) -> np.ndarray:
  """One forward pass of (H, W, C_k) arrays; returns (H, W, C_out) float32 numpy."""
  graphdef, state = nnx.split(model)
  out = forward(graphdef, state, *(jnp.asarray(x[None], jnp.float32) for x in streams))
  return np.asarray(out[0])


def check_inputs(model, images) -> tuple[int, int]:
  if len(images) != model.num_streams:
    raise ValueError(f'the model takes {model.num_streams} input images, got {len(images)}')
  sizes = [x.shape[:2] for x in images]
  for i, x in enumerate(images):
    if x.ndim != 3 or x.shape[-1] != model.in_channels[i]:
      raise ValueError(f'input {i} must be (H, W, {model.in_channels[i]}), got shape {x.shape}')
  if len(set(sizes)) != 1:
    raise ValueError(f'input images differ in size: {", ".join(f"{h}x{w}" for h, w in sizes)}')
  return sizes[0]


def fuse(model, images, *, padding: str = 'reflect', tile: int | None = None, overlap: int = DEFAULT_OVERLAP,
         auto: bool = True, memory_budget: int | None = None, progress: bool = False) -> np.ndarray:
  """Runs `model` on K full-size images in model input space.

  Args:
    model: an MGDN (any preset/dtype).
    images: K float32 arrays (H, W, C_k), the same H, W (the streams of the data pipelines).
    padding: 'reflect' | 'official' | 'none' (module docstring).
    tile: tile size in pixels (square; clipped to the image); None = whole image unless it would not fit.
    overlap: pixels shared by neighbouring tiles, cross-faded (ignored without tiling).
    auto: pick a tile size automatically when the whole image would not fit in memory (only when tile is None).
    memory_budget: bytes a forward pass may use (default: a share of the free device/host memory).
    progress: show a tqdm bar over the tiles.
  Returns:
    (H, W, C_out) float32, the model output (in (0, 1)).
  Raises:
    ValueError: bad inputs, or a non-finite output (never handed on to be written as an image).
  """
  h, w = check_inputs(model, images)
  ws = model.window_size
  if padding == 'official':
    images = [pad_official(x) for x in images]
  ph, pw = images[0].shape[:2]
  if tile is None and auto:
    budget = int(MEMORY_HEADROOM * available_bytes()) if memory_budget is None else memory_budget
    tile = auto_tile(model, ph + (-ph) % ws, pw + (-pw) % ws, budget)
    if tile is not None:
      overlap = min(overlap, tile // 4)
      log.info('a %dx%d image needs about %.1f GiB, more than the %.1f GiB budget: tiling with %d px tiles, '
               'overlap %d', ph, pw, estimate_bytes(model, ph, pw) / 2**30, budget / 2**30, tile, overlap)
  tile_padding = 'none' if padding == 'none' else 'reflect'
  if tile is None or (tile >= ph and tile >= pw):
    out = _run(model, [pad(x, tile_padding, ws) for x in images])[:ph, :pw]
  else:
    if tile < ws:
      raise ValueError(f'tile size {tile} is smaller than the window size {ws}')
    grid = tiles(ph, pw, tile, overlap)
    acc = weight = None
    bar = None if progress else True  # tqdm's None: a bar only when stderr is a terminal
    for y, x, th, tw, wt in tqdm.tqdm(grid, desc='tiles', unit='tile', disable=bar, leave=False):
      part = _run(model, [pad(im[y:y + th, x:x + tw], tile_padding, ws) for im in images])[:th, :tw]
      if acc is None:
        acc = np.zeros((ph, pw, part.shape[-1]), np.float32)
        weight = np.zeros((ph, pw, 1), np.float32)
      acc[y:y + th, x:x + tw] += part * wt[..., None]
      weight[y:y + th, x:x + tw] += wt[..., None]
    out = acc / weight
  out = out[:h, :w]
  if not np.isfinite(out).all():
    raise ValueError(f'the model output holds {np.size(out) - np.isfinite(out).sum()} non-finite values '
                     '(NaN or inf in the weights or the inputs).')
  return out


def resize(img: np.ndarray, size) -> np.ndarray:
  """(H, W, C) float → size = (h, w), PIL bicubic per channel (antialiased when shrinking)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c], np.float32), mode='F')
                      .resize((size[1], size[0]), Image.BICUBIC)) for c in range(img.shape[-1])]
  return np.stack(chans, axis=-1).astype(np.float32)


