"""Evaluates a checkpoint, or other methods' fused images, with the paper's metrics; writes tables and images.

  # MGDN checkpoint on a prepared test set (tfds builders of data_pipelines: lytro, mffw, mefb, kalantari, …):
  python -m mgdn_jax.evaluate --task=mff --checkpoint=DIR --dataset=lytro --manual_dir=../shared/data
  # Another method's results (file names = scene names), sources from a folder (A/ + B/, or MEFB layout):
  python -m mgdn_jax.evaluate --task=mff --fused_dir=U2Fusion=results/u2f --sources_dir=../shared/data/lytro
  # MEFB's output folder (all methods side by side as <scene>_<method>.<ext>), two methods in one table:
  python -m mgdn_jax.evaluate --task=mef --sources_dir=../shared/data/mefb --fused_pattern='{scene}_{method}' \
      --fused_dir=U2Fusion=MEFB/output/fused_images --fused_dir=DEM=MEFB/output/fused_images
  # Both at once, plus the plain-average baseline (and OpenCV Mertens for MEF when cv2 is installed):
  python -m mgdn_jax.evaluate --task=mef --checkpoint=DIR --dataset=mefb --fused_dir=OTHER --baselines=average

Outputs in --output_dir: table.md (means, also printed), results.csv and results.json (per image and mean) and
the fused images (<method>/<scene>.png; HDR as mu-law tonemapped PNG, GDSR as 16-bit PNG of the normalised
depth).  MEF/MFF metrics are computed on exact uint8 outputs (clamp, x255, round: the official quantisation);
MFF is reported both per channel ('rgb') and on rgb2gray ('gray'), since the paper does not say which it used.
"""
import argparse
import itertools
import logging
import os
import pathlib
import sys
from typing import Iterator, Sequence

import numpy as np
from PIL import Image
import tqdm

from mgdn_jax import platform
from mgdn_jax import metrics
from mgdn_jax.metrics import baselines as baselines_lib
from mgdn_jax.metrics import folders
from mgdn_jax.metrics import report
from mgdn_jax.metrics import scenes as scenes_lib

TASKS = ('mef', 'mff', 'hdr', 'gdsr')
FUSION_TASKS = scenes_lib.FUSION_TASKS
BASELINES = baselines_lib.BASELINES
# The official protocols: MEF/MFF scripts pad to the next multiple of 8 (edge-repeating flip); the HDR validation
# runs 500x500 tiles without overlap; GDSR feeds the whole image (the model pads to its window itself).
DEFAULT_PADDING = {'mef': 'official', 'mff': 'official', 'hdr': 'reflect', 'gdsr': 'reflect'}
DEFAULT_TILE = {'hdr': 500}
NYU_CROP = 6

log = logging.getLogger(__name__)


def default_modes(task: str) -> tuple[str, ...]:
  return {'mff': ('rgb', 'gray'), 'mef': ('rgb',)}.get(task, ('-',))


def _safe(name: str) -> str:
  return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in name)


