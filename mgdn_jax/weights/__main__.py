"""`python -m mgdn_jax.weights list | export --workdir=W --out=F.npz`: list shipped weights, export a run's best.

  list    the shipped weights with their sha256 and what they are
  export  a training run's weights as one self-describing .npz (--workdir, --out; --step, --raw, --info)
"""
import json
import sys

from absl import flags

from mgdn_jax import cli

PROG = 'weights'
COMMANDS = ('list', 'export')


def define_flags(f: flags.FlagValues) -> None:
  """The flags of `export` on `f` (cli.parse); `list` takes none."""
  flags.DEFINE_string('workdir', None, 'export: training workdir (main.py --workdir)', flag_values=f)
  flags.DEFINE_string('out', None, 'export: new .npz file', flag_values=f)
  flags.DEFINE_integer('step', None, 'export: this checkpoint step (default: the best by eval metric, else latest)',
                       lower_bound=0, flag_values=f)
  flags.DEFINE_bool('raw', False, 'export: the raw trained weights instead of the EMA', flag_values=f)
  flags.DEFINE_string('info', '{}', 'export: JSON object stored with the weights (who/what/how long/scores)',
                      flag_values=f)


def main(argv=None) -> None:
  args, rest = cli.parse(PROG, __doc__, define_flags, argv, positional='COMMAND: list | export')
  if len(rest) != 1 or rest[0] not in COMMANDS:
    cli.usage_error(PROG, f'give one command, list or export (got {" ".join(rest) or "none"})')
  from mgdn_jax import weights  # pylint: disable=g-import-not-at-top
  if rest[0] == 'list':
    for name, path in weights.shipped().items():
      _, config, info = weights.read(path)
      print(f'{name}\t{config.task}\t{path.stat().st_size / 1e6:.2f} MB\tsha256 {weights.sha256(path)}\t'
            f'{json.dumps(info, sort_keys=True)}')
    return
  for name in ('workdir', 'out'):
    if args[name].value is None:
      cli.usage_error(PROG, f'export needs --{name}')
  try:
    info = json.loads(args.info)
    from mgdn_jax import checkpoint  # pylint: disable=g-import-not-at-top
    model, config = checkpoint.load_model(args.workdir, step=args.step, use_ema=not args.raw)
    digest = weights.export(args.out, model, config, info)
  except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as e:
    cli.fail(PROG, e)
  print(f'wrote {args.out} (sha256 {digest})')


if __name__ == '__main__':
  main(sys.argv[1:])
