"""The one evaluation path: a model (and, for MEF/MFF, other methods' outputs) on test scenes, scored by the task.

Training-time evaluation (`train.train_and_evaluate`), `main.py --mode=eval` (`train.evaluate_workdir`) and
`python -m mgdn_jax.evaluate` all call `evaluate_model` / `evaluate_scenes` with a `Protocol` and report the same
scalars under the same names (`scalars`): '<dataset>/<metric>' for the model in the task's main mode (e.g.
'mefb/MEF_SSIM', 'kalantari/psnr_mu', 'mgdn_demo/mef/PSNR_gt'), '<dataset>/gray/<metric>' for MFF's rgb2gray rows,
and '<dataset>/<method>/<mode>/<metric>' for other methods.
"""
import dataclasses
import itertools
import json
import logging
import os
import pathlib
from typing import Any, Iterable, Mapping

import numpy as np

from mgdn_jax import tasks

MODEL_METHOD = 'MGDN'
SUMMARY_FILE = 'eval_summary.json'
_MAIN_MODES = ('-', 'rgb')

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Protocol:
  """How the model is run and scored on one test set.

  padding: 'official' (MEF/MFF scripts: symmetric to the next multiple of 8) | 'reflect' | 'none'.
  tile, overlap: run on tile×tile tiles (HDR's official protocol: 500, no overlap). None: the whole image, never
    tiled automatically, so the numbers do not depend on the memory free at the time.
  crop: border pixels dropped before the GDSR RMSE (6 on NYU-v2).
  modes: MEF/MFF metric modes, 'rgb' (per channel) and/or 'gray' (rgb2gray); '-' for HDR / GDSR.
  max_examples: score only the first N images (0: all, the official protocol).
  no_reference: MEF/MFF: compute the (slow) no-reference fusion metrics; without them only the metrics against a
    ground truth are reported, under the same names, so they agree with a full evaluation.
  """
  padding: str
  tile: int | None = None
  overlap: int = 0
  crop: int = 0
  modes: tuple[str, ...] = ('-',)
  max_examples: int = 0
  no_reference: bool = True

  @classmethod
  def official(cls, task: str, dataset: str) -> 'Protocol':
    """The official evaluation of `task` on `dataset` ('name[/config]')."""
    t = tasks.get(task)
    return cls(padding=t.eval_padding, tile=t.eval_tile, crop=t.border_crop(dataset), modes=t.eval_modes)

  @classmethod
  def from_config(cls, config, dataset: str) -> 'Protocol':
    """The official protocol limited as the config asks (eval_max_examples, no_reference_metrics)."""
    return cls.official(config.task, dataset).replace(
        max_examples=int(config.get('eval_max_examples', 0) or 0),
        no_reference=bool(config.get('no_reference_metrics', True)))

  def replace(self, **changes) -> 'Protocol':
    """A copy with the given fields changed; None leaves a field as it is (unset command-line flags)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if 'modes' in changes:
      changes['modes'] = tuple(changes['modes']) or self.modes
    if changes.get('tile') == 0:
      changes['tile'] = None
    return dataclasses.replace(self, **changes)

  def check(self, task: str) -> None:
    from mgdn_jax import inference  # pylint: disable=g-import-not-at-top
    if self.padding not in inference.PADDINGS:
      raise ValueError(f'unknown padding {self.padding!r}: expected one of {inference.PADDINGS}')
    allowed = {'rgb', 'gray'} if tasks.get(task).is_fusion else {'-'}
    if not set(self.modes) <= allowed:
      raise ValueError(f'unknown modes {sorted(set(self.modes) - allowed)}: expected '
                       f'{" and/or ".join(sorted(allowed))}')


@dataclasses.dataclass(frozen=True)
class Comparisons:
  """Other methods scored beside the model (MEF/MFF only).

  fused_dirs: 'NAME=DIR' or 'DIR' folders of fused images, files named by `fused_pattern` from {scene} and
    {method} ('{scene}_{method}' for MEFB's output folder). baselines: 'average', 'mertens'.
  jpeg_quality: also score the model's and baselines' outputs re-encoded as JPEG (rows '<method>+jpeg<q>').
  """
  fused_dirs: tuple[str, ...] = ()
  fused_pattern: str = '{scene}'
  baselines: tuple[str, ...] = ()
  jpeg_quality: int | None = None

  def __bool__(self) -> bool:
    return bool(self.fused_dirs or self.baselines)

  def folders(self) -> list:
    """[(method name, metrics.folders.FusedFolder)]; a bare DIR is named after the folder."""
    from mgdn_jax.metrics import folders  # pylint: disable=g-import-not-at-top
    out = []
    for spec in self.fused_dirs:
      name, _, folder = str(spec).rpartition('=')
      name = name or pathlib.Path(folder).name
      out.append((name, folders.FusedFolder(folder, self.fused_pattern, name)))
    return out

  def check(self, task: str) -> 'Comparisons':
    """Validated; 'mertens' dropped (with a warning) when OpenCV is missing."""
    from mgdn_jax.metrics import baselines as baselines_lib  # pylint: disable=g-import-not-at-top
    t = tasks.get(task)
    if self and not t.is_fusion:
      raise ValueError(f'--fused_dir and --baselines are for the fusion tasks '
                       f'{tuple(n for n in tasks.NAMES if tasks.get(n).is_fusion)}, not {task!r}')
    for kind in self.baselines:
      if kind not in baselines_lib.BASELINES:
        raise ValueError(f'unknown baseline {kind!r}: expected one of {baselines_lib.BASELINES}')
    if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
      raise ValueError(f'jpeg_quality must be in 1..100, got {self.jpeg_quality}')
    if 'mertens' in self.baselines and baselines_lib.import_cv2() is None:
      log.warning('OpenCV is not installed: skipping the mertens baseline')
      return dataclasses.replace(self, baselines=tuple(b for b in self.baselines if b != 'mertens'))
    return self


@dataclasses.dataclass
class Evaluation:
  """One test set's results (`metrics.report.Results`) and the display panels of its first images."""
  dataset: str
  results: Any
  panels: list

  def scalars(self) -> dict[str, float]:
    """Means under the names every caller reports (module docstring)."""
    out = {}
    for (method, mode), means in self.results.means().items():
      if method == MODEL_METHOD:
        prefix = [self.dataset] + ([] if mode in _MAIN_MODES else [mode])
      else:
        prefix = [self.dataset, method, mode]
      out.update({'/'.join(prefix + [k]): float(v) for k, v in means.items() if k != 'images'})
    return out


def safe_name(name: str) -> str:
  return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)


