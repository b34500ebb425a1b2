"""The training state (model + MI-loss params, Adam state, EMA weights, step) and its optimizer.

The state is a plain dict of pure-dict pytrees so that orbax checkpoints (checkpoint.py) read as nested dicts and
`checkpoint.load_model` can restore only `ema` (or `params`) from a training checkpoint:

  {'step': int32 (), 'params': model Params, 'mi_params': MaskedMILoss Params,
   'opt_state': optax state of {'model': (P,), 'mi': (Q,)}, 'ema': model Params, 'bad_step': int32 ()}

Adam's moments are kept flat, one vector per parameter tree in `flat_params` order (`optimizer_view`): the step's
update runs on flat vectors anyway, and each array the step writes back into a per-array tree costs it slices
(on an accelerator, kernels). The weights (`params`, `ema`) stay per array: the model and every reader use them.
A checkpoint with per-array moments is read through `per_array_opt_state` and `upgrade_opt_state`.

`bad_step` is -1 while every loss and gradient was finite, else the first step that was not; once set the step
leaves the state untouched, so the last good weights are what a checkpoint or an error report sees.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
import optax

from mgdn_jax import flat_params
from mgdn_jax import model as model_lib

State = dict[str, Any]


def learning_rate_schedule(config: ml_collections.ConfigDict) -> optax.Schedule:
  """Multi-step decay: `learning_rate * lr_multipliers[i]` after `lr_milestones[i] * num_train_steps` steps.

  Milestones are fractions of the run so the same schedule shape holds for a 300-step demo and a 500k-step run.
  """
  milestones, multipliers = tuple(config.lr_milestones), tuple(config.lr_multipliers)
  if len(milestones) != len(multipliers):
    raise ValueError(f'config.lr_milestones {milestones} and config.lr_multipliers {multipliers} differ in length.')
  if not milestones:
    return optax.constant_schedule(config.learning_rate)
  boundaries = [int(round(m * config.num_train_steps)) for m in milestones]
  values = [config.learning_rate] + [config.learning_rate * m for m in multipliers]
  return optax.join_schedules([optax.constant_schedule(v) for v in values], boundaries)


def create_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam (β 0.9/0.999, no weight decay, as KAIR/SwinFusion), optional global-norm clipping first."""
  adam = optax.adam(learning_rate_schedule(config), b1=config.adam_b1, b2=config.adam_b2)
  if config.grad_clip_norm:
    return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), adam)
  return adam


def create_mi_loss(config: ml_collections.ConfigDict, seed: int) -> nnx.Module:
  """The masked-MI loss module of `config` (its 1x1 projections and mask net train with the model)."""
  from mgdn_jax import losses  # pylint: disable=g-import-not-at-top
  m = config.model
  return losses.MaskedMILoss(
      channels=m.embed_dim, num_stages=len(m.depths),
      pairs=losses.mi_pairs(m.guidance, m.num_streams, m.reference_stream), num_streams=m.num_streams,
      num_bins=config.mi_bins, mask_hidden=config.mi_mask_hidden, max_samples=config.mi_max_samples,
      rngs=nnx.Rngs(seed + 1))


def graphdefs(config: ml_collections.ConfigDict) -> tuple[Any, Any]:
  """Static graph definitions of (model, MI loss); `nnx.merge(gd, params)` rebuilds each inside jit."""
  model = model_lib.create_model(config.model, seed=config.seed, abstract=True)
  mi = nnx.eval_shape(lambda: create_mi_loss(config, config.seed))
  gd_model, _, rest_m = nnx.split(model, nnx.Param, ...)
  gd_mi, _, rest_mi = nnx.split(mi, nnx.Param, ...)
  if jax.tree.leaves(rest_m) or jax.tree.leaves(rest_mi):
    raise ValueError('MGDN or MaskedMILoss holds non-Param state; the training state stores Params only.')
  return gd_model, gd_mi


def init_fn(config: ml_collections.ConfigDict,
            tx: optax.GradientTransformation) -> Callable[[], State]:
  """A function creating the initial state (to run under `jax.jit(..., out_shardings=...)`)."""

  def init() -> State:
    model = model_lib.create_model(config.model, seed=config.seed)
    mi = create_mi_loss(config, config.seed)
    params = nnx.state(model, nnx.Param).to_pure_dict()
    mi_params = nnx.state(mi, nnx.Param).to_pure_dict()
    return {
        'step': jnp.zeros((), jnp.int32),
        'params': params,
        'mi_params': mi_params,
        'opt_state': tx.init(optimizer_view(params, mi_params)),
        'ema': jax.tree.map(jnp.copy, params),  # KAIR: E starts as a copy of G
        'bad_step': jnp.full((), -1, jnp.int32),
    }

  return init


def optimizer_view(params: Any, mi_params: Any) -> dict[str, jax.Array]:
  """{'model': (P,), 'mi': (Q,)}: the two parameter trees as the flat vectors Adam steps on."""
  return flat_params.Flattener(params, mi_params).ravel({'model': params, 'mi': mi_params})


def per_array_opt_state(abstract: State, tx: optax.GradientTransformation) -> State:
  """`abstract` (ShapeDtypeStructs) with Adam's moments per parameter array: the layout of older checkpoints."""
  per_array = jax.eval_shape(tx.init, {'model': abstract['params'], 'mi': abstract['mi_params']})
  replicated = jax.tree.leaves(abstract['opt_state'])[0].sharding
  per_array = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), per_array)
  return dict(abstract, opt_state=per_array)


def upgrade_opt_state(state: State, abstract: State) -> State:
  """A state read in the `per_array_opt_state` layout, with its moments flattened as `abstract` lays them out."""
  flat = flat_params.Flattener(state['params'], state['mi_params']).ravel(state['opt_state'])
  placed = jax.tree.map(lambda x, a: jax.device_put(x, a.sharding), flat, abstract['opt_state'])
  return dict(state, opt_state=placed)


def ema_update(ema: Any, params: Any, decay: float) -> Any:
  """E ← d·E + (1−d)·G after every step (parameters only), as KAIR's `update_E`."""
  return jax.tree.map(lambda e, p: decay * e + (1. - decay) * p, ema, params)
