"""Prepares one dataset as array_record: `python -m data_pipelines.prepare --dataset=NAME --manual_dir=DIR`.

DIR is the folder holding the dataset as its authors distribute it, or the root that holds it as DIR/<NAME>.
`mgdn_demo/<task>` needs no --manual_dir.
"""
from absl import app
from absl import flags

_DATASET = flags.DEFINE_string('dataset', None, 'Dataset name[/config], e.g. lytro, kalantari, mgdn_demo/mef.',
                               required=True)
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
