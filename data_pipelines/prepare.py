"""Prepares one dataset as array_record: `python -m data_pipelines.prepare --dataset=NAME --manual_dir=DIR`.

DIR is the folder holding the dataset as its authors distribute it, or the root that holds it as DIR/<NAME>.
`mgdn_demo/<task>` needs no --manual_dir.
"""
import sys
import types

from absl import flags

import data_pipelines  # the package's builders (imported anyway to run this module)


def _names() -> str:
  """'drpl_mff[/x1|x8], kalantari, …': every builder of data_pipelines with its configs."""
  out = []
  modules = [m for m in vars(data_pipelines).values() if isinstance(m, types.ModuleType)]
  for module in modules:
    for builder in vars(module).values():
      if isinstance(builder, type) and getattr(builder, '__module__', '') == module.__name__ and hasattr(
          builder, 'BUILDER_CONFIGS') and hasattr(builder, 'name') and builder.__dict__.get('VERSION'):
        configs = '|'.join(c.name for c in builder.BUILDER_CONFIGS)
        out.append(builder.name + (f'[/{configs}]' if configs else ''))
  return ', '.join(sorted(out))


PROG = 'prepare'


def define_flags(f: flags.FlagValues) -> None:
  """prepare's flags on `f` (mgdn_jax.cli.parse)."""
  flags.DEFINE_string('dataset', None, f'Dataset name[/config], one of: {_names()}.', required=True, flag_values=f)
  flags.DEFINE_string('manual_dir', None, 'Folder with the dataset files (or their root).', flag_values=f)
  flags.DEFINE_string('data_dir', None, 'TFDS data_dir (default: ~/tensorflow_datasets).', flag_values=f)


def main(argv=None) -> None:
  from mgdn_jax import cli
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  from data_pipelines import common
  from data_pipelines import loader
  try:
    builder = loader.prepare(args.dataset, manual_dir=args.manual_dir, data_dir=args.data_dir)
  except common.DataError as e:
    cli.fail(PROG, e)
  splits = ', '.join(f'{k}: {v.num_examples}' for k, v in sorted(builder.info.splits.items()))
  print(f'{builder.info.full_name} prepared in {builder.data_dir} ({splits})')


if __name__ == '__main__':
  main(sys.argv[1:])
