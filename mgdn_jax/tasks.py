"""The four MGDN tasks — what differs between MEF, MFF, HDR and GDSR, in one place.

Every pipeline (training input, evaluation, the fuse CLI, the converter, the configs and the benchmarks) asks the
task object instead of branching on the task's name:

  streams and channels   `num_streams`, `in_channels`, `roles` (stream order: MEF under, over; MFF A, B; HDR under,
                         reference, over; GDSR RGB guide, depth)
  model preset           `preset(scale)` (the official network), `small_preset` (demo / tests)
  encoding               `encode(raw, scale)`: dataset features (or files read by the fuse CLI) → model inputs
  metrics                `metric_names`, `score(...)`, `best_metric(has_target)`; evaluation-protocol defaults
  outputs                `report_image` (evaluation PNGs), `panel` (TensorBoard), `write_output` + file formats (CLI)

Raw examples are dicts of numpy arrays as the dataset builders store them: `image_0 … image_{K-1}` (H, W, 3)
[+ `exposures` (K,) for HDR] [+ `target`], or `rgb` (H, W, 3) + `depth` (h, w) for GDSR. Only numpy is imported at
module level, so the CLIs can import this before parsing their arguments.
"""
import abc
import dataclasses
from typing import Mapping, Sequence

import numpy as np

GDSR_SCALES = (4, 8, 16)
NYU_BORDER_CROP = 6      # pixels dropped at each border before the GDSR RMSE on NYU-v2 (official protocol)


def _stream_keys(example: Mapping) -> list[str]:
  keys = sorted((k for k in example if k.startswith('image_')), key=lambda k: int(k.split('_')[1]))
  if not keys:
    name = example.get('name', '?')
    raise ValueError(f'example {name.decode() if isinstance(name, bytes) else name!r} has no image_k features')
  return keys


def _to_uint8(x: np.ndarray) -> np.ndarray:
  return np.round(np.clip(x, 0., 1.) * 255.).astype(np.uint8)


def _rgb(x: np.ndarray) -> np.ndarray:
  return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x[..., :3]