def _save(path: pathlib.Path, image: np.ndarray) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path)


def evaluate_scenes(task: str, scenes: Iterable, protocol: Protocol, *, dataset: str, model=None,
                    comparisons: Comparisons = Comparisons(), output_dir=None, save_images: bool = True,
                    num_panels: int = 0, progress: bool = False, total: int | None = None,
                    meta: Mapping | None = None) -> Evaluation:
  """Scores the model (if given), each fused folder and each baseline on every scene (`metrics.scenes.Scene`).

  Writes the report (table.md, results.csv / .json) and the new outputs (<method>/<scene>.png) to `output_dir`
  when given; keeps the display panels of the model's first `num_panels` outputs.
  """
  import tqdm  # pylint: disable=g-import-not-at-top
  from mgdn_jax.metrics import baselines as baselines_lib  # pylint: disable=g-import-not-at-top
  from mgdn_jax.metrics import report  # pylint: disable=g-import-not-at-top
  t = tasks.get(task)
  protocol.check(task)
  comparisons = comparisons.check(task)
  if model is None and not comparisons:
    raise ValueError('nothing to evaluate: give a checkpoint, --fused_dir or --baselines')
  fused_folders = comparisons.folders()
  out_dir = pathlib.Path(output_dir) if output_dir is not None else None
  results = report.Results(task, dataset, {**(meta or {}), **dataclasses.asdict(protocol)})
  if protocol.max_examples:
    scenes = itertools.islice(scenes, protocol.max_examples)
    total = min(total, protocol.max_examples) if total else protocol.max_examples
  panels = []
  for scene in tqdm.tqdm(scenes, desc=f'{task} {dataset}', unit='image', total=total, disable=not progress):
    outputs = []
    if model is not None:
      from mgdn_jax import inference  # pylint: disable=g-import-not-at-top
      pred = inference.fuse(model, scene.streams, padding=protocol.padding, tile=protocol.tile,
                            overlap=protocol.overlap, auto=False)
      if not np.all(np.isfinite(pred)):
        raise FloatingPointError(f'eval on {dataset}: the model produced non-finite values for {scene.name}.')
      if len(panels) < num_panels:
        panels.append(t.panel(scene.streams, pred, scene.target))
      outputs.append((MODEL_METHOD, t.model_output(pred), True))
    for name, folder in fused_folders:
      outputs.append((name, folder.read(scene.name, scene.sources[0].shape), False))
    for kind in comparisons.baselines:
      outputs.append((kind, baselines_lib.baseline(kind, scene.sources), True))
    if comparisons.jpeg_quality:
      q = comparisons.jpeg_quality
      outputs += [(f'{name}+jpeg{q}', baselines_lib.jpeg_roundtrip(output, q), False)
                  for name, output, is_new in outputs if is_new]
    for name, output, is_new in outputs:
      for mode, values in t.score(scene, output, protocol.modes, protocol.crop, protocol.no_reference).items():
        results.add(name, mode, scene.name, values)
      if save_images and is_new and out_dir is not None:
        _save(out_dir / safe_name(name) / f'{safe_name(scene.name)}.png', t.report_image(output))
  if not results.rows:
    raise ValueError(f'{dataset}: no scenes to evaluate')
  if not any(r.values for r in results.rows):
    raise ValueError(f'{dataset}: no metric to compute (no ground truth, and the protocol skips the no-reference '
                     'metrics: set no_reference_metrics=True)')
  for name, folder in fused_folders:
    if folder.unused() and not protocol.max_examples:
      log.warning('%s: %d fused images match no scene: %s', name, len(folder.unused()),
                  ', '.join(folder.unused()[:5]))
  if out_dir is not None:
    results.write(out_dir)
  return Evaluation(dataset, results, panels)