def _save(path: pathlib.Path, task: str, image: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  if task == 'hdr':
    image = metrics.quantize_uint8(metrics.mu_tonemap(np.clip(image, 0, 1)))
  elif task == 'gdsr':
    image = np.round(np.clip(image[..., 0], 0, 1) * 65535.0).astype(np.uint16)
  Image.fromarray(image).save(path)


def _score(results: report.Results, task: str, method: str, scene: scenes_lib.Scene, output, modes,
           crop: int) -> None:
  """Adds the rows of one method's output on one scene (output: uint8 for MEF/MFF, float (H, W, C) otherwise)."""
  if task in FUSION_TASKS:
    extra = {}
    if scene.target is not None:
      pred = output.astype(np.float32) / np.float32(255)
      extra = {'PSNR_gt': metrics.psnr(pred, scene.target), 'SSIM_gt': metrics.ssim(pred, scene.target)}
    for mode in modes:
      values = metrics.evaluate_fusion(scene.sources, output, task, gray=(mode == 'gray'))
      results.add(method, mode, scene.name, {**values, **extra})
  elif task == 'hdr':
    if scene.target is None:
      raise ValueError(f'scene {scene.name}: HDR evaluation needs a ground truth')
    results.add(method, '-', scene.name, metrics.hdr_metrics(np.clip(output, 0, 1), scene.target))
  else:
    if scene.target is None or scene.depth_range is None:
      raise ValueError(f'scene {scene.name}: GDSR evaluation needs the target depth and its depth_min/max')
    rmse = metrics.gdsr_rmse_cm(output, scene.target, *scene.depth_range, crop=crop)
    results.add(method, '-', scene.name, {'rmse_cm': rmse})


def _parse_fused_dirs(fused_dirs, pattern: str = '{scene}') -> list[tuple[str, folders.FusedFolder]]:
  """'NAME=DIR' or 'DIR' (the method is then named after the folder); files named by `pattern`."""
  out = []
  for spec in fused_dirs or ():
    name, _, folder = str(spec).rpartition('=')
    name = name or pathlib.Path(folder).name
    out.append((name, folders.FusedFolder(folder, pattern, name)))
  return out


def _check_baselines(baselines) -> None:
  for kind in baselines:
    if kind not in BASELINES:
      raise ValueError(f'unknown baseline {kind!r}: expected one of {BASELINES}')


def run_evaluation(task: str, scenes: Iterator[scenes_lib.Scene], *, dataset: str, output_dir=None, model=None,
                   method_name: str = 'MGDN', fused_dirs=(), baselines=(), modes=None, padding=None, tile=None,
                   crop: int | None = None, save_images: bool = True, max_examples: int | None = None,
                   jpeg_quality: int | None = None, fused_pattern: str = '{scene}', progress: bool = True,
                   total: int | None = None, meta: dict | None = None, echo: bool = True) -> report.Results:
  """Scores the model (if given), each fused folder and each baseline on every scene; writes the report files.

  `jpeg_quality` adds rows '<method>+jpeg<q>' for the model and baseline outputs re-encoded as JPEG (MEF/MFF).
  `fused_pattern` names the fused files from {scene} and {method} (default '{scene}'; MEFB: '{scene}_{method}').
  """
  if task not in TASKS:
    raise ValueError(f'unknown task {task!r}: expected one of {TASKS}')
  if model is None and not fused_dirs and not baselines:
    raise ValueError('nothing to evaluate: give a checkpoint, --fused_dir or --baselines')
  if task not in FUSION_TASKS and (fused_dirs or baselines):
    raise ValueError(f'--fused_dir and --baselines are for the fusion tasks {FUSION_TASKS}, not {task!r}')
  _check_baselines(baselines)
  if 'mertens' in baselines and baselines_lib.import_cv2() is None:
    log.warning('OpenCV is not installed: skipping the mertens baseline')
    baselines = tuple(b for b in baselines if b != 'mertens')
  modes = tuple(modes or default_modes(task))
  if task in FUSION_TASKS and not set(modes) <= {'rgb', 'gray'}:
    raise ValueError(f'unknown modes {sorted(set(modes) - {"rgb", "gray"})}: expected rgb and/or gray')
  padding = padding or DEFAULT_PADDING[task]
  tile = DEFAULT_TILE.get(task) if tile is None else (tile or None)
  crop = (NYU_CROP if dataset.startswith('nyu') else 0) if crop is None else crop
  fused_folders = _parse_fused_dirs(fused_dirs, fused_pattern)
  out_dir = pathlib.Path(output_dir) if output_dir is not None else None
  results = report.Results(task, dataset, {**(meta or {}), 'padding': padding, 'tile': tile, 'crop': crop})
  if jpeg_quality is not None and not 1 <= jpeg_quality <= 100:
    raise ValueError(f'jpeg_quality must be in 1..100, got {jpeg_quality}')
  if max_examples:
    scenes = itertools.islice(scenes, max_examples)
    total = min(total, max_examples) if total else max_examples
  for scene in tqdm.tqdm(scenes, desc=f'{task} {dataset}', unit='image', total=total, disable=not progress):
    outputs = []
    if model is not None:
      from mgdn_jax import inference  # pylint: disable=g-import-not-at-top
      pred = inference.fuse(model, scene.streams, padding=padding, tile=tile, overlap=0 if tile else 32)
      outputs.append((method_name, metrics.quantize_uint8(pred) if task in FUSION_TASKS else pred, True))
    for name, folder in fused_folders:
      outputs.append((name, folder.read(scene.name, scene.sources[0].shape), False))
    for kind in baselines:
      outputs.append((kind, baselines_lib.baseline(kind, scene.sources), True))
    if jpeg_quality and task in FUSION_TASKS:
      outputs += [(f'{name}+jpeg{jpeg_quality}', baselines_lib.jpeg_roundtrip(output, jpeg_quality), False)
                  for name, output, is_new in outputs if is_new]
    for name, output, is_new in outputs:
      _score(results, task, name, scene, output, modes, crop)
      if save_images and is_new and out_dir is not None:
        _save(out_dir / _safe(name) / f'{_safe(scene.name)}.png', task, output)
  if not results.rows:
    raise ValueError(f'{dataset}: no scenes to evaluate')
  for name, folder in fused_folders:
    if folder.unused() and not max_examples:
      log.warning('%s: %d fused images match no scene: %s', name, len(folder.unused()),
                  ', '.join(folder.unused()[:5]))
  if out_dir is not None:
    results.write(out_dir)
  if echo:
    print(results.markdown(), flush=True)
  return results


def evaluate_checkpoint(checkpoint=None, *, dataset: str | None = None, output_dir=None, model=None, config=None,
                        step: int | None = None, manual_dir=None, data_dir=None, fused_dirs=(), baselines=(),
                        modes=None, padding: str | None = None, tile: int | None = None,
                        save_images: bool = True, max_examples: int | None = None,
                        jpeg_quality: int | None = None, fused_pattern: str = '{scene}',
                        progress: bool = True) -> dict[str, dict]:
  """Evaluates a checkpoint (or an already loaded `model` + `config`) on one or all of its test sets.

  Args:
    checkpoint: exported model dir or training workdir (`checkpoint.load_model`); ignored when `model` is given.
    dataset: 'name[:split]' (split defaults to test); None = every entry of config.data.eval_datasets.
    output_dir: report and image folder (one sub-folder per dataset when several); None = write nothing.
    model, config: a loaded model and its full config instead of `checkpoint`.
    step: workdir only: evaluate this step instead of the best / latest.
    manual_dir, data_dir: override config.data.manual_dir / data_dir for preparing and reading the datasets.
    fused_dirs, baselines: extra rows (MEF/MFF): other methods' folders ('NAME=DIR') and 'average' / 'mertens';
      fused_pattern names their files ('{scene}' by default, '{scene}_{method}' for MEFB's output folder).
    modes: ('rgb', 'gray') subsets for MEF/MFF (default: rgb for MEF, both for MFF).
    padding, tile: inference protocol (default: the official one per task, see DEFAULT_PADDING / DEFAULT_TILE).
    save_images, max_examples, progress: write the outputs; evaluate only the first N images; tqdm bar.
    jpeg_quality: also score the outputs re-encoded as JPEG (the official scripts save Lytro results as q95).
  Returns:
    {dataset spec: {'<method>/<mode>': {metric: mean, 'images': n}}}.
  """
  if model is None:
    if checkpoint is None:
      raise ValueError('evaluate_checkpoint needs a checkpoint directory or a loaded model and config')
    from mgdn_jax import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
    model, config = checkpoint_lib.load_model(str(checkpoint), step=step)
  if config is None:
    raise ValueError('evaluate_checkpoint: a model was given without its config')
  task = config.task
  specs = [scenes_lib.dataset_spec(dataset)] if dataset else list(config.data.eval_datasets)
  if not specs:
    raise ValueError('no dataset given and config.data.eval_datasets is empty')
  summaries = {}
  for spec in specs:
    name = spec.split(':')[0]
    out = None
    if output_dir is not None:
      out = pathlib.Path(output_dir) / _safe(name) if len(specs) > 1 else pathlib.Path(output_dir)
    scenes = scenes_lib.dataset_scenes(task, spec, config, manual_dir, data_dir)
    total = scenes_lib.dataset_size(spec, config, manual_dir, data_dir)
    results = run_evaluation(task, scenes, dataset=name, output_dir=out, model=model, fused_dirs=fused_dirs,
                             baselines=baselines, modes=modes, padding=padding, tile=tile,
                             save_images=save_images, max_examples=max_examples, progress=progress,
                             jpeg_quality=jpeg_quality, fused_pattern=fused_pattern, total=total,
                             meta={'checkpoint': None if checkpoint is None else str(checkpoint), 'step': step})
    summaries[spec] = results.summary()
  return summaries


def evaluate_fused_dirs(task: str, fused_dirs, *, dataset: str | None = None, sources_dir=None, output_dir=None,
                        manual_dir=None, data_dir=None, baselines=(), modes=None, max_examples=None,
                        jpeg_quality: int | None = None, fused_pattern: str = '{scene}',
                        progress: bool = True) -> dict:
  """Scores other methods' fused images (MEF/MFF) against sources from a tfds test set or a folder."""
  if task not in FUSION_TASKS:
    raise ValueError(f'--fused_dir scores the fusion tasks {FUSION_TASKS}, not {task!r}')
  _check_baselines(baselines)
  if (dataset is None) == (sources_dir is None):
    raise ValueError('give exactly one of --dataset and --sources_dir for the source images')
  if dataset is not None:
    spec = scenes_lib.dataset_spec(dataset)
    name, scenes = spec.split(':')[0], scenes_lib.dataset_scenes(task, spec, None, manual_dir, data_dir)
    total = scenes_lib.dataset_size(spec, None, manual_dir, data_dir)
  else:
    name, scenes = pathlib.Path(sources_dir).name, scenes_lib.folder_scenes(sources_dir)
    # Scene names are known up front here: report a missing fused image before spending time on the others.
    names = [n for n, _, _ in folders.source_pairs(sources_dir)][:max_examples or None]
    total = len(names)
    for _, folder in _parse_fused_dirs(fused_dirs, fused_pattern):
      for scene in names:
        folder.path(scene)
  results = run_evaluation(task, scenes, dataset=name, output_dir=output_dir, fused_dirs=fused_dirs,
                           baselines=baselines, modes=modes, max_examples=max_examples, progress=progress,
                           jpeg_quality=jpeg_quality, fused_pattern=fused_pattern, total=total)
  return results.summary()


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog='python -m mgdn_jax.evaluate', description=__doc__.splitlines()[0])
  p.add_argument('--task', choices=TASKS, help='default: the checkpoint config\'s task (required otherwise)')
  p.add_argument('--checkpoint', help='exported model dir or training workdir')
  p.add_argument('--step', type=int, help='workdir only: this checkpoint step instead of the best / latest')
  p.add_argument('--dataset', help='tfds test set name[/config][:split] (default split test), e.g. lytro, mefb')
  p.add_argument('--sources_dir', help='MEF/MFF source folder (A/ + B/, under/ + over/, or <scene>/*_A.*, *_B.*)')
  p.add_argument('--fused_dir', action='append', default=[], help='NAME=DIR or DIR of fused images named after '
                 'the scenes (repeatable)')
  p.add_argument('--fused_pattern', default='{scene}', help="fused file stem from {scene} and {method}, e.g. "
                 "'{scene}_{method}' for MEFB's output/fused_images (default '{scene}')")
  p.add_argument('--baselines', default='', help='comma list of average,mertens (MEF/MFF)')
  p.add_argument('--modes', default='', help='comma list of rgb,gray (MEF/MFF; default rgb for MEF, both for MFF)')
  p.add_argument('--output_dir', default=None, help='default: eval_results/<dataset>')
  p.add_argument('--manual_dir', help='root holding the raw datasets (e.g. ../shared/data) for preparing them')
  p.add_argument('--data_dir', help='tfds data_dir')
  p.add_argument('--padding', choices=('official', 'reflect', 'none'), help='default: the official one per task')
  p.add_argument('--tile', type=int, help='tile size (0 = whole image; default 500 for HDR, else whole image)')
  p.add_argument('--max_examples', type=int, help='evaluate only the first N scenes')
  p.add_argument('--no_images', action='store_true', help='do not save the output images')
  p.add_argument('--jpeg_quality', type=int, help='also score the outputs re-encoded as JPEG at this quality '
                 '(95: how the official scripts save Lytro results)')
  return p


