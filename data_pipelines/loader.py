"""Finding, preparing and opening the TFDS datasets of the project (without TensorFlow)."""
import os
import pathlib
import shutil

import tensorflow_datasets as tfds

from data_pipelines import common

# Builders that need no manual_dir: they prepare themselves whenever they are missing.
SELF_PREPARING = ('mgdn_demo',)


def split_name(spec: str) -> tuple[str, str]:
  """'mefb:test' → ('mefb', 'test'); 'mgdn_demo/mef:train' → ('mgdn_demo/mef', 'train')."""
  if ':' not in spec:
    raise ValueError(f'eval dataset {spec!r}: expected "name[/config]:split", e.g. "mefb:test"')
  name, split = spec.rsplit(':', 1)
  return name, split


def _manual_folder(base: str, manual_dir: str | os.PathLike) -> pathlib.Path:
  """`manual_dir/<base>` when it exists (manual_dir is the root of all datasets), else manual_dir itself."""
  root = pathlib.Path(manual_dir).expanduser()
  return root / base if (root / base).is_dir() else root


def _builder(name: str, data_dir) -> tfds.core.DatasetBuilder:
  import data_pipelines  # noqa: F401  (registers the builders)
  try:
    return tfds.builder(name, data_dir=data_dir, file_format='array_record')
  except tfds.core.registered.DatasetNotFoundError:
    raise common.DataError(f'unknown dataset {name!r} (not a builder of data_pipelines nor of TFDS)') from None
  except ValueError as e:  # e.g. an unknown builder config
    base = name.split('/')[0]
    try:
      configs = sorted(tfds.builder_cls(base).builder_configs)
    except Exception:  # pylint: disable=broad-except
      configs = []
    if configs:
      raise common.DataError(f'dataset {name!r}: unknown config (choose one of {configs})') from None
    raise common.DataError(f'dataset {name!r}: {str(e).splitlines()[0]}') from None


def prepare(name: str, manual_dir=None, data_dir=None) -> tfds.core.DatasetBuilder:
  """Prepares dataset `name` ('lytro', 'mgdn_demo/mef', …) as array_record; a no-op when already prepared.

  `manual_dir` is either the root holding the dataset's folder (manual_dir/<name>) or that folder itself.
  On failure nothing is left in data_dir: the builders validate the whole folder before writing, and whatever
  TFDS created for this dataset is removed.
  """
  builder = _builder(name, data_dir)
  if builder.is_prepared():
    return builder
  base = name.split('/')[0]
  download_config = None
  if base not in SELF_PREPARING:
    if manual_dir is None:
      raise common.DataError(f'dataset {name}: no manual_dir given ({_how(name)})')
    folder = _manual_folder(base, manual_dir)
    if not folder.is_dir():
      raise common.DataError(f'dataset {name}: manual_dir {folder} does not exist ({_how(name)})')
    if not any(folder.iterdir()):
      raise common.DataError(f'dataset {name}: manual_dir {folder} is empty ({_how(name)})')
    download_config = tfds.download.DownloadConfig(manual_dir=os.fspath(folder))
  dataset_dir = pathlib.Path(builder.data_dir_root) / base
  downloads_dir = pathlib.Path(builder.data_dir_root) / 'downloads'
  existed = dataset_dir.exists(), downloads_dir.exists()
  try:
    builder.download_and_prepare(download_config=download_config)
  except BaseException:
    # TFDS removes its incomplete.* folder itself; remove the folders it created around it.
    if not existed[0]:
      shutil.rmtree(dataset_dir, ignore_errors=True)
    if not existed[1] and downloads_dir.is_dir() and not any(p.is_file() for p in downloads_dir.rglob('*')):
      shutil.rmtree(downloads_dir, ignore_errors=True)
    raise
  return builder


def _how(name: str) -> str:
  base = name.split('/')[0]
  return (f'put the dataset in <manual_dir>/{base} and set config.data.manual_dir, or run '
          f'`python -m data_pipelines.prepare --dataset={name} --manual_dir=DIR`')


def data_source(name: str, split: str, manual_dir=None, data_dir=None):
  """The random-access source of `name:split`, preparing the dataset first when it is missing and possible.

  Raises a one-line DataError saying how to prepare the dataset when it is neither prepared nor preparable.
  """
  builder = _builder(name, data_dir)
  if not builder.is_prepared():
    base = name.split('/')[0]
    folder = None
    if base not in SELF_PREPARING:
      # config.data.manual_dir is the root of all datasets: only manual_dir/<base> counts here.
      folder = pathlib.Path(manual_dir).expanduser() / base if manual_dir is not None else None
      if folder is None or not folder.is_dir():
        raise common.DataError(f'dataset {name} is not prepared in {builder.data_dir_root}: {_how(name)}')
    builder = prepare(name, manual_dir=folder, data_dir=data_dir)
  if split not in builder.info.splits:
    raise common.DataError(f'dataset {name} has no split {split!r} (has {sorted(builder.info.splits)})')
  return builder.as_data_source(split)
