"""Finding, preparing and opening the TFDS datasets of the project (without TensorFlow)."""
import contextlib
import fcntl
import logging
import os
import pathlib
import shutil
import tempfile

import tensorflow_datasets as tfds

from data_pipelines import common

log = logging.getLogger(__name__)

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


def _published(name: str, data_dir) -> tfds.core.DatasetBuilder | None:
  """The builder of `name` when its dataset is published in data_dir, else None.

  The builder returned is made after the check: one made before another process publishes the dataset holds the
  code's info, without the splits on disk, even though its is_prepared() then says True.
  """
  return _builder(name, data_dir) if _builder(name, data_dir).is_prepared() else None


@contextlib.contextmanager
def _preparation_lock(root: pathlib.Path, name: str):
  """An exclusive lock on the data_dir, held while one process prepares and publishes a dataset into it.

  The folder itself is locked, so no lock file is left behind; the kernel releases the lock when its holder
  exits, killed or not. Preparations into one data_dir therefore run one at a time.
  """
  fd = os.open(root, os.O_RDONLY)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      log.warning('waiting for another process preparing a dataset in %s (to prepare %s)', root, name)
      fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)


def prepare(name: str, manual_dir=None, data_dir=None) -> tfds.core.DatasetBuilder:
  """Prepares dataset `name` ('lytro', 'mgdn_demo/mef', …) as array_record; a no-op when already prepared.

  `manual_dir` is either the root holding the dataset's folder (manual_dir/<name>) or that folder itself.
  The dataset is built in a private temporary folder inside data_dir and published with one atomic rename, under
  a lock: a concurrent prepare of the same dataset waits, then reuses what the first one published. On failure
  only the temporary folder is removed; nothing that was in data_dir before is touched.
  """
  if (published := _published(name, data_dir)) is not None:
    return published
  builder = _builder(name, data_dir)
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
  root = pathlib.Path(builder.data_dir_root)
  try:
    root.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise common.DataError(f'dataset {name}: cannot create data_dir {root}: {e.strerror}') from None
  with _preparation_lock(root, name):
    if (published := _published(name, data_dir)) is not None:  # published by another process meanwhile
      return published
    final = pathlib.Path(builder.data_dir)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):  # rename replaces an empty folder
      raise common.DataError(f'dataset {name}: {final} exists but holds no prepared dataset; move it away and '
                             'prepare again')
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f'.prepare-{base}-', dir=root))
    try:
      staged = _builder(name, staging)
      staged.download_and_prepare(download_config=download_config)
      final.parent.mkdir(parents=True, exist_ok=True)
      os.rename(staged.data_dir, final)
    finally:
      shutil.rmtree(staging, ignore_errors=True)
  return _builder(name, data_dir)


def _how(name: str) -> str:
  base = name.split('/')[0]
  return (f'put the dataset in <manual_dir>/{base} and set config.data.manual_dir, or run '
          f'`python -m data_pipelines.prepare --dataset={name} --manual_dir=DIR`')


def data_source(name: str, split: str, manual_dir=None, data_dir=None):
  """The random-access source of `name:split`, preparing the dataset first when it is missing and possible.

  Raises a one-line DataError saying how to prepare the dataset when it is neither prepared nor preparable.
  """
  builder = _published(name, data_dir)
  if builder is None:
    base = name.split('/')[0]
    folder = None
    if base not in SELF_PREPARING:
      # config.data.manual_dir is the root of all datasets: only manual_dir/<base> counts here.
      folder = pathlib.Path(manual_dir).expanduser() / base if manual_dir is not None else None
      if folder is None or not folder.is_dir():
        raise common.DataError(f'dataset {name} is not prepared in {_builder(name, data_dir).data_dir_root}: '
                               f'{_how(name)}')
    builder = prepare(name, manual_dir=folder, data_dir=data_dir)
  if split not in builder.info.splits:
    raise common.DataError(f'dataset {name} has no split {split!r} (has {sorted(builder.info.splits)})')
  return builder.as_data_source(split)
