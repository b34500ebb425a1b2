"""MGDN training loop: `train_and_evaluate(config, workdir)` — jit + ('data',) mesh, orbax, grain, clu.

One jitted, state-donating step on global arrays: the state (see train_state.py) is replicated, batches are split
over 'data'. Checkpoints hold {state, grain iterator position}, so a restarted run (after a crash, SIGKILL or
preemption) continues with exactly the batch it would have seen. Loss (paper eq. 6):
  L = recon(I_o, GT) + mi_weight · Σ_stages Σ_pairs MaskMI(S_i, S_j),   recon = L1 (MEF, MFF, GDSR) | μ-law L1 (HDR).
"""

import functools
import os
import signal
import time
from typing import Any, NamedTuple

from absl import logging
from clu import metrics as clu_metrics
from clu import parameter_overview
import flax
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from mgdn_jax import checkpoint, flat_params
from mgdn_jax import evaluation
from mgdn_jax import kernels
from mgdn_jax import microbatch
from mgdn_jax import platform
from mgdn_jax import run_config
from mgdn_jax import run_log
from mgdn_jax import sharding
from mgdn_jax import tasks
from mgdn_jax import train_state
from mgdn_jax import workdir_lock
from mgdn_jax.layers import pff

@flax.struct.dataclass
class TrainMetrics(clu_metrics.Collection):
  loss: clu_metrics.Average.from_output('loss')
  recon_loss: clu_metrics.Average.from_output('recon')
  mi_loss: clu_metrics.Average.from_output('mi')
  grad_norm: clu_metrics.Average.from_output('grad_norm')
  learning_rate: clu_metrics.LastValue.from_output('learning_rate')


def validate_config(config: ml_collections.ConfigDict) -> None:
  """One-line errors for task-specific fields that config_flags cannot check."""
  if config.task not in tasks.NAMES:
    raise ValueError(f'config.task={config.task!r}: must be one of {tasks.NAMES}.')
  if config.model.task != config.task:
    raise ValueError(f'config.model.task={config.model.task!r} does not match config.task={config.task!r}.')
  if config.recon_loss not in ('l1', 'mu_law_l1'):
    raise ValueError(f"config.recon_loss={config.recon_loss!r}: must be 'l1' or 'mu_law_l1'.")
  if config.best_metric_mode not in ('max', 'min'):
    raise ValueError(f"config.best_metric_mode={config.best_metric_mode!r}: must be 'max' or 'min'.")
  tasks.get(config.task).check_config(config)
  if not config.data.eval_datasets:
    raise ValueError('config.data.eval_datasets is empty: give at least one "name:split".')
  names = [evaluation.dataset_name(s) for s in config.data.eval_datasets]
  if config.best_metric.split('/')[0] not in [n.split('/')[0] for n in names]:
    raise ValueError(f'config.best_metric={config.best_metric!r} does not name an eval set of {names}.')
  for field in ('num_train_steps', 'log_every_steps', 'eval_every_steps', 'checkpoint_every_steps',
                'batch_size', 'patch_size', 'keep_checkpoints'):
    if config[field] < 1:
      raise ValueError(f'config.{field}={config[field]}: must be >= 1.')
  if not 0. <= config.ema_decay < 1.:
    raise ValueError(f'config.ema_decay={config.ema_decay}: must be in [0, 1).')


def _recon_loss(config, fused, target):
  from mgdn_jax import losses  # pylint: disable=g-import-not-at-top
  if config.recon_loss == 'mu_law_l1':
    return losses.mu_law_l1_loss(fused, target, config.mu)
  return losses.l1_loss(fused, target)


def global_norm(tree: Any) -> jax.Array:
  """‖tree‖₂ as one reduction over the concatenated leaves. optax.global_norm reduces every parameter array on its
  own, which on an accelerator is one kernel per array (hundreds per step)."""
  leaves = [x.ravel().astype(jnp.float32) for x in jax.tree.leaves(tree)]
  return jnp.sqrt(jnp.sum(jnp.square(jnp.concatenate(leaves))))


