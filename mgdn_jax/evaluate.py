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
import logging
import os
import pathlib
import sys
import types
from typing import Sequence

from absl import flags

from mgdn_jax import cli
from mgdn_jax import evaluation
from mgdn_jax import platform
from mgdn_jax import run_config
from mgdn_jax import tasks
from mgdn_jax.metrics import folders
from mgdn_jax.metrics import scenes as scenes_lib

log = logging.getLogger(__name__)


def evaluate_checkpoint(checkpoint=None, *, dataset: str | None = None, model=None, config=None,
                        step: int | None = None, overrides=None, comparisons=evaluation.Comparisons(),
                        output_dir=None, manual_dir=None, data_dir=None, save_images: bool = True,
                        progress: bool = True) -> dict[str, dict]:
  """Evaluates a checkpoint (or an already loaded `model` + `config`) on one or all of its test sets.

  Args:
    checkpoint: exported model dir or training workdir (`checkpoint.load_model`); ignored when `model` is given.
    dataset: 'name[:split]' (split defaults to test); None = every entry of config.data.eval_datasets.
    model, config: a loaded model and its full config instead of `checkpoint`.
    step: workdir only: evaluate this step instead of the best / latest.
    overrides: `evaluation.Protocol` fields replacing the config's protocol (padding, tile, modes, max_examples).
    comparisons: other methods scored beside the model (`evaluation.Comparisons`, MEF/MFF).
    output_dir: report and image folder (one sub-folder per dataset when several); None = write nothing.
    manual_dir, data_dir: override config.data.manual_dir / data_dir for preparing and reading the datasets.
    save_images, progress: write the outputs; tqdm bar.
  Returns:
    {dataset spec: {'<method>/<mode>': {metric: mean, 'images': n}}}; prints each table and the scalars.
  """
  if model is None:
    if checkpoint is None:
      raise ValueError('evaluate_checkpoint needs a checkpoint directory or a loaded model and config')
    from mgdn_jax import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
    model, config = checkpoint_lib.load_model(str(checkpoint), step=step)
  if config is None:
    raise ValueError('evaluate_checkpoint: a model was given without its config')
  evaluations = evaluation.evaluate_model(
      model, config, datasets=[dataset] if dataset else None, overrides=overrides, comparisons=comparisons,
      output_dir=output_dir, manual_dir=manual_dir, data_dir=data_dir, save_images=save_images, progress=progress,
      meta={'checkpoint': None if checkpoint is None else str(checkpoint), 'step': step})
  for e in evaluations.values():
    print(e.results.markdown(), flush=True)
  print(evaluation.format_scalars(evaluation.scalars(evaluations)), flush=True)
  return {spec: e.results.summary() for spec, e in evaluations.items()}


def evaluate_fused_dirs(task: str, *, comparisons: evaluation.Comparisons, dataset: str | None = None,
                        sources_dir=None, overrides=None, output_dir=None, manual_dir=None, data_dir=None,
                        progress: bool = True) -> dict:
  """Scores other methods' fused images (MEF/MFF) against sources from a tfds test set or a folder."""
  t = tasks.get(task)
  if not t.is_fusion:
    raise ValueError(f'--fused_dir scores the fusion tasks, not {task!r}')
  comparisons.check(task)
  if (dataset is None) == (sources_dir is None):
    raise ValueError('give exactly one of --dataset and --sources_dir for the source images')
  if dataset is not None:
    spec = scenes_lib.dataset_spec(dataset)
    name, scenes = evaluation.dataset_name(spec), scenes_lib.dataset_scenes(task, spec, None, manual_dir, data_dir)
    total = scenes_lib.dataset_size(spec, None, manual_dir, data_dir)
  else:
    name, scenes = pathlib.Path(sources_dir).name, scenes_lib.folder_scenes(sources_dir)
    # Scene names are known up front here: report a missing fused image before spending time on the others.
    max_examples = (overrides or {}).get('max_examples')
    names = [n for n, _, _ in folders.source_pairs(sources_dir)][:max_examples or None]
    total = len(names)
    for _, folder in comparisons.folders():
      for scene in names:
        folder.path(scene)
  protocol = evaluation.Protocol.official(task, name).replace(**(overrides or {}))
  result = evaluation.evaluate_scenes(task, scenes, protocol, dataset=name, comparisons=comparisons,
                                      output_dir=output_dir, progress=progress, total=total)
  print(result.results.markdown(), flush=True)
  return result.results.summary()


PROG = 'evaluate'