@dataclasses.dataclass(frozen=True)
class Task(abc.ABC):
  """One task's rules. Subclasses implement encoding, scoring and outputs of their kind of task."""
  name: str
  num_streams: int
  in_channels: tuple[int, ...]
  stream_labels: tuple[str, ...]      # the streams in order: messages, --help, TensorBoard panel labels
  small_preset: str                   # CPU-sized model of the demo / tiny configs
  metric_names: tuple[str, ...]       # report columns in the paper's order
  lower_is_better: tuple[str, ...]
  default_best: str                   # the metric that picks the best checkpoint
  eval_padding: str                   # the official evaluation's padding (inference.PADDINGS)
  output_suffixes: tuple[str, ...]    # file types the fuse CLI writes, the first is the default
  eval_tile: int | None = None        # the official evaluation's tile size (None: whole image)
  eval_modes: tuple[str, ...] = ('-',)
  is_fusion: bool = False             # MEF/MFF: uint8 sources and outputs, no-reference metrics, baselines
  needs_exposures: bool = False       # HDR: raw examples carry `exposures` (fuse CLI: --exposures, exposure.txt)
  guided_depth: bool = False          # GDSR: raw examples are `rgb` + `depth`, the output is a depth map
  extra_input_suffixes: tuple[str, ...] = ()   # file types the fuse CLI reads besides LDR images
  official_gf_chans: int = 30         # GF_chans default of the official constructor (the converter reads it)
  output_label: str = 'fused'         # the model output's label in the TensorBoard panel

  @property
  def roles(self) -> str:
    return ', '.join(self.stream_labels)

  # ----------------------------------------------------------------------------------------------- model
  def preset(self, scale: int | None = None) -> str:
    """The official network's preset in `model.model_config`."""
    del scale
    return self.name

  def presets(self) -> tuple[str, ...]:
    """Every official network of the task (GDSR: one per scale)."""
    return (self.preset(),)

  def check_config(self, config) -> None:
    """One-line errors for the task-specific fields of a training config."""
    del config

  # -------------------------------------------------------------------------------------------- encoding
  def spatial_keys(self, raw: Mapping) -> list[str]:
    """Keys of the raw example that are cropped and flipped together in training."""
    return _stream_keys(raw) + (['target'] if 'target' in raw else [])

  def augment_modes(self) -> tuple[int, ...]:
    """Dihedral transforms (data_pipelines.transforms.augment modes) allowed in training."""
    from data_pipelines import transforms  # pylint: disable=g-import-not-at-top
    return transforms.ALL_MODES

  @abc.abstractmethod
  def encode(self, raw: Mapping, scale: int | None = None) -> dict[str, np.ndarray]:
    """Raw example → {'stream_k': (H, W, C_k) float32, ['target': (H, W, C_out)], [GDSR: depth_min/max]}."""

  # --------------------------------------------------------------------------------------------- metrics
  def best_metric(self, has_target: bool) -> tuple[str, str]:
    """(metric, 'max' | 'min') ranking checkpoints; `has_target`: the first eval set has a ground truth."""
    del has_target
    return self.default_best, 'min' if self.default_best in self.lower_is_better else 'max'

  def border_crop(self, dataset: str) -> int:
    del dataset
    return 0

  def model_output(self, pred: np.ndarray) -> np.ndarray:
    """The network's float (H, W, C_out) output as the official evaluation scores it."""
    return pred

  @abc.abstractmethod
  def score(self, scene, output: np.ndarray, modes: Sequence[str], crop: int,
            no_reference: bool = True) -> dict[str, dict[str, float]]:
    """{mode: {metric: value}} of one output (`model_output` form) on one `metrics.scenes.Scene`."""

  # --------------------------------------------------------------------------------------------- outputs
  def report_image(self, output: np.ndarray) -> np.ndarray:
    """An output as the uint8 / uint16 array the evaluation report saves as PNG."""
    return output

  def panel(self, streams: Sequence[np.ndarray], output: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    """inputs | output | target side by side under their labels, one uint8 (H', W', 3) image (TensorBoard).

    `streams` (H, W, C_k) model inputs, `output` and `target` (H, W, C_out) float.
    """
    from mgdn_jax import panels  # pylint: disable=g-import-not-at-top
    views = [_rgb(self._viewable_input(k, s)) for k, s in enumerate(streams)]
    views += [_rgb(o) for o in [output] + ([target] if target is not None else [])]
    labels = list(self.stream_labels) + [self.output_label] + (['ground truth'] if target is not None else [])
    return panels.labelled_row([_to_uint8(v) for v in views], labels)

  def _viewable_input(self, k: int, stream: np.ndarray) -> np.ndarray:
    del k
    return stream

  @property
  def default_format(self) -> str:
    return self.output_suffixes[0].lstrip('.')

  def output_files(self, path) -> list:
    """Files the fuse CLI writes for one result at `path` (checked for writability before any work)."""
    return [path]

  @abc.abstractmethod
  def write_output(self, path, output: np.ndarray, *, bits: int, depth_range=None, depth_scale: float = 1000.,
                   out_bits: int | None = None) -> None:
    """Writes one fuse CLI result (`output` (H, W, C_out) float32 from the model)."""


@dataclasses.dataclass(frozen=True)
class FusionTask(Task):
  """MEF / MFF: two RGB photos → one RGB photo; MEFB / VIFB metrics on uint8 images."""
  is_fusion: bool = True
  target_metric: str = 'PSNR_gt'     # with a ground truth (demo data) checkpoints are ranked by PSNR against it

  def encode(self, raw, scale=None):
    from mgdn_jax import image_io  # pylint: disable=g-import-not-at-top
    out = {f'stream_{k}': image_io.to_float32(raw[key]) for k, key in enumerate(_stream_keys(raw))}
    if 'target' in raw:
      out['target'] = image_io.to_float32(raw['target'])
    return out

  def best_metric(self, has_target):
    return (self.target_metric, 'max') if has_target else super().best_metric(has_target)

  def model_output(self, pred):
    from mgdn_jax.metrics import common  # pylint: disable=g-import-not-at-top
    return common.quantize_uint8(pred)   # the official clamp, ×255, round

  def score(self, scene, output, modes, crop, no_reference=True):
    from mgdn_jax import metrics  # pylint: disable=g-import-not-at-top
    del crop
    extra = {}
    if scene.target is not None:
      pred = output.astype(np.float32) / np.float32(255)
      extra = {'PSNR_gt': metrics.psnr(pred, scene.target), 'SSIM_gt': metrics.ssim(pred, scene.target)}
    out = {}
    for mode in modes:
      values = metrics.evaluate_fusion(scene.sources, output, self.name, gray=mode == 'gray') if no_reference else {}
      out[mode] = {**values, **extra}
    return out

  def write_output(self, path, output, *, bits, depth_range=None, depth_scale=1000., out_bits=None):
    from mgdn_jax import image_io  # pylint: disable=g-import-not-at-top
    del depth_range, depth_scale
    image_io.write_image(path, output, bits=out_bits or (16 if bits >= 16 else 8))


@dataclasses.dataclass(frozen=True)
class HdrTask(Task):
  """HDR deghosting: three LDR frames (under, reference, over) + exposure values → linear HDR radiance."""
  preview_suffix: str = '_tonemapped.png'

  def encode(self, raw, scale=None):
    from data_pipelines import transforms  # pylint: disable=g-import-not-at-top
    from mgdn_jax import image_io  # pylint: disable=g-import-not-at-top
    keys = _stream_keys(raw)
    exposures = np.asarray(raw['exposures'], np.float32).reshape(-1)
    if len(exposures) != len(keys):
      raise ValueError(f'{len(keys)} HDR frames but {len(exposures)} exposure values')
    out = {f'stream_{k}': transforms.hdr_stream(raw[key], float(exposures[k])) for k, key in enumerate(keys)}
    if 'target' in raw:
      out['target'] = image_io.to_float32(raw['target'])
    return out

  def score(self, scene, output, modes, crop, no_reference=True):
    from mgdn_jax import metrics  # pylint: disable=g-import-not-at-top
    del crop, no_reference
    if scene.target is None:
      raise ValueError(f'scene {scene.name}: HDR evaluation needs a ground truth')
    return {mode: metrics.hdr_metrics(np.clip(output, 0, 1), scene.target) for mode in modes}

  def report_image(self, output):
    from mgdn_jax import metrics  # pylint: disable=g-import-not-at-top
    from mgdn_jax import tonemap  # pylint: disable=g-import-not-at-top
    return metrics.quantize_uint8(tonemap.mu_law(np.clip(output, 0, 1)))

  def panel(self, streams, output, target):
    """μ-law tonemapped output and target (μ = 5000, as the metrics)."""
    from mgdn_jax import tonemap  # pylint: disable=g-import-not-at-top
    view = lambda x: tonemap.mu_law(np.clip(x, 0., 1.))  # noqa: E731
    return super().panel(streams, view(output), None if target is None else view(target))

  def preview_path(self, path):
    import pathlib  # pylint: disable=g-import-not-at-top
    path = pathlib.Path(path)
    return path.with_name(path.stem + self.preview_suffix)

  def output_files(self, path):
    return [path, self.preview_path(path)]

  def write_output(self, path, output, *, bits, depth_range=None, depth_scale=1000., out_bits=None):
    from mgdn_jax import image_io  # pylint: disable=g-import-not-at-top
    del bits, depth_range, depth_scale, out_bits
    image_io.write_radiance(path, output)
    from mgdn_jax import tonemap  # pylint: disable=g-import-not-at-top
    image_io.write_image(self.preview_path(path), tonemap.mu_law(output), bits=8)


@dataclasses.dataclass(frozen=True)
class GdsrTask(Task):
  """Guided depth super-resolution: RGB guide + low-resolution depth → depth at the guide's resolution."""
  scales: tuple[int, ...] = GDSR_SCALES

  def preset(self, scale=None):
    scale = scale or self.scales[0]
    if scale not in self.scales:
      raise ValueError(f'GDSR scale {scale}: must be one of {self.scales}')
    return f'gdsr_x{scale}'

  def presets(self):
    return tuple(self.preset(s) for s in self.scales)

  def check_config(self, config):
    scale = config.data.gdsr_scale
    if scale not in self.scales:
      raise ValueError(f'config.data.gdsr_scale={scale}: must be {", ".join(map(str, self.scales[:-1]))} or '
                       f'{self.scales[-1]}.')
    if config.patch_size % scale:
      raise ValueError(f'config.patch_size={config.patch_size} is not a multiple of the GDSR scale {scale}.')

  def spatial_keys(self, raw):
    return ['rgb', 'depth']

  def augment_modes(self):
    from data_pipelines import transforms  # pylint: disable=g-import-not-at-top
    return transforms.FLIP_MODES   # Train_NYU flips only

  def encode(self, raw, scale=None):
    """A depth as large as the guide is the ground truth: its low-resolution input is simulated (PIL bicubic down
    by `scale`, the official protocol) and it becomes the target. A smaller depth is the low-resolution input."""
    from data_pipelines import transforms  # pylint: disable=g-import-not-at-top
    rgb, depth = raw['rgb'], np.asarray(raw['depth'])
    if depth.ndim == 3:
      depth = depth[..., 0]
    if depth.shape == rgb.shape[:2]:
      return transforms.gdsr_example(rgb, depth, scale or self.scales[0])
    if depth.shape[0] > rgb.shape[0] or depth.shape[1] > rgb.shape[1]:
      raise ValueError(f'depth {depth.shape[0]}x{depth.shape[1]} is larger than the RGB guide '
                       f'{rgb.shape[0]}x{rgb.shape[1]}')
    d_n, lo, hi = transforms.minmax_normalize(depth)
    up = transforms.bicubic_up(d_n, rgb.shape[:2])
    return {'stream_0': transforms.imagenet_normalize(rgb), 'stream_1': up[..., None], 'depth_min': lo,
            'depth_max': hi}

  def border_crop(self, dataset):
    return NYU_BORDER_CROP if dataset.startswith('nyu') else 0

  def score(self, scene, output, modes, crop, no_reference=True):
    from mgdn_jax import metrics  # pylint: disable=g-import-not-at-top
    del no_reference
    if scene.target is None or scene.depth_range is None:
      raise ValueError(f'scene {scene.name}: GDSR evaluation needs the target depth and its depth_min/max')
    rmse = metrics.gdsr_rmse_cm(output, scene.target, *scene.depth_range, crop=crop)
    return {mode: {'rmse_cm': rmse} for mode in modes}

  def report_image(self, output):
    return np.round(np.clip(output[..., 0], 0, 1) * 65535.0).astype(np.uint16)

  def _viewable_input(self, k, stream):
    from data_pipelines import transforms  # pylint: disable=g-import-not-at-top
    return stream * transforms.IMAGENET_STD + transforms.IMAGENET_MEAN if k == 0 else stream

  @staticmethod
  def depth(output: np.ndarray, depth_range) -> np.ndarray:
    """(H, W, 1) normalised prediction → (H, W) depth in the input's units (clamped to [0, 1] first)."""
    lo, hi = depth_range
    return (np.clip(output[..., 0], 0., 1.) * (hi - lo) + lo).astype(np.float32)

  def write_output(self, path, output, *, bits, depth_range=None, depth_scale=1000., out_bits=None):
    from mgdn_jax import image_io  # pylint: disable=g-import-not-at-top
    del bits, out_bits
    image_io.write_depth(path, self.depth(output, depth_range), depth_scale)


_LDR_OUT = ('.png', '.tif', '.tiff', '.jpg', '.jpeg')
MEF = FusionTask('mef', 2, (3, 3), ('under-exposed', 'over-exposed'), 'tiny_fusion',
                 ('CE', 'MEF_SSIM', 'Qcb', 'VIF'), ('CE',), 'MEF_SSIM', eval_padding='official',
                 output_suffixes=_LDR_OUT, eval_modes=('rgb',))
# The paper does not say whether its MFF numbers are per channel or on rgb2gray images: both are reported.
MFF = FusionTask('mff', 2, (3, 3), ('focused on A', 'focused on B'), 'tiny_fusion',
                 ('Qabf', 'EN', 'PSNR_mefb', 'PSNR', 'SSIM'), (), 'Qabf', eval_padding='official',
                 output_suffixes=_LDR_OUT, eval_modes=('rgb', 'gray'))
# The official HDR validation runs 500×500 tiles without overlap.
HDR = HdrTask('hdr', 3, (6, 6, 6), ('under-exposed', 'reference', 'over-exposed'), 'tiny_hdr',
              ('psnr_mu', 'psnr_l', 'ssim_mu', 'ssim_l'), (), 'psnr_mu', eval_padding='reflect',
              output_suffixes=('.hdr', '.exr'), eval_tile=500, needs_exposures=True,
              official_gf_chans=60, output_label='fused (tonemapped)')
GDSR = GdsrTask('gdsr', 2, (3, 1), ('RGB guide', 'depth'), 'tiny_gdsr', ('rmse_cm',), ('rmse_cm',), 'rmse_cm',
                eval_padding='reflect', output_suffixes=('.npy', '.png', '.tif', '.tiff'),
                guided_depth=True, extra_input_suffixes=('.npy',), output_label='super-resolved depth')
_TASKS = {t.name: t for t in (MEF, MFF, HDR, GDSR)}
NAMES = tuple(_TASKS)     # the one list of task names


def get(name: str) -> Task:
  """The task called `name`; a one-line error naming the known ones otherwise."""
  try:
    return _TASKS[name]
  except KeyError:
    raise ValueError(f'unknown task {name!r}: expected one of {NAMES}') from None


def lower_is_better(metric: str) -> bool:
  return any(metric in t.lower_is_better for t in _TASKS.values())
