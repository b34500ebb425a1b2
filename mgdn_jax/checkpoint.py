"""The checkpoint policy: the one orbax manager, save, restore with fallback, model loading and export.

Two on-disk forms hold MGDN weights:

* an *exported model* (`save_model`): `<dir>/config.json` (the full ConfigDict the model was trained with) and
  `<dir>/params/` (orbax PyTree of the model's `nnx.Param` values as a pure dict);
* a *training workdir* (written through `manager` / `save`): `<workdir>/config.json` and
  `<workdir>/checkpoints/<step>/` with the orbax items `state` (dict: step, params, mi_params, opt_state, ema,
  bad_step) and `data` (grain iterator position), plus per-step eval metrics that pick the best step.

What a run can rely on:

* `save` checks the whole state finite first and never writes a non-finite one; the error names the last good
  checkpoint step, or says there is none.
* `restore` (training resume) and `load` / `load_model` (eval, fuse, evaluate) use the newest intact checkpoint
  when a newer one cannot be read, with a warning that names the unreadable step. Nothing is deleted: training
  moves an unreadable step aside to `<workdir>/corrupt_checkpoints/<step>` (so the step can be written again),
  readers leave it where it is.
* `load` refuses non-finite weights.

This module imports no training code: inference loads a model through it with the model definition alone.
"""

import logging
import os
import shutil
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx
import orbax.checkpoint as ocp
from etils import epath

from mgdn_jax import model as model_lib
from mgdn_jax import run_config

PARAMS_DIR = 'params'
CHECKPOINTS_DIR = 'checkpoints'
CORRUPT_DIR = 'corrupt_checkpoints'
ITEMS = ('state', 'data')

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
  """A checkpoint that cannot serve: none intact, or non-finite weights (one-line message)."""


class NonFiniteStateError(FloatingPointError):
  """A training state with NaN/inf that `save` refused to write (one-line message)."""


# --------------------------------------------------------------------------------------------------- manager


def manager_options(config: ml_collections.ConfigDict, read_only: bool = False) -> ocp.CheckpointManagerOptions:
  """Save every `checkpoint_every_steps` and on preemption; keep the latest N and the best by the eval metric."""
  sign = 1. if config.best_metric_mode == 'max' else -1.
  metric = config.best_metric

  def score(metrics):  # larger is better for orbax's best_fn and BestN
    return sign * float(metrics[metric])

  policies = ocp.checkpoint_managers
  return ocp.CheckpointManagerOptions(
      save_decision_policy=policies.AnySavePolicy([
          policies.FixedIntervalPolicy(config.checkpoint_every_steps),
          policies.PreemptionCheckpointingPolicy(),
      ]),
      preservation_policy=policies.AnyPreservationPolicy([
          policies.LatestN(n=config.keep_checkpoints),
          policies.BestN(get_metric_fn=score, n=1, keep_checkpoints_without_metrics=False),
      ]),
      best_fn=score, best_mode='max',
      enable_async_checkpointing=config.async_checkpointing,
      read_only=read_only, create=not read_only)


# orbax (through absl's logger) warns that a read-only manager is read-only and saves nothing: asked for by fuse and
# evaluate, those warnings tell a user nothing.
_READ_ONLY_NOTICES = ('Given directory is read only', 'CheckpointManagerOptions.read_only=True')
logging.getLogger('absl').addFilter(lambda record: not record.getMessage().startswith(_READ_ONLY_NOTICES))


def manager(config: ml_collections.ConfigDict, workdir: str, *, read_only: bool = False) -> ocp.CheckpointManager:
  """The checkpoint manager of a training workdir: `<workdir>/checkpoints` with the items `state` and `data`.

  `config` supplies the policy (interval, how many to keep, the best metric); `read_only` for evaluation.
  """
  return ocp.CheckpointManager(os.path.join(os.path.abspath(os.fspath(workdir)), CHECKPOINTS_DIR),
                               options=manager_options(config, read_only=read_only), item_names=ITEMS)


# ------------------------------------------------------------------------------------------ finite-state check


