"""Every training knob of MGDN-JAX, with its default. Task files (mef, mff, hdr, gdsr) override what differs.

Variants (`--config=configs/<task>.py:<variant>`, comma-separated, e.g. `gdsr.py:x8,tiny`):
  demo — built-in `mgdn_demo/<task>` data, a small model, a few hundred steps: a laptop-CPU run in minutes.
  tiny — the tests' setting: 'tiny_*' model, 32² patches, a handful of steps.
"""

import ml_collections

from mgdn_jax import tasks

def get_config() -> ml_collections.ConfigDict:
  """The defaults (MEF-like); not a runnable task on its own — use configs/{mef,mff,hdr,gdsr}.py."""
  c = ml_collections.ConfigDict()
  c.task = 'mef'                      # one of tasks.NAMES
  c.model_name = 'mef'                # preset of model_lib.model_config; c.model is filled from it
  c.model = ml_collections.ConfigDict()  # the full model config (task files set it from model_name)
  c.seed = 0

  # Optimisation (KAIR/SwinFusion framework used for MEF/MFF: Adam β 0.9/0.999, wd 0, MultiStepLR per iteration).
  c.batch_size = 8                    # global, over all devices and processes
  c.microbatch_size = 0               # images per sequential micro-batch of a step (its gradient is accumulated
                                      # over them: same update, less memory); 0 = auto: 2 per device on CPU
                                      # (faster there), the whole batch on accelerators (mgdn_jax/platform.py)
  c.gradients = 'auto'                # backward of the conv/linear layers: 'tuned_cpu' (XLA:CPU custom VJPs,
                                      # mgdn_jax/kernels) | 'autodiff' | 'auto' = tuned_cpu iff the mesh is CPU
  c.pff_kernels = 'auto'              # PFF window attention, MLP, LCE: 'xla' (JAX ops) | 'pallas_tpu' (Pallas
                                      # kernels, kernels/attention_tpu.py, mlp_tpu.py, lce_tpu.py;
                                      # interpreted off a TPU) | 'auto' = pallas_tpu iff the mesh is TPU
  c.xla_cpu_ynn_fusion = True         # CPU meshes only: compile the train step with YNNPACK's matmul-epilogue
                                      # fusion (smaller plans, equal speed; mgdn_jax/platform.py)
  c.patch_size = 128                  # square training crops (GDSR: HR crop)
  c.num_train_steps = 10_000
  c.learning_rate = 2e-4
  c.lr_milestones = (0.5, 0.8, 0.9, 0.95)   # fractions of num_train_steps (SwinFusion: 250k,400k,450k,475k of 500k)
  c.lr_multipliers = (0.5, 0.25, 0.125, 0.0625)  # LR = learning_rate * multiplier after each milestone (γ 0.5)
  c.adam_b1 = 0.9
  c.adam_b2 = 0.999
  c.grad_clip_norm = 0.0              # 0 = off (KAIR's option, off by default)
  c.ema_decay = 0.999                 # E ← d·E + (1−d)·G every step; evaluation and export use E
  c.init_weights = ''                 # fine-tune: start params and EMA from these weights ('' = from scratch):
                                      # a weights file or shipped name (mgdn-jax/<name>), an export or a workdir

  # Loss: L = recon + mi_weight * Σ_stages Σ_pairs MaskMI (paper eq. 6). recon: 'l1' | 'mu_law_l1' (HDR).
  c.recon_loss = 'l1'
  c.mu = 5000.                        # μ of the μ-law tonemap (HDR loss and metrics)
  c.mi_weight = 0.01                  # λ; 0 turns the masked MI loss off (paper Table 5 ablation)
  c.mi_bins = 32                      # soft joint-histogram bins per axis
  c.mi_mask_hidden = 16               # width of the gradient-mask network
  c.mi_max_samples = 16384            # pixels per image entering the histogram

  # Loop.
  c.log_every_steps = 100
  c.eval_every_steps = 1000
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3              # latest N kept, plus the best by best_metric
  c.best_metric = ''                  # '<eval_dataset>/<metric>' (evaluation.py names); '' = the task's best
                                      # metric (tasks.Task.best_metric) on the first eval set
  c.best_metric_mode = 'max'          # 'max' | 'min' (set with best_metric)
  c.async_checkpointing = True
  c.eval_max_examples = 0             # per eval set; 0 = all
  c.num_eval_images = 2               # fused-image panels (inputs | fused | target) per eval set in TensorBoard
  c.eval_use_ema = True
  c.no_reference_metrics = True       # MEF/MFF: also compute the (slow) no-reference fusion metrics at eval

  # Data (read by data_pipelines.input_pipeline).
  c.data = ml_collections.ConfigDict()
  c.data.train_dataset = 'sice'
  c.data.train_split = 'train'
  c.data.eval_datasets = ('mefb:test',)
  c.data.manual_dir = ml_collections.FieldReference(None, field_type=str)
  c.data.data_dir = ml_collections.FieldReference(None, field_type=str)
  c.data.gdsr_scale = 4
  c.data.num_workers = 0              # grain mp_prefetch workers (0 = in-process; use 4–16 on real hosts)
  c.data.augment = True
  return c


