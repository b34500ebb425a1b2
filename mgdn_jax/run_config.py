"""A run's config.json: the one file that makes a workdir or an exported model self-describing.

Its format (`config_to_json` / `config_from_json`: JSON with tuples restored), writing and reading it, and the
rule for resuming a workdir with another config (`check_workdir_compatible`: only the fields that change the state
tree or the problem must match).
"""
import json
import os
from typing import Any

import jax
import ml_collections

CONFIG_FILE = 'config.json'

# Fields whose change makes an existing checkpoint unusable (different state tree or different problem).
_STRUCTURAL = ('task', 'model', 'mi_bins', 'mi_mask_hidden', 'grad_clip_norm')


def _tuplify(x: Any) -> Any:
  """JSON turns tuples into lists; the model configs use tuples (hashable, static under jit)."""
  if isinstance(x, dict):
    return {k: _tuplify(v) for k, v in x.items()}
  if isinstance(x, list):
    return tuple(_tuplify(v) for v in x)
  return x


def config_to_json(config: ml_collections.ConfigDict) -> str:
  return config.to_json_best_effort(indent=2, sort_keys=True)


def config_from_json(text: str) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(_tuplify(json.loads(text)))


def write_config(directory: str, config: ml_collections.ConfigDict) -> None:
  """Writes `<directory>/config.json` (process 0 only in multi-process runs)."""
  if jax.process_index() != 0:
    return
  os.makedirs(directory, exist_ok=True)
  path = os.path.join(directory, CONFIG_FILE)
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    f.write(config_to_json(config))
  os.replace(tmp, path)  # atomic: a killed run never leaves half a config behind


def read_config(directory: str) -> ml_collections.ConfigDict:
  path = os.path.join(directory, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path} not found: {directory!r} is neither an exported model (save_model) '
                            'nor a training workdir.')
  try:
    with open(path) as f:
      return config_from_json(f.read())
  except json.JSONDecodeError as e:
    raise ValueError(f'{path} is not valid JSON ({e}).') from None


def as_json(value: Any) -> Any:
  """A config value as config.json stores it (tuples → lists, ConfigDict → dict), so old and new compare."""
  return json.loads(config_to_json(ml_collections.ConfigDict({'v': value})))['v']


def check_workdir_compatible(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Refuses to resume a workdir whose checkpoints were written for a different model/task."""
  if not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    return
  old = read_config(workdir)
  diffs = []
  for field in _STRUCTURAL:
    a, b = as_json(old.get(field)), as_json(config.get(field))
    if isinstance(a, dict) and isinstance(b, dict):
      diffs += [f'{field}.{k}: {a.get(k)!r} -> {b.get(k)!r}' for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    elif a != b:
      diffs.append(f'{field}: {a!r} -> {b!r}')
  if diffs:
    raise ValueError(f'workdir {workdir} was trained with another config: {"; ".join(diffs)} (workdir -> yours). '
                     f'Drop --config to use the workdir\'s own ({CONFIG_FILE}), undo these overrides, '
                     'or train this config in a new --workdir.')


def workdir_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (its config.json); one-line error when there is none."""
  if not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    raise FileNotFoundError(f'{workdir} holds no {CONFIG_FILE}: not a training workdir '
                            '(give --config, or the --workdir of a run).')
  return read_config(workdir)