@jax.jit
def _finite_by_part(tree: dict[str, Any]) -> dict[str, jax.Array]:
  """{top-level key: bool scalar, every floating leaf under it finite}; one reduction per key."""

  def all_finite(sub):
    flags = [jnp.isfinite(x).all() for x in jax.tree.leaves(sub) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.stack(flags).all() if flags else jnp.array(True)

  return {k: all_finite(v) for k, v in tree.items()}


def non_finite_parts(tree: dict[str, Any]) -> list[str]:
  """The top-level keys of `tree` (e.g. params, mi_params, opt_state, ema) holding a NaN or an infinity."""
  return [k for k, ok in jax.device_get(_finite_by_part(tree)).items() if not ok]


def last_good(mgr: ocp.CheckpointManager) -> str:
  """'the last good checkpoint is step N (<dir>/N)', or that there is none (after pending saves finish)."""
  mgr.wait_until_finished()
  step = mgr.latest_step()
  if step is None:
    return f'there is no good checkpoint: {mgr.directory} holds none'
  return f'the last good checkpoint is step {step} ({os.path.join(str(mgr.directory), str(step))})'


def save(mgr: ocp.CheckpointManager, step: int, state: dict[str, Any], data_iter: Any,
         metrics: dict[str, float] | None = None) -> None:
  """Saves `state` and the grain iterator position as `step`, unless any floating leaf of `state` is non-finite.

  Raises:
    NonFiniteStateError: naming the non-finite parts and the last good checkpoint (nothing is written).
  """
  import grain  # pylint: disable=g-import-not-at-top  (training only: inference never saves)
  bad = non_finite_parts(state)
  if bad:
    raise NonFiniteStateError(f'the state at step {step} holds non-finite values in {", ".join(bad)}; '
                              f'not saved, and {last_good(mgr)}.')
  mgr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                         data=grain.checkpoint.CheckpointSave(data_iter)),
           metrics=metrics, force=True)


# ----------------------------------------------------------------------------------------- restore, fallback


def _reason(e: BaseException) -> str:
  """A one-line, bounded description of why a checkpoint could not be read."""
  first = (str(e).strip().splitlines() or [''])[0]
  first = first.split(' See full TensorStore details')[0]  # what follows is a spec dump, not a reason
  return f'{type(e).__name__}: {first[:160]}'


def _first_intact(directory: str, steps: list[int],
                  read: Callable[[int], Any]) -> tuple[int, Any, list[int]]:
  """Reads `steps` in order until one succeeds; returns (step, value, unreadable steps before it).

  Raises:
    CheckpointError: when none can be read (one line: every step with its reason).
  """
  failures = []
  for step in steps:
    try:
      value = read(step)
    except Exception as e:  # pylint: disable=broad-except  (orbax/tensorstore raise many kinds on bad files)
      failures.append((step, _reason(e)))
      continue
    for bad, why in failures:
      log.warning('checkpoint step %d in %s is unreadable (%s); using step %d instead.', bad, directory, why, step)
    return step, value, [s for s, _ in failures]
  raise CheckpointError(f'no intact checkpoint in {directory}: ' +
                        '; '.join(f'step {s} is unreadable ({why})' for s, why in failures) + '.')


def _set_aside(mgr: ocp.CheckpointManager, steps: list[int]) -> None:
  """Moves unreadable steps to `<workdir>/corrupt_checkpoints/<step>` (kept for inspection, never deleted), so
  that the resumed run can save those steps again and the keep policy never counts them."""
  if steps and jax.process_index() == 0:
    root = os.path.join(os.path.dirname(str(mgr.directory)), CORRUPT_DIR)
    os.makedirs(root, exist_ok=True)
    for step in steps:
      dest = os.path.join(root, str(step))
      n = 1
      while os.path.exists(dest):
        dest, n = os.path.join(root, f'{step}.{n}'), n + 1
      shutil.move(os.path.join(str(mgr.directory), str(step)), dest)
      log.warning('moved the unreadable checkpoint step %d to %s (kept, not deleted).', step, dest)
  if steps:
    ocp.multihost.sync_global_processes('mgdn_set_aside_corrupt_checkpoints')
    mgr.reload()