def _check_output_dir(path) -> None:
  """Fails before any compute when the report folder cannot be made: its nearest existing ancestor must be a
  writable folder."""
  path = pathlib.Path(path).absolute()
  existing = next(p for p in (path, *path.parents) if p.exists())
  if not existing.is_dir():
    raise ValueError(f'--output_dir {path}: {existing} is a file, not a folder')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError(f'--output_dir {path}: folder {existing} is not writable')


def main(argv: Sequence[str] | None = None) -> int:
  logging.basicConfig(level=logging.INFO, format='%(levelname)s %(message)s')
  args = _parser().parse_args(argv)
  split = lambda s: tuple(x for x in s.split(',') if x)  # noqa: E731
  try:
    _check_output_dir(args.output_dir or 'eval_results')
    if args.checkpoint:
      from mgdn_jax import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
      model, config = checkpoint_lib.load_model(args.checkpoint, step=args.step)
      if args.task and args.task != config.task:
        raise ValueError(f'--task={args.task} but the checkpoint {args.checkpoint} is a {config.task} model')
      if args.sources_dir:
        scenes = scenes_lib.folder_scenes(args.sources_dir)
        name = pathlib.Path(args.sources_dir).name
        run_evaluation(config.task, scenes, dataset=name, model=model, fused_dirs=args.fused_dir,
                       baselines=split(args.baselines), modes=split(args.modes), padding=args.padding,
                       tile=args.tile, save_images=not args.no_images, max_examples=args.max_examples,
                       jpeg_quality=args.jpeg_quality, fused_pattern=args.fused_pattern,
                       output_dir=args.output_dir or pathlib.Path('eval_results') / _safe(name))
      else:
        out = args.output_dir or pathlib.Path('eval_results') / _safe((args.dataset or config.task).split(':')[0])
        evaluate_checkpoint(args.checkpoint, dataset=args.dataset, output_dir=out, model=model, config=config,
                            step=args.step, manual_dir=args.manual_dir, data_dir=args.data_dir,
                            fused_dirs=args.fused_dir, baselines=split(args.baselines), modes=split(args.modes),
                            padding=args.padding, tile=args.tile, save_images=not args.no_images,
                            max_examples=args.max_examples, jpeg_quality=args.jpeg_quality,
                            fused_pattern=args.fused_pattern)
    else:
      if not args.task:
        raise ValueError('--task is required without --checkpoint')
      if not args.fused_dir and not args.baselines:
        raise ValueError('give --checkpoint, --fused_dir or --baselines')
      name = args.dataset or pathlib.Path(args.sources_dir or 'sources').name
      evaluate_fused_dirs(args.task, args.fused_dir, dataset=args.dataset, sources_dir=args.sources_dir,
                          output_dir=args.output_dir or pathlib.Path('eval_results') / _safe(name.split(':')[0]),
                          manual_dir=args.manual_dir, data_dir=args.data_dir, baselines=split(args.baselines),
                          modes=split(args.modes), max_examples=args.max_examples,
                          jpeg_quality=args.jpeg_quality, fused_pattern=args.fused_pattern)
  except (ValueError, FileNotFoundError, ImportError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  platform.tune_process()
  sys.exit(main())
