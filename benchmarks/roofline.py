"""FLOP count of a jitted function from its jaxpr, and a roofline bound on the MFU its op shapes allow.

  python benchmarks/roofline.py                          # train steps of mef, mff, hdr: bf16, batch 4, 128², H100
  python benchmarks/roofline.py --tasks=hdr --batches=1,16 --sizes=128,256 --breakdown=12
  python benchmarks/roofline.py --peak_tflops=989 --hbm_tb_s=3.35 --vector_tflops=67   # the chip (defaults: H100)

Why count from the jaxpr: XLA's `cost_analysis()` counts a loop body once (the micro-batch scan, the per-tap loops
of the custom gradients) and XLA:GPU leaves out the convolutions it hands to cuDNN (it counted 494.9 GFLOP of the HDR
step's 817.2 on an H100; benchmarks/README.md). The jaxpr holds every op the step runs, loops with their trip counts, on any
backend: dot_general and convolution = 2 FLOPs per multiply-add (convolutions counted dense, as XLA does);
arithmetic elementwise ops 1 per output element, reductions 1 per input element; data movement (reshape,
transpose, slices, pads, converts, selects) 0.

The bound: each dot/convolution takes at least max(FLOPs / tensor peak, bytes / HBM bandwidth), with bytes = its
operands read once and its result written once; every other op is assumed fused away for free except its
arithmetic at the vector (non-tensor-core) peak. The best step time is the sum of these, and
MFU ≤ step FLOPs / (tensor peak × best time). Two fusion models:
- `xla`: every dot/convolution is a kernel of its own whose operands and result live in HBM (how XLA:GPU runs
  the step: cuBLAS/cuDNN/Triton GEMMs fuse elementwise neighbours, not other GEMMs);
- `flash`: as `xla`, but the window-attention scores never leave the chip (a flash-attention kernel): operands
  and results of the matmuls under `ops.attention`'s name scope that hold (T, T) blocks.
Both are generous (no launch cost, no tile quantisation, perfect overlap), so a measured MFU above them means
the count is wrong, and a target above them cannot be reached by kernel tuning at that batch and patch size.
"""
import dataclasses
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# One H100 SXM (NVIDIA H100 datasheet): dense bf16 tensor core 989 TFLOP/s, HBM3 3.35 TB/s, FP32 (non-tensor) 67.
H100 = dict(peak_tflops=989., hbm_tb_s=3.35, vector_tflops=67.)

_MOVES = frozenset((
    'reshape', 'transpose', 'broadcast_in_dim', 'convert_element_type', 'squeeze',
    'expand_dims', 'slice', 'dynamic_slice', 'dynamic_update_slice', 'pad',
    'concatenate', 'copy', 'copy_p', 'select_n', 'rev', 'gather', 'split', 'iota',
    'stop_gradient', 'optimization_barrier', 'reshard', 'sharding_constraint',
    'bitcast_convert_type', 'device_put', 'eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and',
    'or', 'not', 'xor', 'shift_right_logical', 'shift_left', 'random_bits',
    'random_split', 'random_fold_in', 'random_seed', 'random_wrap', 'random_unwrap',
    'threefry2x32', 'is_finite', 'sign', 'clamp', 'sort', 'scatter', 'pjit', 'jit',
    'custom_vjp_call', 'custom_jvp_call', 'checkpoint', 'remat', 'scan', 'cond',
    'while', 'closed_call', 'core_call', 'shard_map', 'pure_callback',
    'io_callback', 'debug_callback'))
_REDUCTIONS = frozenset(('reduce_sum', 'reduce_max', 'reduce_min', 'reduce_prod', 'argmax', 'argmin',
                         'scatter-add', 'scatter_add'))


@dataclasses.dataclass
class Cost:
  """FLOPs of a jaxpr and its roofline times (seconds) under the two fusion models."""
  matmul_flops: float = 0.
  vector_flops: float = 0.
  time_xla: float = 0.
  time_flash: float = 0.
  matmul_bytes_xla: float = 0.
  matmul_bytes_flash: float = 0.
  matmul_calls: float = 0.  # dot/convolution executions: a floor on the step's kernel launches
  unknown_loops: int = 0  # while loops (unknown trip count) counted once

  @property
  def flops(self) -> float:
    return self.matmul_flops + self.vector_flops

  def add(self, other: 'Cost', times: float = 1.) -> None:
    for f in dataclasses.fields(self):
      setattr(self, f.name, getattr(self, f.name) + times * getattr(other, f.name))

  def mfu_bound(self, chip: dict, fusion: str) -> float:
    t = self.time_xla if fusion == 'xla' else self.time_flash
    return self.flops / (chip['peak_tflops'] * 1e12 * t) if t else float('nan')


