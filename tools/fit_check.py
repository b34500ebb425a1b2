"""How closely models reproduce the ground truth of a training set: L1 and PSNR on a fixed sample of its examples.

  python tools/fit_check.py --dataset=drpl_mff/x8:train --data_dir=~/mgdn_data/tfds \
      --checkpoint=~/weights/mgdn_mff --checkpoint=~/mgdn_runs/mff_drpl --checkpoint=raw:~/mgdn_runs/mff_drpl

Separates the two usual reasons for a weak benchmark score: a model that does not yet fit its own training
distribution (under-training) and one that fits it but does not transfer (the data recipe). The sample is the
centre `--patch`² crop of `--examples` examples spread evenly over the split, the same on every run; the average
of the input streams is printed beside as the trivial baseline. `--checkpoint` takes anything `fuse` takes (a
weights file or short name, an exported model, a training workdir — its EMA weights, or its raw weights with
the prefix `raw:`) and may repeat.
"""
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo, when run as a script


def sample(dataset: str, data_dir: str | None, examples: int, patch: int, task: str):
  """{'stream_k': (N, patch, patch, C_k), 'target': (N, patch, patch, C_out)} float32 of the task's encoding."""
  import numpy as np
  from data_pipelines import loader
  from mgdn_jax import tasks
  name, split = loader.split_name(dataset)
  source = loader.data_source(name, split, data_dir=data_dir)
  encoded = []
  for i in np.linspace(0, len(source) - 1, min(examples, len(source))).astype(int):
    example = source[int(i)]
    spatial = tasks.get(task).spatial_keys(example)
    h, w = example['target'].shape[:2]
    if min(h, w) < patch:
      raise ValueError(f'{dataset}: example {i} is {h}×{w}, smaller than --patch={patch}')
    y, x = (h - patch) // 2, (w - patch) // 2
    crop = {k: example[k][y:y + patch, x:x + patch] for k in spatial}
    encoded.append(tasks.get(task).encode(crop))
  keys = [k for k in encoded[0] if k.startswith('stream_') or k == 'target']
  return {k: np.stack([e[k] for e in encoded]).astype(np.float32) for k in keys}


def scores(fused, target) -> dict[str, float]:
  """Mean L1 and mean per-example PSNR (peak 1) of (N, H, W, C) arrays in [0, 1]."""
  import numpy as np
  mse = np.maximum(((fused - target) ** 2).mean(axis=(1, 2, 3)), 1e-12)
  return {'L1': float(np.abs(fused - target).mean()), 'PSNR': float(np.mean(10 * np.log10(1 / mse)))}


def fused(model, batch, chunk: int = 8):
  import jax
  import numpy as np
  from flax import nnx
  graphdef, state = nnx.split(model)
  forward = jax.jit(lambda state, *streams: nnx.merge(graphdef, state)(*streams)[0])
  streams = sorted(k for k in batch if k.startswith('stream_'))
  n = len(batch['target'])
  return np.concatenate([np.asarray(forward(state, *(batch[k][i:i + chunk] for k in streams)))
                         for i in range(0, n, chunk)])


def load_models(prog: str, specs: list[str]):
  """([(spec, model)], task) of `--checkpoint` specs ([raw:]PATH); one line and exit 1 when their tasks differ."""
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  from mgdn_jax import checkpoint
  from mgdn_jax import cli
  loaded, tasks_seen = [], set()
  for spec in specs:
    raw = spec.startswith('raw:')
    try:
      model, config = checkpoint.load_model(os.path.expanduser(spec[4:] if raw else spec), use_ema=not raw)
    except (FileNotFoundError, ValueError, KeyError) as e:
      cli.fail(prog, f'cannot load checkpoint {spec}: {e}')
    loaded.append((spec, model))
    tasks_seen.add(config.task)
  if len(tasks_seen) != 1:
    cli.fail(prog, f'the checkpoints are of different tasks ({", ".join(sorted(tasks_seen))})')
  return loaded, tasks_seen.pop()


PROG = 'fit_check'


def define_flags(f) -> None:
  from absl import flags
  flags.DEFINE_string('dataset', None, 'tfds name[/config]:split holding a target, e.g. drpl_mff/x8:train',
                      required=True, flag_values=f)
  flags.DEFINE_string('data_dir', None, 'TFDS data_dir where the dataset is prepared', flag_values=f)
  flags.DEFINE_multi_string('checkpoint', None, '[raw:]weights file, short name, exported model or workdir '
                            '(repeatable)', required=True, flag_values=f)
  flags.DEFINE_integer('examples', 32, 'examples in the sample', lower_bound=1, flag_values=f)
  flags.DEFINE_integer('patch', 128, 'side of the centre crop', lower_bound=8, flag_values=f)


def main(argv=None) -> None:
  from mgdn_jax import cli
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  loaded, task = load_models(PROG, args.checkpoint)
  batch = sample(args.dataset, args.data_dir and os.path.expanduser(args.data_dir), args.examples, args.patch, task)
  target = batch['target']
  streams = [batch[k] for k in sorted(batch) if k.startswith('stream_')]
  print(f'{args.dataset}: {len(target)} examples, centre {args.patch}² crops')
  rows = []
  if all(s.shape == target.shape for s in streams):
    rows.append(('average of the inputs', scores(sum(streams) / len(streams), target)))
  rows += [(spec, scores(fused(model, batch), target)) for spec, model in loaded]
  width = max(len(name) for name, _ in rows)
  print(f'{"":{width}}  {"L1":>8}  {"PSNR":>7}')
  for name, s in rows:
    print(f'{name:{width}}  {s["L1"]:8.4f}  {s["PSNR"]:7.2f}')


if __name__ == '__main__':
  main()