def _paths(tree: Any) -> set[tuple[str, ...]]:
  """The leaves' key paths as strings: orbax's metadata stores tuples and named tuples as dicts."""
  name = lambda k: str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k))))
  return {tuple(map(name, path)) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _saved_paths(mgr: ocp.CheckpointManager, step: int) -> set[tuple[str, ...]]:
  """`_paths` of the `state` item saved at `step`, from its metadata (no array is read)."""
  where = epath.Path(mgr.directory) / str(step) / 'state'
  return _paths(ocp.PyTreeCheckpointHandler().metadata(where).tree)


def restore(mgr: ocp.CheckpointManager, abstract_state: Any, data_iter: Any, *,
            older_layout: tuple[Any, Callable[[Any], Any]] | None = None) -> tuple[Any, int] | None:
  """Training resume: the newest intact checkpoint restored into `abstract_state` (ShapeDtypeStructs with their
  target sharding) and `data_iter` (its position set in place). None when the workdir holds no checkpoint.

  `older_layout` = (abstract, convert): a checkpoint saved with the tree structure of that abstract state (an
  earlier layout of the same values) is read into it and passed through `convert`, so a layout change never sets
  a user's checkpoints aside. Unreadable newer steps are warned about and set aside (see `_set_aside`).
  Raises:
    CheckpointError: checkpoints exist but none can be read.
  """
  import grain  # pylint: disable=g-import-not-at-top  (training only)
  steps = sorted(mgr.all_steps(), reverse=True)
  if not steps:
    return None

  def read(step):
    target, convert = abstract_state, lambda state: state
    if older_layout is not None and _saved_paths(mgr, step) == _paths(older_layout[0]):
      target, convert = older_layout
      log.info('checkpoint step %d has an earlier state layout; converting it as it is read.', step)
    return convert(mgr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target),
        data=grain.checkpoint.CheckpointRestore(data_iter)))['state'])

  step, state, unreadable = _first_intact(str(mgr.directory), steps, read)
  _set_aside(mgr, unreadable)
  return state, step


# ---------------------------------------------------------------------------------------- model load / export


def param_dict(model: nnx.Module) -> dict:
  """The model's `nnx.Param` values as a nested pure dict (the form stored in every checkpoint)."""
  return nnx.state(model, nnx.Param).to_pure_dict()


