"""Synthetic training data: DRPL-style multi-focus pairs and exposure stacks (numpy only, deterministic).

DRPL recipe (Li et al. 2020, used by MGDN for MFF training): a sharp crop, a binary focus mask, a 7×7 Gaussian
blur, and the complementary pair near = M·sharp + (1−M)·blur, far = (1−M)·sharp + M·blur; target = sharp.
The varied-defocus variant draws the blur of each side's out-of-focus part separately (`defocus_sigma`): real
focal stacks are blurred by different amounts on each side, and a model that only ever saw σ = 2 fuses weaker and
stronger blurs far worse (`tools/defocus_sweep.py`).
"""
import numpy as np
from PIL import Image
from scipy import ndimage

from mgdn_jax import image_io

BLUR_SIZE = 7
BLUR_SIGMA = 2.0
DEFOCUS_SIGMAS = (0.5, 5.0)  # range of the varied-defocus blur, drawn log-uniformly
# The blur between the two sources of real Lytro pairs (`tools/pair_blur.py`) lies mostly in σ 1.5–4.4 (10th–90th
# percentile), where DEFOCUS_SIGMAS puts under half of its draws.
STRONG_DEFOCUS_SIGMAS = (1.0, 6.0)
OVERLAP_MAX = 0.3  # the largest share of a pair left sharp in both sources


def gaussian_blur(img: np.ndarray, size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA) -> np.ndarray:
  """Separable size×size Gaussian blur of a (H, W, C) image, symmetric borders; float32 out."""
  r = size // 2
  x = np.arange(-r, r + 1, dtype=np.float64)
  k = np.exp(-x**2 / (2 * sigma**2))
  k /= k.sum()
  out = ndimage.convolve1d(img.astype(np.float32), k.astype(np.float32), axis=0, mode='reflect')
  return ndimage.convolve1d(out, k.astype(np.float32), axis=1, mode='reflect')


def defocus_sigma(rng: np.random.Generator, sigmas: tuple[float, float] = DEFOCUS_SIGMAS) -> float:
  """A Gaussian σ drawn log-uniformly from the range `sigmas`: as many weak blurs (hard to tell from sharp) as
  strong."""
  lo, hi = np.log(sigmas[0]), np.log(sigmas[1])
  return float(np.exp(rng.uniform(lo, hi)))


def defocus_blur(img: np.ndarray, sigma: float) -> np.ndarray:
  """Gaussian blur of σ `sigma` with a kernel of ±3σ (float32 (H, W, C)), unlike DRPL's fixed 7×7."""
  return gaussian_blur(img, size=2 * int(np.ceil(3 * sigma)) + 1, sigma=sigma)