def _size(aval) -> int:
  return math.prod(aval.shape) if hasattr(aval, 'shape') else 1


def _bytes(aval) -> int:
  return _size(aval) * aval.dtype.itemsize if hasattr(aval, 'dtype') else 0


# The name scope both directions of `mgdn_jax.ops.window_attention` run under: the ops whose (T, T) score matrices a
# flash-attention kernel would keep on chip.
ATTENTION_SCOPE = 'window_attention'


def _in_attention(eqn) -> bool:
  return ATTENTION_SCOPE in str(eqn.source_info.name_stack)


def _is_score(aval, tokens: int) -> bool:
  """A window-attention score tensor: trailing (T, T), or rows of whole T×T blocks (the bias gradient's view)."""
  s = getattr(aval, 'shape', ())
  return tokens > 0 and len(s) >= 2 and (tuple(s[-2:]) == (tokens, tokens) or
                                         (len(s) == 2 and s[-1] % (tokens * tokens) == 0))


def _matmul_flops(eqn) -> float:
  out = eqn.outvars[0].aval
  if eqn.primitive.name == 'dot_general':
    (lhs_contract, _), _ = eqn.params['dimension_numbers']
    lhs = eqn.invars[0].aval.shape
    return 2. * _size(out) * math.prod(lhs[d] for d in lhs_contract)
  # conv_general_dilated: each output element sums kernel-spatial × kernel-input-features products.
  rhs = eqn.invars[1].aval.shape
  rhs_spec = eqn.params['dimension_numbers'].rhs_spec  # (out feature, in feature, *spatial) axes of the kernel
  per_output = rhs[rhs_spec[1]] * math.prod(rhs[d] for d in rhs_spec[2:])
  return 2. * _size(out) * per_output


def _sub_jaxprs(eqn):
  for v in eqn.params.values():
    for s in (v if isinstance(v, (list, tuple)) else (v,)):
      if hasattr(s, 'eqns'):
        yield s
      elif hasattr(s, 'jaxpr') and hasattr(s.jaxpr, 'eqns'):
        yield s.jaxpr


def _op_key(eqn, inside: bool) -> str:
  """'[attention] dot_general (4, 128, 128, 60) x (60, 240)': the op and its operand shapes."""
  shapes = ' x '.join(str(tuple(v.aval.shape)) for v in eqn.invars)
  return f"{'attention ' if inside else ''}{eqn.primitive.name} {shapes}"


