"""Prepares one dataset as array_record: `python -m data_pipelines.prepare --dataset=NAME --manual_dir=DIR`.

DIR is the folder holding the dataset as its authors distribute it, or the root that holds it as DIR/<NAME>.
`mgdn_demo/<task>` needs no --manual_dir.
"""
import types

from absl import app
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


_DATASET = flags.DEFINE_string('dataset', None, f'Dataset name[/config], one of: {_names()}.', required=True)
_MANUAL_DIR = flags.DEFINE_string('manual_dir', None, 'Folder with the dataset files (or their root).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'TFDS data_dir (default: ~/tensorflow_datasets).')


def main(argv):
  del argv
  from data_pipelines import common
  from data_pipelines import loader
  try:
    builder = loader.prepare(_DATASET.value, manual_dir=_MANUAL_DIR.value, data_dir=_DATA_DIR.value)
  except common.DataError as e:
    raise SystemExit(f'error: {e}') from None
  splits = ', '.join(f'{k}: {v.num_examples}' for k, v in sorted(builder.info.splits.items()))
  print(f'{builder.info.full_name} prepared in {builder.data_dir} ({splits})')


if __name__ == '__main__':
  app.run(main)