def finalize(c: ml_collections.ConfigDict, variants: str | None) -> ml_collections.ConfigDict:
  """Applies the variants named in `variants` ('demo', 'tiny'; task-specific ones are handled by the task file),
  fills `c.model` from `c.model_name` and the best metric from the task."""
  from mgdn_jax import model as model_lib  # pylint: disable=g-import-not-at-top
  tokens = [t for t in (variants or '').split(',') if t]
  model_overrides = {}
  for t in tokens:
    if t == 'demo':
      c.model_name = tasks.get(c.task).small_preset  # CPU-sized model
      model_overrides = dict(task=c.task)  # tiny_fusion serves MEF and MFF
      c.data.train_dataset = f'mgdn_demo/{c.task}'
      c.data.eval_datasets = (f'mgdn_demo/{c.task}:test',)
      c.data.manual_dir = None
      c.batch_size = 2
      c.patch_size = 64
      c.num_train_steps = 400
      c.learning_rate = 1e-3
      c.lr_milestones, c.lr_multipliers = (0.5, 0.75), (0.5, 0.25)  # every task: decay late in the short run
      c.ema_decay = 0.9               # a 400-step run: a 0.999 EMA would still be mostly the initial weights
      c.log_every_steps = 25
      c.eval_every_steps = 200
      c.checkpoint_every_steps = 200
      c.num_eval_images = 2
    elif t == 'tiny':
      c.model_name = tasks.get(c.task).small_preset
      # One stage: XLA:CPU compiles it in about half the time; tiny_fusion serves MEF and MFF.
      model_overrides = dict(task=c.task, depths=(1,), num_heads=(2,))
      c.data.train_dataset = f'mgdn_demo/{c.task}'
      c.data.eval_datasets = (f'mgdn_demo/{c.task}:test',)
      c.data.manual_dir = None
      c.data.augment = False
      c.batch_size = 8
      c.patch_size = 32
      c.num_train_steps = 6
      c.log_every_steps = 2
      c.eval_every_steps = 6
      c.checkpoint_every_steps = 2
      c.eval_max_examples = 1
      c.num_eval_images = 1
      c.mi_max_samples = 256
      c.no_reference_metrics = False
      c.async_checkpointing = True
    elif t not in [f'x{n}' for n in tasks.GDSR_SCALES]:
      raise ValueError(f'configs: unknown variant {t!r} (known: demo, tiny; gdsr also x4, x8, x16).')
  c.model = model_lib.model_config(c.model_name, **model_overrides)
  if not c.best_metric:
    first = c.data.eval_datasets[0].split(':')[0]
    name, mode = tasks.get(c.task).best_metric(has_target=first.startswith('mgdn_demo'))
    c.best_metric, c.best_metric_mode = f'{first}/{name}', mode
  return c