def _restore_target(abstract_params: Any) -> Any:
  """The parameters' ShapeDtypeStructs placed on this process's first device (inference needs no mesh)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract_params)


def _merge_params(abstract: nnx.Module, params: dict) -> nnx.Module:
  """Builds a concrete model from an abstract one and restored `nnx.Param` values."""
  graphdef, param_state, rest = nnx.split(abstract, nnx.Param, ...)
  nnx.replace_by_pure_dict(param_state, params)
  if jax.tree.leaves(rest):
    raise ValueError('MGDN holds non-Param state that checkpoints do not store: '
                     f'{jax.tree.map(lambda x: x.shape, rest)}')
  return nnx.merge(graphdef, param_state, rest)


def _non_finite_leaves(params: dict) -> list[str]:
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return ['/'.join(str(getattr(k, 'key', k)) for k in path) for path, x in flat
          if not np.isfinite(np.asarray(x)).all()]


def save_model(directory: str, model: nnx.Module, config: ml_collections.ConfigDict) -> None:
  """Exports `model` (its `nnx.Param`s) with `config` (the full ConfigDict; `config.model` rebuilds it).

  Raises:
    FileExistsError: `<directory>/params` exists.
    NonFiniteStateError: a weight is NaN or infinite (nothing is written).
  """
  directory = os.path.abspath(os.fspath(directory))
  params_path = os.path.join(directory, PARAMS_DIR)
  if os.path.exists(params_path):
    raise FileExistsError(f'{params_path} exists: export to a new directory.')
  params = param_dict(model)
  bad = _non_finite_leaves(params)
  if bad:
    raise NonFiniteStateError(f'not exporting to {directory}: {len(bad)} weight arrays are non-finite '
                              f'(first: {bad[0]}).')
  run_config.write_config(directory, config)
  with ocp.StandardCheckpointer() as ckptr:
    ckptr.save(params_path, params)


class Loaded(NamedTuple):
  model: nnx.Module
  config: ml_collections.ConfigDict
  step: int | None  # the training step restored; None for an exported model


def _workdir_steps(mgr: ocp.CheckpointManager) -> list[int]:
  """Best step (by the eval metric) first, then every other step newest first: the fallback order."""
  best = mgr.best_step()
  return ([best] if best is not None else []) + sorted((s for s in mgr.all_steps() if s != best), reverse=True)


def load(directory: str, *, step: int | None = None, use_ema: bool = True, dtype: str | None = None) -> Loaded:
  """Loads a model from an exported model dir or a training workdir, checked finite.

  Args:
    directory: an exported model (`save_model`), a training workdir (`main.py --workdir`) or a weights file
      (`.npz` path or `mgdn-jax/<name>` short name, `mgdn_jax.weights`).
    step: workdir only: this step (no fallback) instead of the best by the task's eval metric, else the latest;
      an unreadable best/latest falls back to the newest intact step with a warning.
    use_ema: workdir only: the EMA weights (default; the paper reports them) or the raw trained weights.
    dtype: compute dtype ('float32' | 'bfloat16') instead of the config's; the weights stay float32.
  Returns:
    The model (parameters on this process's first device), its full config (`config.model.dtype` = the compute
    dtype) and the step restored.
  Raises:
    FileNotFoundError: not a model directory, or a workdir without checkpoints.
    CheckpointError: nothing readable, or non-finite weights.
  """
  from mgdn_jax import weights  # pylint: disable=g-import-not-at-top
  try:
    weights_file = weights.resolve(directory)
  except FileNotFoundError as e:
    raise FileNotFoundError(str(e)) from None
  if weights_file is not None:
    try:
      model, config = weights.load(weights_file, dtype=dtype)
    except ValueError as e:
      raise CheckpointError(str(e)) from None
    return Loaded(model, config, None)
  directory = os.path.abspath(os.fspath(directory))
  config = run_config.read_config(directory)
  if dtype is not None:
    config.model.dtype = dtype
  abstract = model_lib.create_model(config.model, abstract=True)
  target = _restore_target(param_dict(abstract))
  if os.path.isdir(os.path.join(directory, PARAMS_DIR)):
    where = os.path.join(directory, PARAMS_DIR)
    try:
      with ocp.StandardCheckpointer() as ckptr:
        params = ckptr.restore(where, target)
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(f'exported model {where} is unreadable ({_reason(e)}).') from None
    step = None
  elif os.path.isdir(os.path.join(directory, CHECKPOINTS_DIR)):
    key = 'ema' if use_ema else 'params'

    def read(s):
      restored = mgr.restore(s, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
          item={key: target}, restore_args=ocp.checkpoint_utils.construct_restore_args({key: target}),
          partial_restore=True)))
      return restored['state'][key]

    with manager(config, directory, read_only=True) as mgr:
      steps = _workdir_steps(mgr) if step is None else [step]
      if not steps:
        raise FileNotFoundError(f'{mgr.directory} holds no checkpoint yet; train first (main.py --mode=train).')
      if step is not None and step not in mgr.all_steps():
        raise FileNotFoundError(f'{mgr.directory} has no step {step}; it holds steps '
                                f'{", ".join(map(str, mgr.all_steps()))}.')
      step, params, _ = _first_intact(str(mgr.directory), steps, read)
    where = os.path.join(directory, CHECKPOINTS_DIR, str(step))
  else:
    raise FileNotFoundError(f'{directory} has {run_config.CONFIG_FILE} but neither {PARAMS_DIR}/ (exported model) nor '
                            f'{CHECKPOINTS_DIR}/ (training workdir).')
  bad = _non_finite_leaves(params)
  if bad:
    raise CheckpointError(f'{where} holds non-finite weights ({len(bad)} arrays, first: {bad[0]}); '
                          'refusing to load them.')
  return Loaded(_merge_params(abstract, params), config, step)


def load_model(directory: str, *, step: int | None = None, use_ema: bool = True,
               dtype: str | None = None) -> tuple[nnx.Module, ml_collections.ConfigDict]:
  """`(model, config)` of `load` (same arguments)."""
  loaded = load(directory, step=step, use_ema=use_ema, dtype=dtype)
  return loaded.model, loaded.config
