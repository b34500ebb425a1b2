"""Model export/import and the training checkpoint layout.

Two on-disk forms hold MGDN weights:

* an *exported model* (`save_model`): `<dir>/config.json` (the full ConfigDict the model was trained with) and
  `<dir>/params/` (orbax PyTree of the model's `nnx.Param` values as a pure dict);
* a *training workdir* (written by `mgdn_jax.train`): `<workdir>/config.json` and `<workdir>/checkpoints/<step>/`
  with the orbax items `state` (dict: step, params, mi, opt_state, ema) and `data` (grain iterator position),
  plus per-step eval metrics that pick the best step.

`load_model` reads either; from a workdir it restores only the EMA weights (what the paper's MEF/MFF numbers use)
of the best step, else the latest, without reading the optimizer state.
"""

import json
import os
from typing import Any

import jax
import ml_collections
from flax import nnx
import orbax.checkpoint as ocp

CONFIG_FILE = 'config.json'
PARAMS_DIR = 'params'
CHECKPOINTS_DIR = 'checkpoints'


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
  with open(path) as f:
    return config_from_json(f.read())


def abstract_model(config: ml_collections.ConfigDict, seed: int = 0) -> nnx.Module:
  """The MGDN of `config.model` as ShapeDtypeStructs (no parameter is computed)."""
  from mgdn_jax import model as model_lib  # pylint: disable=g-import-not-at-top
  return nnx.eval_shape(lambda: model_lib.MGDN(config.model, rngs=nnx.Rngs(seed)))


def param_dict(model: nnx.Module) -> dict:
  """The model's `nnx.Param` values as a nested pure dict (the form stored in every checkpoint)."""
  return nnx.state(model, nnx.Param).to_pure_dict()


def _restore_args(abstract_tree: Any) -> Any:
  """Restore every leaf replicated on all devices unless the target names a sharding."""
  replicated = jax.sharding.NamedSharding(
      jax.sharding.Mesh(jax.devices(), ('data',)), jax.sharding.PartitionSpec())

  def with_sharding(x):
    sharding = getattr(x, 'sharding', None) or replicated
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

  return jax.tree.map(with_sharding, abstract_tree)


def _merge_params(abstract: nnx.Module, params: dict) -> nnx.Module:
  """Builds a concrete model from an abstract one and restored `nnx.Param` values."""
  graphdef, param_state, rest = nnx.split(abstract, nnx.Param, ...)
  nnx.replace_by_pure_dict(param_state, params)
  if jax.tree.leaves(rest):
    raise ValueError('MGDN holds non-Param state that checkpoints do not store: '
                     f'{jax.tree.map(lambda x: x.shape, rest)}')
  return nnx.merge(graphdef, param_state, rest)


def save_model(directory: str, model: nnx.Module, config: ml_collections.ConfigDict) -> None:
  """Exports `model` (its `nnx.Param`s) with `config` (the full ConfigDict; `config.model` rebuilds it)."""
  directory = os.path.abspath(directory)
  params_path = os.path.join(directory, PARAMS_DIR)
  if os.path.exists(params_path):
    raise FileExistsError(f'{params_path} exists: export to a new directory.')
  write_config(directory, config)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(params_path, param_dict(model))


def _load_exported(directory: str, config: ml_collections.ConfigDict) -> nnx.Module:
  abstract = abstract_model(config)
  target = _restore_args(param_dict(abstract))
  with ocp.StandardCheckpointer() as ckptr:
    params = ckptr.restore(os.path.join(directory, PARAMS_DIR), target)
  return _merge_params(abstract, params)


def best_or_latest_step(manager: ocp.CheckpointManager) -> int | None:
  """The step with the best saved eval metric (manager's best_fn), else the latest step."""
  return manager.best_step() if manager.best_step() is not None else manager.latest_step()


def _load_from_workdir(workdir: str, config: ml_collections.ConfigDict, step: int | None,
                       use_ema: bool) -> nnx.Module:
  from mgdn_jax import train_state  # pylint: disable=g-import-not-at-top
  ckpt_dir = os.path.join(workdir, CHECKPOINTS_DIR)
  with ocp.CheckpointManager(ckpt_dir, options=train_state.manager_options(config, read_only=True),
                             item_names=('state', 'data')) as manager:
    step = best_or_latest_step(manager) if step is None else step
    if step is None:
      raise FileNotFoundError(f'{ckpt_dir} holds no checkpoint yet.')
    abstract = abstract_model(config)
    key = 'ema' if use_ema else 'params'
    target = {key: _restore_args(param_dict(abstract))}
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
        partial_restore=True)))
  return _merge_params(abstract, restored['state'][key])


def load_model(directory: str, *, step: int | None = None,
               use_ema: bool = True) -> tuple[nnx.Module, ml_collections.ConfigDict]:
  """Loads `(model, config)` from an exported model dir or a training workdir.

  Args:
    directory: an exported model (`save_model`) or a training workdir (`main.py --workdir`).
    step: workdir only: this step instead of the best (by the task's eval metric), else latest.
    use_ema: workdir only: the EMA weights (default; the paper reports them) or the raw trained weights.
  Returns:
    The model with restored weights (replicated on all local devices) and the full config.
  """
  directory = os.path.abspath(os.fspath(directory))
  config = read_config(directory)
  if os.path.isdir(os.path.join(directory, PARAMS_DIR)):
    return _load_exported(directory, config), config
  if os.path.isdir(os.path.join(directory, CHECKPOINTS_DIR)):
    return _load_from_workdir(directory, config, step, use_ema), config
  raise FileNotFoundError(f'{directory} has {CONFIG_FILE} but neither {PARAMS_DIR}/ (exported model) nor '
                          f'{CHECKPOINTS_DIR}/ (training workdir).')
