"""Plots training runs' TensorBoard scalars against steps into one PNG (one panel per metric, one line per run).

  python tools/training_curves.py --run=with_MI=/tmp/mff --run=without_MI=/tmp/mff_nomi \
      --metrics=eval/lytro/gray/Qabf,train/loss --out=docs/figures/mff_training.png

A run that continues another from its weights (a later training stage, whose steps count from 0 again) is drawn
where it continues: `--run=NAME=WORKDIR@STEP` adds STEP to its steps.

Reads the event files that `main.py` writes in a workdir (any `events.out.tfevents.*` below it) and a carried
`scalars.json` (as in `runs/`). Evaluation tags (`eval/…`) are never smoothed. Refuses to replace an existing PNG.
Needs matplotlib (`pip install matplotlib`; it is not a runtime dependency).
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo, when run as a script


SCALARS_JSON = 'scalars.json'  # a run's scalars carried without its event files: {tag: [[step, value], ...]}


def read_scalars(workdir: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value), ...]} of every scalar summary under `workdir`, sorted by step.

  Reads `workdir/scalars.json` (a run moved between machines keeps its earlier scalars there, e.g. `runs/`) and
  then the event files below `workdir`, in name order; a later source wins for the same tag and step.
  """
  import json
  files = sorted(workdir.rglob('events.out.tfevents.*'))
  carried = workdir / SCALARS_JSON
  if not files and not carried.is_file():
    raise FileNotFoundError(f'{workdir}: no TensorBoard event files (events.out.tfevents.*) nor {SCALARS_JSON}')
  out: dict[str, dict[int, float]] = {}
  if carried.is_file():
    for tag, points in json.loads(carried.read_text()).items():
      out.setdefault(tag, {}).update({int(step): float(value) for step, value in points})
  if files:
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util
  for path in files:
    acc = event_accumulator.EventAccumulator(str(path), size_guidance={'tensors': 0, 'scalars': 0})
    acc.Reload()
    for tag in acc.Tags()['tensors']:
      for event in acc.Tensors(tag):
        value = tensor_util.make_ndarray(event.tensor_proto)
        if value.ndim == 0 and value.dtype.kind in 'fiu':
          out.setdefault(tag, {})[event.step] = float(value)
    for tag in acc.Tags()['scalars']:
      for event in acc.Scalars(tag):
        out.setdefault(tag, {})[event.step] = float(event.value)
  return {tag: sorted(points.items()) for tag, points in out.items()}


def parse_run(spec: str) -> tuple[str, pathlib.Path, int]:
  """`NAME=WORKDIR[@STEP]` → (NAME, WORKDIR, STEP or 0); ValueError when it has no NAME=."""
  name, sep, workdir = spec.partition('=')
  if not sep or not name or not workdir:
    raise ValueError(f'--run={spec}: expected NAME=WORKDIR or NAME=WORKDIR@STEP')
  path, at, offset = workdir.rpartition('@')
  if at and offset.isdigit():
    return name, pathlib.Path(path).expanduser(), int(offset)
  return name, pathlib.Path(workdir).expanduser(), 0


def shifted(scalars: dict[str, list[tuple[int, float]]], offset: int) -> dict[str, list[tuple[int, float]]]:
  return {tag: [(step + offset, value) for step, value in points] for tag, points in scalars.items()}


def plot(runs: dict[str, dict], metrics: list[str], out: pathlib.Path, smooth: int = 1) -> None:
  """One panel per metric; `smooth` > 1 averages each curve over that many consecutive points."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  import numpy as np
  fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
  for ax, metric in zip(axes[0], metrics):
    for name, scalars in runs.items():
      if metric not in scalars:
        continue
      steps, values = map(np.asarray, zip(*scalars[metric]))
      if smooth > 1 and len(values) > smooth and not metric.startswith('eval/'):
        values = np.convolve(values, np.ones(smooth) / smooth, mode='valid')
        steps = steps[smooth - 1:]
      ax.plot(steps, values, label=name, marker='o' if len(steps) < 30 else None, markersize=3)
    ax.set_title(metric)
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=110)


PROG = 'training_curves'


def define_flags(f) -> None:
  from absl import flags
  flags.DEFINE_multi_string('run', None, 'NAME=WORKDIR or NAME=WORKDIR@STEP (drawn from STEP on; repeatable)',
                            required=True, flag_values=f)
  flags.DEFINE_list('metrics', None, 'comma-separated tags, e.g. eval/lytro/gray/Qabf,train/loss', required=True,
                    flag_values=f)
  flags.DEFINE_string('out', None, 'PNG to write (refuses to replace an existing file)', required=True, flag_values=f)
  flags.DEFINE_integer('smooth', 1, 'moving average over N logged points (training tags)', lower_bound=1,
                       flag_values=f)


def main(argv=None) -> None:
  from mgdn_jax import cli
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  out = pathlib.Path(args.out)
  if out.exists():
    cli.fail(PROG, f'{out} exists: choose another --out')
  runs = {}
  for spec in args.run:
    try:
      name, workdir, offset = parse_run(spec)
    except ValueError as e:
      cli.usage_error(PROG, e)
    try:
      runs[name] = shifted(read_scalars(workdir), offset)
    except FileNotFoundError as e:
      cli.fail(PROG, e)
  metrics = args.metrics
  missing = [m for m in metrics if not any(m in r for r in runs.values())]
  if missing:
    known = sorted({t for r in runs.values() for t in r})
    cli.fail(PROG, f'no run has {", ".join(missing)} (tags: {", ".join(known)})')
  plot(runs, metrics, out, args.smooth)
  print(f'wrote {out}')


if __name__ == '__main__':
  main()