def dataset_name(spec: str) -> str:
  """'mefb:test' → 'mefb'; 'mgdn_demo/mef:test' → 'mgdn_demo/mef'."""
  return spec.split(':')[0]


def evaluate_model(model, config, *, datasets: Iterable[str] | None = None, overrides: Mapping | None = None,
                   comparisons: Comparisons = Comparisons(), output_dir=None, manual_dir=None, data_dir=None,
                   save_images: bool = True, num_panels: int = 0, progress: bool = False,
                   meta: Mapping | None = None) -> dict[str, Evaluation]:
  """`model` on each test set ('name[:split]'; default: config.data.eval_datasets) under the config's protocol
  (`Protocol.from_config`, with `overrides` applied). `model` is anything `inference.fuse` runs.

  Returns {dataset spec: Evaluation}. With several test sets each report goes to `output_dir/<dataset>`.
  """
  from mgdn_jax.metrics import scenes as scenes_lib  # pylint: disable=g-import-not-at-top
  specs = [scenes_lib.dataset_spec(d) for d in datasets] if datasets else list(config.data.eval_datasets)
  if not specs:
    raise ValueError('no dataset given and config.data.eval_datasets is empty')
  out = {}
  for spec in specs:
    name = dataset_name(spec)
    protocol = Protocol.from_config(config, name).replace(**(overrides or {}))
    folder = None
    if output_dir is not None:
      folder = pathlib.Path(output_dir) / safe_name(name) if len(specs) > 1 else pathlib.Path(output_dir)
    scenes = scenes_lib.dataset_scenes(config.task, spec, config, manual_dir, data_dir)
    total = scenes_lib.dataset_size(spec, config, manual_dir, data_dir) if progress else None
    out[spec] = evaluate_scenes(config.task, scenes, protocol, dataset=name, model=model, comparisons=comparisons,
                                output_dir=folder, save_images=save_images, num_panels=num_panels,
                                progress=progress, total=total, meta=meta)
  return out


def scalars(evaluations: Mapping[str, Evaluation]) -> dict[str, float]:
  """The scalars of several test sets in one dict (names in the module docstring)."""
  return {k: v for e in evaluations.values() for k, v in e.scalars().items()}


def format_scalars(values: Mapping[str, float]) -> str:
  """One 'name value' line per scalar (full precision), sorted: what every evaluation entry point prints."""
  return '\n'.join(f'{k} {v!r}' for k, v in sorted(values.items()))


def write_summary(workdir: str, step: int, values: Mapping[str, float], weights: str) -> str:
  """`<workdir>/eval_summary.json` (latest evaluation: step, weights used, scalars); process 0 only."""
  import jax  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, SUMMARY_FILE)
  if jax.process_index() == 0:
    with open(path + '.tmp', 'w') as f:
      json.dump({'step': step, 'weights': weights, 'metrics': dict(values)}, f, indent=2, sort_keys=True)
    os.replace(path + '.tmp', path)
  return path