def jaxpr_cost(jaxpr, chip: dict, tokens: int = 0, in_attention: bool = False,
               by_op: dict | None = None, times: float = 1.) -> Cost:
  """Cost of an (open) jaxpr; `tokens` = window-attention tokens T for the `flash` model (0: none).

  `in_attention`: the jaxpr was called under `ops.attention`'s name scope. Passed down because the inner jaxprs
  of jitted helpers (jnp.einsum) are traced once per signature and shared, so their eqns show the first caller's.
  `by_op`: if given, also accumulates each dot/convolution's cost (× `times`, the enclosing loops' trip counts)
  under `_op_key`.
  """
  peak, bw, vec = chip['peak_tflops'] * 1e12, chip['hbm_tb_s'] * 1e12, chip['vector_tflops'] * 1e12
  cost = Cost()
  sub_cost = lambda j, inside, n=1.: jaxpr_cost(j, chip, tokens, inside, by_op, times * n)
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    inside = in_attention or _in_attention(eqn)
    if name in ('dot_general', 'conv_general_dilated'):
      f = _matmul_flops(eqn)
      avals = [v.aval for v in eqn.invars] + [v.aval for v in eqn.outvars]
      b_xla = sum(_bytes(a) for a in avals)
      b_flash = sum(_bytes(a) for a in avals if not (inside and _is_score(a, tokens)))
      op = Cost(matmul_flops=f, matmul_bytes_xla=b_xla, matmul_bytes_flash=b_flash, matmul_calls=1,
                time_xla=max(f / peak, b_xla / bw), time_flash=max(f / peak, b_flash / bw))
      cost.add(op)
      if by_op is not None:
        by_op.setdefault(_op_key(eqn, inside), Cost()).add(op, times)
    elif name == 'scan':
      cost.add(sub_cost(eqn.params['jaxpr'].jaxpr, inside, eqn.params['length']), eqn.params['length'])
    elif name == 'cond':
      branches = [jaxpr_cost(b.jaxpr, chip, tokens, inside) for b in eqn.params['branches']]
      worst = max(range(len(branches)), key=lambda i: branches[i].time_xla)
      cost.add(sub_cost(eqn.params['branches'][worst].jaxpr, inside))
    elif name == 'while':
      body = sub_cost(eqn.params['body_jaxpr'].jaxpr, inside)
      body.unknown_loops += 1
      cost.add(body)
    elif any(True for _ in _sub_jaxprs(eqn)):
      for sub in _sub_jaxprs(eqn):  # jit, custom_vjp/jvp (their primal), checkpoint, shard_map
        cost.add(sub_cost(sub, inside))
    elif name not in _MOVES:
      n = sum(_size(v.aval) for v in eqn.invars) if name in _REDUCTIONS else _size(eqn.outvars[0].aval)
      cost.add(Cost(vector_flops=n, time_xla=n / vec, time_flash=n / vec))
  return cost


def traced_cost(traced, chip: dict | None = None, tokens: int = 0, by_op: dict | None = None) -> Cost:
  """Cost of `jitted.trace(*args)` (a `jax.stages.Traced`); see `jaxpr_cost` for `tokens` and `by_op`."""
  return jaxpr_cost(traced.jaxpr.jaxpr, chip or H100, tokens, by_op=by_op)


def step_cost(task: str, batch: int, size: int, dtype: str = 'bfloat16', chip: dict | None = None,
              microbatch_size: int = 0, by_op: dict | None = None, gradients: str = 'autodiff') -> tuple[Cost, int]:
  """(Cost, window tokens T) of the training loop's step for `configs/<task>.py` at (batch, size)."""
  import jax  # pylint: disable=g-import-not-at-top
  from benchmarks import train_bench  # pylint: disable=g-import-not-at-top
  from mgdn_jax import sharding, train  # pylint: disable=g-import-not-at-top
  config = train_bench.train_config(task, batch, size, dtype=dtype, microbatch_size=microbatch_size,
                                    gradients=gradients)
  built = train.build(config, sharding.make_mesh(jax.devices()[:1]))
  m = config.model
  tokens = m.window_size ** 2 if 'window_size' in m else 0
  traced = built.step_fn.trace(jax.eval_shape(built.init), train_bench.batch_shapes(config))
  return traced_cost(traced, chip, tokens, by_op), tokens


def table(rows: list[dict]) -> str:
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  return common.markdown_table(
      ['task', 'batch × size', 'GFLOP/step', 'of it on tensor cores', 'GEMM/conv GB (xla / flash)',
       'best step ms (xla / flash)', 'MFU bound xla', 'MFU bound flash'],
      [[r['task'], f"{r['batch']} × {r['size']}²", r['gflop'], f"{100 * r['matmul_share']:.1f}%",
        f"{r['gb_xla']:.1f} / {r['gb_flash']:.1f}", f"{r['ms_xla']:.2f} / {r['ms_flash']:.2f}",
        f"{100 * r['mfu_xla']:.1f}%", f"{100 * r['mfu_flash']:.1f}%"] for r in rows])


def breakdown_table(by_op: dict, total: Cost, top: int) -> str:
  """The `top` dot/convolution kinds by their share of the `flash` bound's time."""
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  ranked = sorted(by_op.items(), key=lambda kv: -kv[1].time_flash)[:top]
  return common.markdown_table(
      ['op (operand shapes)', 'calls', 'GFLOP', 'FLOP/byte (flash)', 'bound ms xla / flash', 'share of flash bound'],
      [[f'`{k}`', f'{c.matmul_calls:.0f}', c.matmul_flops / 1e9,
        f'{c.matmul_flops / c.matmul_bytes_flash:.1f}' if c.matmul_bytes_flash else 'inf',
        f'{c.time_xla * 1e3:.3f} / {c.time_flash * 1e3:.3f}', f'{100 * c.time_flash / total.time_flash:.1f}%']
       for k, c in ranked])