def train_step(state: train_state.State, batch: dict[str, jax.Array], *, config: ml_collections.ConfigDict,
               gd_model: Any, gd_mi: Any, tx: optax.GradientTransformation, schedule: optax.Schedule,
               base_key: jax.Array, microbatches: int = 1, gradients: str = kernels.AUTODIFF,
               pff_kernels: str = kernels.XLA,
               mesh: jax.sharding.Mesh | None = None) -> tuple[train_state.State, TrainMetrics]:
  """One optimisation step on a global batch, its gradient accumulated over `microbatches` sequential slices
  (microbatch.py), the kernel layers' backward passes chosen by `gradients` (kernels.dispatch) and the PFF
  block's attention and MLP by `pff_kernels` (run over `mesh`'s devices). Non-finite loss/gradients freeze the state and set
  `bad_step`."""
  rng = jax.random.fold_in(base_key, state['step'])  # DropPath: a fresh, reproducible key per step

  def loss_fn(trainable, part, key):
    streams = [part[f'stream_{k}'] for k in range(config.model.num_streams)]
    model, mi_loss = nnx.merge(gd_model, trainable['model']), nnx.merge(gd_mi, trainable['mi'])
    kernels.set_gradients(model, gradients)
    kernels.set_gradients(mi_loss, gradients)
    pff.use_kernels(model, pff_kernels, mesh)
    fused, features = model(*streams, train=True, rng=key)
    recon = _recon_loss(config, fused, part['target'])
    mi = mi_loss(features) if config.mi_weight > 0 else jnp.zeros((), jnp.float32)
    return recon + config.mi_weight * mi, (recon, mi)

  trainable = {'model': state['params'], 'mi': state['mi_params']}

  def losses_and_grads(part, key):
    (loss, (recon, mi)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable, part, key)
    return loss, recon, mi, grads

  zeros = (jnp.zeros((), jnp.float32),) * 3 + (jax.tree.map(jnp.zeros_like, trainable),)
  loss, recon, mi, grads = microbatch.mean_over_microbatches(losses_and_grads, batch, rng, microbatches, zeros)
  grad_norm = global_norm(grads)
  # The elementwise update (Adam, EMA, guard) runs on one vector per parameter tree: a few kernels, not a few per
  # parameter array (flat_params.py); the state keeps its per-array layout.
  flat = flat_params.Flattener(state['params'], state['mi_params'])
  old = flat.ravel({k: state[k] for k in ('params', 'mi_params', 'opt_state', 'ema')})
  old_trainable = {'model': old['params'], 'mi': old['mi_params']}
  updates, opt_state = tx.update(flat.ravel(grads), old['opt_state'], old_trainable)
  new = optax.apply_updates(old_trainable, updates)
  candidate = {'params': new['model'], 'mi_params': new['mi'], 'opt_state': opt_state,
               'ema': train_state.ema_update(old['ema'], new['model'], config.ema_decay)}
  ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & (state['bad_step'] < 0)
  guarded = jax.tree.map(lambda n, o: jnp.where(ok, n, o), candidate, old)
  step = state['step'] + 1
  new_state = dict(flat.unravel(guarded, {k: state[k] for k in guarded}), step=jnp.where(ok, step, state['step']),
                   bad_step=jnp.where((state['bad_step'] < 0) & ~ok, step, state['bad_step']))
  metrics = TrainMetrics.single_from_model_output(
      loss=loss, recon=recon, mi=mi, grad_norm=grad_norm, learning_rate=schedule(state['step']))
  return new_state, metrics


def _raise_if_bad(state: train_state.State, manager) -> None:
  bad = int(jax.device_get(state['bad_step']))
  if bad >= 0:
    raise FloatingPointError(f'non-finite loss or gradients at step {bad}; stopped without saving it, and '
                             f'{checkpoint.last_good(manager)}.')