def define_flags(f: flags.FlagValues) -> None:
  """evaluate's flags on `f` (cli.parse)."""
  flags.DEFINE_enum('task', None, tasks.NAMES, "default: the checkpoint config's task (required otherwise)",
                    flag_values=f)
  flags.DEFINE_string('checkpoint', None, 'weights file (.npz) or shipped name (mgdn-jax/<name>), exported model '
                      'dir or training workdir', flag_values=f)
  flags.DEFINE_integer('step', None, 'workdir only: this checkpoint step instead of the best / latest',
                       lower_bound=0, flag_values=f)
  flags.DEFINE_string('dataset', None, 'tfds test set name[/config][:split] (default split test), e.g. lytro, mefb',
                      flag_values=f)
  flags.DEFINE_string('sources_dir', None, 'MEF/MFF source folder (A/ + B/, under/ + over/, or <scene>/*_A.*, '
                      '*_B.*)', flag_values=f)
  flags.DEFINE_multi_string('fused_dir', [], 'NAME=DIR or DIR of fused images named after the scenes (repeatable)',
                            flag_values=f)
  flags.DEFINE_string('fused_pattern', '{scene}', "fused file stem from {scene} and {method}, e.g. "
                      "'{scene}_{method}' for MEFB's output/fused_images", flag_values=f)
  flags.DEFINE_list('baselines', [], 'comma list of average,mertens (MEF/MFF)', flag_values=f)
  flags.DEFINE_list('modes', [], 'comma list of rgb,gray (MEF/MFF; default rgb for MEF, both for MFF)',
                    flag_values=f)
  flags.DEFINE_string('output_dir', None, 'report folder (default: <checkpoint folder>/eval/<dataset> for a '
                      'workdir or exported model; required otherwise)', flag_values=f)
  flags.DEFINE_string('manual_dir', None, 'root holding the raw datasets (e.g. ../shared/data) for preparing them',
                      flag_values=f)
  flags.DEFINE_string('data_dir', None, 'tfds data_dir', flag_values=f)
  flags.DEFINE_enum('padding', None, ['official', 'reflect', 'none'], 'default: the official one per task '
                    '(evaluation.Protocol)', flag_values=f)
  flags.DEFINE_integer('tile', None, 'tile size (0 = whole image; default 500 for HDR, else whole image)',
                       lower_bound=0, flag_values=f)
  flags.DEFINE_integer('max_examples', None, "evaluate only the first N scenes (default: the checkpoint config's "
                       'eval_max_examples, 0 = all)', lower_bound=0, flag_values=f)
  flags.DEFINE_bool('save_images', True, 'save the output images with the report (--nosave_images: tables only)',
                    flag_values=f)
  flags.DEFINE_integer('jpeg_quality', None, 'also score the outputs re-encoded as JPEG at this quality (95: how '
                       'the official scripts save Lytro results)', lower_bound=1, upper_bound=100, flag_values=f)


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
  values, _ = cli.parse(PROG, __doc__, define_flags, argv)
  args = types.SimpleNamespace(**{name: values[name].value for name in values})
  overrides = dict(padding=args.padding, tile=args.tile, modes=tuple(args.modes), max_examples=args.max_examples)
  comparisons = evaluation.Comparisons(tuple(args.fused_dir), args.fused_pattern, tuple(args.baselines),
                                       args.jpeg_quality)
  folder = args.checkpoint if args.checkpoint and os.path.isdir(args.checkpoint) else None

  def default_out(name: str) -> pathlib.Path | None:
    # Reports go where the user says or beside the checkpoint they evaluate, never into the working directory;
    # with neither, the table is printed and nothing is written.
    if folder is None:
      return None
    return pathlib.Path(folder) / 'eval' / evaluation.safe_name(name.split(':')[0])

  try:
    if args.output_dir:
      _check_output_dir(args.output_dir)
    if args.checkpoint:
      from mgdn_jax import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
      # A training workdir is evaluated with the weights its training evaluated (EMA unless the config says not).
      use_ema = run_config.read_config(folder).get('eval_use_ema', True) if folder else True
      model, config = checkpoint_lib.load_model(args.checkpoint, step=args.step, use_ema=use_ema)
      if args.task and args.task != config.task:
        raise ValueError(f'--task={args.task} but the checkpoint {args.checkpoint} is a {config.task} model')
      if args.sources_dir:
        name = pathlib.Path(args.sources_dir).name
        out = args.output_dir or default_out(name)
        protocol = evaluation.Protocol.official(config.task, name).replace(**overrides)
        result = evaluation.evaluate_scenes(
            config.task, scenes_lib.folder_scenes(args.sources_dir), protocol, dataset=name, model=model,
            comparisons=comparisons, output_dir=out, save_images=args.save_images, progress=True)
        print(result.results.markdown(), flush=True)
        print(evaluation.format_scalars(result.scalars()), flush=True)
      else:
        out = args.output_dir or default_out(args.dataset or config.task)
        evaluate_checkpoint(args.checkpoint, dataset=args.dataset, model=model, config=config, step=args.step,
                            overrides=overrides, comparisons=comparisons, output_dir=out,
                            manual_dir=args.manual_dir, data_dir=args.data_dir, save_images=args.save_images)
    else:
      if not args.task:
        raise ValueError('--task is required without --checkpoint')
      if not comparisons:
        raise ValueError('give --checkpoint, --fused_dir or --baselines')
      name = args.dataset or pathlib.Path(args.sources_dir or 'sources').name
      out = args.output_dir or default_out(name)
      evaluate_fused_dirs(args.task, comparisons=comparisons, dataset=args.dataset, sources_dir=args.sources_dir,
                          overrides=overrides, output_dir=out, manual_dir=args.manual_dir, data_dir=args.data_dir)
  except (ValueError, FileNotFoundError, ImportError) as e:
    cli.fail(PROG, e)
  if out is None:
    print('nothing written (give --output_dir to keep the report and the images)', flush=True)
  else:
    print(f'report (table.md, results.csv, results.json) and images: {pathlib.Path(out).absolute()}', flush=True)
  return 0


if __name__ == '__main__':
  platform.tune_process()
  sys.exit(main())