PROG = 'roofline'


def define_flags(f) -> None:
  from absl import flags  # pylint: disable=g-import-not-at-top
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  from mgdn_jax import tasks  # pylint: disable=g-import-not-at-top
  common.define_list('tasks', 'mef,mff,hdr', f'comma-separated subset of {tasks.NAMES} (configs/<task>.py)', f,
                     choices=tasks.NAMES)
  common.define_list('batches', '4', 'comma-separated global batch sizes of the train step', f, item=int,
                     lower_bound=1)
  common.define_list('sizes', '128', 'comma-separated training patch sizes', f, item=int, lower_bound=1)
  flags.DEFINE_enum('dtype', 'bfloat16', ['float32', 'bfloat16'], 'compute dtype of the model', flag_values=f)
  flags.DEFINE_enum('ops_gradients', 'autodiff', ['autodiff', 'custom'],
                    "config.gradients of the step: 'autodiff' = what accelerators run, 'custom' = the XLA:CPU-tuned "
                    "VJPs ('tuned_cpu', mgdn_jax/kernels)", flag_values=f)
  flags.DEFINE_float('peak_tflops', H100['peak_tflops'], 'dense tensor-core peak', flag_values=f)
  flags.DEFINE_float('hbm_tb_s', H100['hbm_tb_s'], 'memory bandwidth, TB/s', flag_values=f)
  flags.DEFINE_float('vector_tflops', H100['vector_tflops'], 'non-tensor-core peak', flag_values=f)
  for name in H100:  # the bound divides by each
    flags.register_validator(name, lambda v: v > 0, 'must be > 0', flag_values=f)
  flags.DEFINE_integer('breakdown', 0, 'also list the N costliest dot/convolution kinds', lower_bound=0,
                       flag_values=f)
  flags.DEFINE_string('json_out', '', 'also write the rows as JSON here', flag_values=f)


def main(argv=None) -> None:
  from mgdn_jax import cli  # pylint: disable=g-import-not-at-top
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  gradients = 'tuned_cpu' if args.ops_gradients == 'custom' else 'autodiff'
  chip = dict(peak_tflops=args.peak_tflops, hbm_tb_s=args.hbm_tb_s, vector_tflops=args.vector_tflops)
  rows, breakdowns = [], []
  for task in args.tasks:
    for batch in args.batches:
      for size in args.sizes:
        by_op = {}
        c, tokens = step_cost(task, batch, size, args.dtype, chip, microbatch_size=batch, by_op=by_op,
                              gradients=gradients)
        if args.breakdown:
          breakdowns.append(f'{task}, {batch} × {size}²: {c.matmul_calls:.0f} dot/convolution calls per step\n\n'
                            + breakdown_table(by_op, c, args.breakdown))
        rows.append(dict(task=task, batch=batch, size=size, dtype=args.dtype, tokens=tokens, gflop=c.flops / 1e9,
                         matmul_share=c.matmul_flops / c.flops, gb_xla=c.matmul_bytes_xla / 1e9,
                         gb_flash=c.matmul_bytes_flash / 1e9, ms_xla=c.time_xla * 1e3, ms_flash=c.time_flash * 1e3,
                         mfu_xla=c.mfu_bound(chip, 'xla'), mfu_flash=c.mfu_bound(chip, 'flash'),
                         calls=c.matmul_calls, unknown_loops=c.unknown_loops, chip=chip,
                         ops_gradients=args.ops_gradients))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
  print(f"{args.dtype} train step, {args.ops_gradients} gradients; chip: {args.peak_tflops:g} TFLOP/s tensor, "
        f"{args.hbm_tb_s:g} TB/s, {args.vector_tflops:g} TFLOP/s vector\n")
  print(table(rows))
  for b in breakdowns:
    print('\n' + b)
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump(rows, f, indent=1)


if __name__ == '__main__':
  main()