def _flat_hparams(config: ml_collections.ConfigDict) -> dict[str, Any]:
  out = {}

  def walk(prefix, d):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(f'{prefix}{k}.', v)
      else:
        out[prefix + k] = v if isinstance(v, (int, float, str, bool)) else str(v)

  walk('', config.to_dict())
  return out


class _Preemption:
  """SIGTERM (the usual preemption notice) → save at the next step boundary and stop cleanly."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    try:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread (e.g. some test runners): rely on orbax's preemption policy only
      self._previous = None
    return self

  def _handle(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM received: checkpointing at the next step and stopping.')
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


class Built(NamedTuple):
  """Everything derived from (config, mesh) alone: optimizer, graph defs, sharded abstract state, jitted fns."""
  tx: optax.GradientTransformation
  gd_model: Any
  gd_mi: Any
  init: Any
  abstract: Any          # the state as ShapeDtypeStructs carrying their (replicated) sharding
  step_fn: Any           # jitted, state-donating train step
  plan: platform.TrainPlan  # the step's backend decisions for the mesh


_BUILT: dict[tuple[str, jax.sharding.Mesh], Built] = {}


def build(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> Built:
  """Memoised per (config, mesh): a second run in the same process (resume, tests, notebooks) reuses the jitted
  step and its compiled executables instead of paying XLA's compile again.

  Keyed by the mesh itself, not its device ids: the compile-only devices of a TPU topology (benchmarks/aot_tpu.py)
  number from 0 like the host's CPU devices, so ids alone would hand a TPU mesh the CPU mesh's plan and shardings.
  """
  key = (run_config.config_to_json(config), mesh)
  if key in _BUILT:
    return _BUILT[key]
  plan = platform.train_plan(config, mesh)
  tx = train_state.create_optimizer(config)
  gd_model, gd_mi = train_state.graphdefs(config)
  init = train_state.init_fn(config, tx)
  abstract = sharding.abstract_with_sharding(jax.eval_shape(init), mesh)
  state_sh = jax.tree.map(lambda x: x.sharding, abstract)
  step_fn = jax.jit(
      functools.partial(train_step, config=config, gd_model=gd_model, gd_mi=gd_mi, tx=tx,
                        schedule=train_state.learning_rate_schedule(config), base_key=jax.random.key(config.seed),
                        microbatches=plan.microbatches, gradients=plan.gradients, pff_kernels=plan.pff_kernels,
                        mesh=mesh),
      out_shardings=(state_sh, None), donate_argnums=(0,), compiler_options=plan.compiler_options)
  _BUILT.clear()  # keep one: each holds compiled executables
  _BUILT[key] = Built(tx, gd_model, gd_mi, init, abstract, step_fn, plan)
  return _BUILT[key]


def create_state(built: Built) -> train_state.State:
  """The initial state, directly in its (replicated) sharding, computed where `built.plan.state_device` says.

  On a host device, eagerly, then placed with `make_array_from_process_local_data` (every process computes the same
  values from the same seed); without one, `jax.jit(init, out_shardings=...)` on the mesh.
  """
  shardings = jax.tree.map(lambda x: x.sharding, built.abstract)
  host = built.plan.state_device
  if host is None:
    return jax.jit(built.init, out_shardings=shardings)()
  with jax.default_device(host):
    local = jax.device_get(built.init())
  return jax.tree.map(lambda x, sh: jax.make_array_from_process_local_data(sh, np.asarray(x), np.shape(x)),
                      local, shardings)


def init_from_weights(config: ml_collections.ConfigDict, state: train_state.State) -> train_state.State:
  """`state` with its parameters and EMA replaced by the weights `config.init_weights` names (fine-tuning start).

  The weights must be of the same network (`config.model` up to the compute dtype); the optimizer starts fresh.
  """
  loaded, wconfig = checkpoint.load_model(config.init_weights)
  mine, theirs = run_config.as_json(config.model), run_config.as_json(wconfig.model)
  diffs = sorted(k for k in set(mine) | set(theirs) if k != 'dtype' and mine.get(k) != theirs.get(k))
  if diffs:
    raise ValueError(f'config.init_weights={config.init_weights!r} is a different network (model.'
                     f'{", model.".join(f"{k}: {theirs.get(k)!r} there, {mine.get(k)!r} here" for k in diffs)}).')
  params = checkpoint.param_dict(loaded)
  place = lambda new, old: jax.make_array_from_process_local_data(old.sharding, np.asarray(new, old.dtype),
                                                                  old.shape)
  return dict(state, params=jax.tree.map(place, params, state['params']),
              ema=jax.tree.map(place, params, state['ema']))


def evaluate_state(config: ml_collections.ConfigDict, built: Built,
                   state: train_state.State) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """The state's (EMA) weights through `evaluation.evaluate_model` (the config's protocol) on one local device.

  Returns the scalars and up to `config.num_eval_images` panels per eval set, named '<dataset>/fused_<i>',
  each (1, H, W·n, 3) uint8.
  """
  params = state['ema'] if config.eval_use_ema else state['params']
  # One device's copy of the replicated weights (multi-process global arrays too): an eval image is one example,
  # so spreading it over the mesh would only repeat the same work on every device.
  model = nnx.merge(built.gd_model, jax.tree.map(lambda x: x.addressable_data(0), params))
  evaluations = evaluation.evaluate_model(model, config, num_panels=config.num_eval_images)
  images = {f'{e.dataset}/fused_{i}': p[None] for e in evaluations.values() for i, p in enumerate(e.panels)}
  return evaluation.scalars(evaluations), images


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> train_state.State:
  """Trains `config` in `workdir` (resuming from its newest intact checkpoint), evaluating periodically.

  Holds the workdir's lock (workdir_lock.py) for the whole run. Returns the final state (replicated global arrays).
  """
  validate_config(config)
  workdir = os.path.abspath(workdir)
  with workdir_lock.hold(workdir):
    return _train_and_evaluate(config, workdir)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> train_state.State:
  from data_pipelines import input_pipeline  # pylint: disable=g-import-not-at-top
  mesh = sharding.make_mesh()
  sharding.check_batch_size(config.batch_size, mesh)
  run_config.check_workdir_compatible(config, workdir)
  # Missing datasets fail now, in one line, not after the first compile (train) or hours later (eval sets).
  train_iter = input_pipeline.create_train_iter(config, jax.process_index(), jax.process_count())
  for spec in config.data.eval_datasets:
    next(iter(input_pipeline.create_eval_iter(config, spec)), None)
  run_config.write_config(workdir, config)

  built = build(config, mesh)
  manager = checkpoint.manager(config, workdir)
  restored = checkpoint.restore(
      manager, built.abstract, train_iter,
      older_layout=(train_state.per_array_opt_state(built.abstract, built.tx),
                    lambda old: train_state.upgrade_opt_state(old, built.abstract)))
  if restored is None:
    state = create_state(built)
    if config.init_weights:
      state = init_from_weights(config, state)
      logging.info('Starting from the weights of %s.', config.init_weights)
  else:
    state, resumed = restored
    logging.info('Resuming from %s step %d.', manager.directory, resumed)
  initial_step = int(jax.device_get(state['step']))
  if initial_step >= config.num_train_steps:
    logging.info('%s is already trained to step %d (config.num_train_steps = %d): nothing to train. Evaluate it '
                 'with `python main.py --workdir=%s --mode=eval`, or raise --config.num_train_steps to go on.',
                 workdir, initial_step, config.num_train_steps, workdir)
    run_log.log_outputs(workdir, manager)
    manager.close()
    return state

  # clu's writers import TensorFlow: only the training loop pays for it (never grain workers or main.py).
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  from clu import periodic_actions  # pylint: disable=g-import-not-at-top
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
  if initial_step == 0:
    writer.write_hparams(_flat_hparams(config))
    table = os.path.join(workdir, 'parameters.txt')
    if jax.process_index() == 0:
      with open(table, 'w') as f:
        f.write(parameter_overview.get_parameter_overview(state['params']) + '\n')
    logging.info('%s: %s parameters (table: %s)', config.model_name,
                 f'{parameter_overview.count_parameters(state["params"]):,}', table)
  hooks = [periodic_actions.ReportProgress(num_train_steps=config.num_train_steps, writer=writer)]
  progress = run_log.Progress(config, initial_step)
  logging.info('Training steps %d-%d of batch %d (%d²); compiling the step first (a minute or more on a CPU).',
               initial_step + 1, config.num_train_steps, config.batch_size, config.patch_size)

  train_metrics = None
  start = time.time()
  with _Preemption() as preemption, manager:
    for step in range(initial_step + 1, config.num_train_steps + 1):
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        batch = sharding.global_batch(next(train_iter), mesh)
        state, metrics = built.step_fn(state, batch)
      if step == initial_step + 1:
        jax.block_until_ready(state)
        logging.info('First step %d (compile + run) took %.1fs.', step, time.time() - start)
        progress.compiled(step)
      train_metrics = metrics if train_metrics is None else train_metrics.merge(metrics)
      for hook in hooks:
        hook(step)
      last = step == config.num_train_steps
      if step % config.log_every_steps == 0 or last:
        _raise_if_bad(state, manager)
        computed = train_metrics.compute()
        writer.write_scalars(step, {f'train/{k}': v for k, v in computed.items()})
        logging.info('%s', progress.line(step, float(computed['loss'])))
        train_metrics = None
      eval_scalars = None
      if step % config.eval_every_steps == 0 or last:
        _raise_if_bad(state, manager)
        with hooks[0].timed('eval'):
          eval_scalars, images = evaluate_state(config, built, state)
        writer.write_scalars(step, {f'eval/{k}': v for k, v in eval_scalars.items()})
        writer.write_images(step, {f'eval/{k}': v for k, v in images.items()})
        logging.info('step %d eval:\n%s', step, evaluation.format_scalars(eval_scalars))
        evaluation.write_summary(workdir, step, eval_scalars, 'ema' if config.eval_use_ema else 'params')
      if eval_scalars is not None or last or preemption.requested or manager.should_save(step):
        _raise_if_bad(state, manager)
        checkpoint.save(manager, step, state, train_iter, eval_scalars)
      writer.flush()
      if preemption.requested:
        logging.warning('Stopped at step %d after checkpointing (preemption).', step)
        break
    manager.wait_until_finished()
    run_log.log_outputs(workdir, manager)
  writer.close()
  return state


def evaluate_workdir(config: ml_collections.ConfigDict, workdir: str, step: int | None = None) -> dict[str, float]:
  """Evaluates the best (else latest) checkpoint of `workdir` on `config.data.eval_datasets` (main.py --mode=eval).

  The same evaluation as during training (`evaluation.evaluate_model`, the config's protocol), also writing its
  report (table.md, results.csv/json, fused images) to `<workdir>/eval/step_<N>/`, the scalars to TensorBoard
  under `<workdir>/eval` and `<workdir>/eval_summary.json`. Returns the scalars (names as in training).
  """
  validate_config(config)
  workdir = os.path.abspath(workdir)
  run_config.check_workdir_compatible(config, workdir)
  model, _, step = checkpoint.load(workdir, step=step, use_ema=config.eval_use_ema)
  out_dir = os.path.join(workdir, 'eval', f'step_{step}')
  weights = 'ema' if config.eval_use_ema else 'params'
  scalars = evaluation.scalars(evaluation.evaluate_model(model, config, output_dir=out_dir,
                                                         meta={'checkpoint': workdir, 'step': step}))
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  writer = metric_writers.create_default_writer(os.path.join(workdir, 'eval'),
                                                just_logging=jax.process_index() > 0)
  writer.write_scalars(step, {f'eval/{k}': v for k, v in scalars.items()})
  writer.close()
  path = evaluation.write_summary(workdir, step, scalars, weights)
  logging.info('Evaluated step %d (%s weights) -> %s and %s', step, weights, out_dir, path)
  return scalars
