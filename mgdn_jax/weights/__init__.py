"""Released weights: one self-describing `.npz` per model (its full config + its parameters), loaded by path or by
a short name (`mgdn-jax/<name>` for the files shipped in this folder).

  python -m mgdn_jax.weights list
  python -m mgdn_jax.weights export --workdir=/tmp/mff --out=/tmp/mff-drpl.npz   # best EMA weights of a run

File layout (numpy `.npz`, no pickles): `__format__` (FORMAT), `__config__` (the training ConfigDict as JSON;
`config.model` rebuilds the network), `__info__` (JSON: who trained it, on what, for how long, its scores) and one
float32 array per parameter, keyed by its path in the model (`stages/0/mgdf/...`).
"""
import hashlib
import json
import os
import pathlib
import tempfile
from typing import Any

import numpy as np

FORMAT = 'mgdn-jax-weights/1'
PREFIX = 'mgdn-jax/'
SHIPPED_DIR = pathlib.Path(__file__).resolve().parent
_META = ('__format__', '__config__', '__info__')


def shipped() -> dict[str, pathlib.Path]:
  """{short name: file} of the weights shipped with the package."""
  return {PREFIX + p.stem: p for p in sorted(SHIPPED_DIR.glob('*.npz'))}


def resolve(spec: str | os.PathLike) -> pathlib.Path | None:
  """The weights file `spec` names (a short name or a `.npz` path), or None when it names something else.

  Raises FileNotFoundError for an unknown short name or a missing `.npz` path.
  """
  spec = os.fspath(spec)
  if spec.startswith(PREFIX):
    files = shipped()
    if spec not in files:
      raise FileNotFoundError(f'unknown weights {spec!r} (shipped: {", ".join(files) or "none"})')
    return files[spec]
  path = pathlib.Path(spec).expanduser()
  if path.suffix == '.npz':
    if not path.is_file():
      raise FileNotFoundError(f'{path}: no such weights file')
    return path
  return None


def sha256(path: str | os.PathLike) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def _key(path) -> str:
  return '/'.join(str(getattr(k, 'key', getattr(k, 'idx', k))) for k in path)


def flat_params(model) -> dict[str, np.ndarray]:
  """{'stages/0/...': float32 array} of the model's `nnx.Param`s."""
  import jax
  from mgdn_jax import checkpoint
  leaves = jax.tree_util.tree_flatten_with_path(checkpoint.param_dict(model))[0]
  return {_key(path): np.asarray(jax.device_get(value), np.float32) for path, value in leaves}


def export(path: str | os.PathLike, model, config, info: dict[str, Any] | None = None) -> str:
  """Writes `model`'s parameters with `config` (and `info`) to a new `.npz`; returns its sha256.

  Never replaces an existing file; refuses non-finite parameters; the file appears only once complete.
  """
  from mgdn_jax import run_config
  path = pathlib.Path(path).expanduser()
  if path.suffix != '.npz':
    raise ValueError(f'{path}: weights files end in .npz')
  if path.exists():
    raise FileExistsError(f'{path} exists: export to a new file')
  arrays = flat_params(model)
  bad = [k for k, v in arrays.items() if not np.isfinite(v).all()]
  if bad:
    raise FloatingPointError(f'not exported: {len(bad)} parameters are not finite (first: {bad[0]})')
  arrays.update(__format__=np.asarray(FORMAT), __config__=np.asarray(run_config.config_to_json(config)),
                __info__=np.asarray(json.dumps(info or {}, sort_keys=True)))
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
  try:
    with os.fdopen(fd, 'wb') as f:
      np.savez_compressed(f, **arrays)
    os.link(tmp, path)  # fails instead of replacing a file that appeared meanwhile
  finally:
    os.unlink(tmp)
  return sha256(path)


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], Any, dict]:
  """(parameters by key, config, info) of a weights file; one-line ValueError when it is not one."""
  from mgdn_jax import run_config
  try:
    with np.load(path, allow_pickle=False) as z:
      files = set(z.files)
      if '__format__' not in files or str(z['__format__']) != FORMAT:
        raise ValueError(f'{path}: not an MGDN-JAX weights file (no {FORMAT!r} marker)')
      config = run_config.config_from_json(str(z['__config__']))
      info = json.loads(str(z['__info__'])) if '__info__' in files else {}
      params = {k: z[k] for k in files if k not in _META}
  except ValueError:
    raise
  except Exception as e:  # zipfile/OSError/KeyError: a truncated or foreign file
    raise ValueError(f'{path}: unreadable weights file ({type(e).__name__}: {e})') from None
  return params, config, info


def load(spec: str | os.PathLike, dtype: str | None = None):
  """`(model, config)` from a weights file or short name; checks every parameter's presence, shape and finiteness.

  `dtype`: compute dtype ('float32' | 'bfloat16') instead of the stored config's; the weights stay float32.
  """
  import jax
  from mgdn_jax import checkpoint
  from mgdn_jax import model as model_lib
  path = resolve(spec)
  if path is None:
    raise FileNotFoundError(f'{spec}: not a weights file (.npz) nor a short name ({PREFIX}<name>)')
  params, config, _ = read(path)
  if dtype is not None:
    config.model.dtype = dtype
  abstract = model_lib.create_model(config.model, abstract=True)
  target = checkpoint.param_dict(abstract)
  missing, wrong = [], []

  def fill(key_path, leaf):
    key = _key(key_path)
    if key not in params:
      missing.append(key)
      return np.zeros(leaf.shape, leaf.dtype)
    value = params.pop(key)
    if value.shape != leaf.shape:
      wrong.append(f'{key} {value.shape} != {leaf.shape}')
    return value.astype(leaf.dtype)

  filled = jax.tree_util.tree_map_with_path(fill, target)
  problems = ([f'missing {missing[0]} (+{len(missing) - 1})'] if missing else []) + wrong[:1] + (
      [f'unexpected {sorted(params)[0]}'] if params else [])
  if problems:
    raise ValueError(f'{path}: parameters do not match its config ({"; ".join(problems)})')
  bad = [k for k, v in jax.tree_util.tree_flatten_with_path(filled)[0] if not np.isfinite(v).all()]
  if bad:
    raise ValueError(f'{path}: {len(bad)} parameters are not finite (first: {_key(bad[0])})')
  return checkpoint._merge_params(abstract, filled), config  # pylint: disable=protected-access
