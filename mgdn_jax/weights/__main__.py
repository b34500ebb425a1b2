"""`python -m mgdn_jax.weights list | export --workdir=W --out=F.npz`: list shipped weights, export a run's best."""
import argparse
import json
import sys


def main(argv=None) -> None:
  p = argparse.ArgumentParser(prog='python -m mgdn_jax.weights', description=__doc__.split(':')[0])
  sub = p.add_subparsers(dest='command', required=True)
  sub.add_parser('list', help='the shipped weights with their sha256 and what they are')
  ex = sub.add_parser('export', help="a training run's weights as one self-describing .npz")
  ex.add_argument('--workdir', required=True, help='training workdir (main.py --workdir)')
  ex.add_argument('--out', required=True, help='new .npz file')
  ex.add_argument('--step', type=int, help='this checkpoint step (default: the best by eval metric, else latest)')
  ex.add_argument('--raw', action='store_true', help='the raw trained weights instead of the EMA')
  ex.add_argument('--info', default='{}', help='JSON object stored with the weights (who/what/how long/scores)')
  args = p.parse_args(argv)
  from mgdn_jax import weights  # pylint: disable=g-import-not-at-top
  if args.command == 'list':
    for name, path in weights.shipped().items():
      _, config, info = weights.read(path)
      print(f'{name}\t{config.task}\t{path.stat().st_size / 1e6:.2f} MB\tsha256 {weights.sha256(path)}\t'
            f'{json.dumps(info, sort_keys=True)}')
    return
  try:
    info = json.loads(args.info)
    from mgdn_jax import checkpoint  # pylint: disable=g-import-not-at-top
    model, config = checkpoint.load_model(args.workdir, step=args.step, use_ema=not args.raw)
    digest = weights.export(args.out, model, config, info)
  except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError) as e:
    sys.exit(f'error: {" ".join(str(e).split())}')
  print(f'wrote {args.out} (sha256 {digest})')


if __name__ == '__main__':
  main()