def _smooth_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """(H, W) float32 noise with ~32-pixel blobs: thresholds of it are smooth region shapes."""
  coarse = rng.standard_normal((max(2, h // 32), max(2, w // 32))).astype(np.float32)
  return np.asarray(Image.fromarray(coarse, mode='F').resize((w, h), Image.BICUBIC))


def random_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """A binary focus mask of smooth blobs (bool (H, W)); covers 30–70 % of the image, never all or nothing."""
  field = _smooth_field(rng, h, w)
  mask = field > np.quantile(field, rng.uniform(0.3, 0.7))
  if mask.all() or not mask.any():  # Degenerate only for tiny sizes: fall back to a half split.
    mask = np.zeros((h, w), bool)
    mask[:, : w // 2] = True
  return mask


def overlap_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
  """Where both sources are in focus (bool (H, W)): smooth blobs over 0–OVERLAP_MAX of the image.

  Real focal pairs have parts sharp in both (the two depths of field overlap) or alike in both; a model whose every
  training pixel is sharp in exactly one source learns to sharpen what both show alike (`tools/defocus_sweep.py
  --sigmas=0`).
  """
  field = _smooth_field(rng, h, w)
  return field > np.quantile(field, 1 - rng.uniform(0, OVERLAP_MAX))


def mask_from_image(mask_img: np.ndarray, h: int, w: int) -> np.ndarray:
  """Binarises a (H', W'[, C]) mask image (> 127 is foreground), resized by nearest neighbour to (h, w)."""
  if mask_img.ndim == 3:
    mask_img = mask_img[..., 0]
  if mask_img.shape != (h, w):
    mask_img = np.asarray(Image.fromarray(mask_img).resize((w, h), Image.NEAREST))
  return mask_img > 127


def random_crop(rng: np.random.Generator, img: np.ndarray, h: int, w: int) -> np.ndarray:
  y = int(rng.integers(0, img.shape[0] - h + 1))
  x = int(rng.integers(0, img.shape[1] - w + 1))
  return img[y:y + h, x:x + w]


def drpl_pair(sharp: np.ndarray, mask: np.ndarray, sigmas: tuple[float, float] | None = None,
              both: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Complementary (near, far) uint8 pair from a sharp uint8 (H, W, 3) image and a bool (H, W) mask.

  `sigmas` = (σ of near's background, σ of far's foreground) for `defocus_blur`; None is DRPL's 7×7, σ = 2 on both.
  `both`: a bool (H, W) region left sharp in both sources (`overlap_mask`); None: none.
  """
  if sigmas is None:
    blur_near = blur_far = gaussian_blur(sharp)
  else:
    blur_near, blur_far = (defocus_blur(sharp, sigma) for sigma in sigmas)
  near_sharp, far_sharp = (mask, ~mask) if both is None else (mask | both, ~mask | both)
  m_near, m_far = (x[..., None].astype(np.float32) for x in (near_sharp, far_sharp))
  s = sharp.astype(np.float32)
  near = m_near * s + (1 - m_near) * blur_near
  far = m_far * s + (1 - m_far) * blur_far
  to8 = lambda a: np.clip(np.round(a), 0, 255).astype(np.uint8)
  return to8(near), to8(far)


def _srgb_to_linear(img8: np.ndarray) -> np.ndarray:
  return image_io.to_float32(img8) ** 2.2


def _linear_to_uint(lin: np.ndarray, maxval: int, dtype) -> np.ndarray:
  return np.round(np.clip(lin, 0, 1) ** (1 / 2.2) * maxval).astype(dtype)


def illumination(rng: np.random.Generator, h: int, w: int, stops: float) -> np.ndarray:
  """A smooth multiplicative light field spanning `stops` EV, (H, W, 1) float32 in (0, 1]."""
  yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
  angle = rng.uniform(0, 2 * np.pi)
  ramp = np.cos(angle) * xx / w + np.sin(angle) * yy / h
  ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
  return (2.0 ** (-stops * ramp))[..., None]


def mef_pair(rng: np.random.Generator, photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(under, over) uint8 exposures of a well-exposed uint8 photo, which is the MEF target."""
  lin = _srgb_to_linear(photo)
  ev = rng.uniform(1.5, 2.5)
  under = _linear_to_uint(lin * 2.0**-ev, 255, np.uint8)
  over = _linear_to_uint(lin * 2.0**ev, 255, np.uint8)
  return under, over


def hdr_triplet(rng: np.random.Generator, photo: np.ndarray, h: int, w: int, evs, shift: int = 6):
  """Kalantari-style scene from a uint8 photo larger than (h + 2·shift, w + 2·shift).

  Radiance R = linear(photo) · light field, in [0, 1]. Frame k is the LDR of R·2^EV_k (gamma 2.2, uint16);
  the under and over frames see the scene shifted by up to `shift` pixels (camera/object motion), the reference
  (middle) frame is aligned with the target R. Returns ([under, ref, over] uint16 (h, w, 3), R float32).
  """
  big_h, big_w = photo.shape[:2]
  radiance = _srgb_to_linear(photo) * illumination(rng, big_h, big_w, stops=3.0)
  y0, x0 = (big_h - h) // 2, (big_w - w) // 2
  frames = []
  for k, ev in enumerate(evs):
    dy, dx = (0, 0) if k == 1 else tuple(int(v) for v in rng.integers(-shift, shift + 1, size=2))
    window = radiance[y0 + dy:y0 + dy + h, x0 + dx:x0 + dx + w]
    frames.append(_linear_to_uint(window * 2.0**ev, 65535, np.uint16))
  target = np.ascontiguousarray(radiance[y0:y0 + h, x0:x0 + w], dtype=np.float32)
  return frames, target
