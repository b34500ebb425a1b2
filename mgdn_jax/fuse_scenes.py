"""How fuse's INPUTS become scenes: files of one scene, K stream folders paired by scene name, one folder per
scene, or a folder of <scene>_A.* / <scene>_B.* files (see `python -m mgdn_jax.fuse --help`), and where each
scene's output goes.
"""
import dataclasses
import glob
import os
import pathlib
import re

from mgdn_jax import image_io
from mgdn_jax import tasks
from mgdn_jax.image_io import InputError

PREVIEW_SUFFIX = tasks.HDR.preview_suffix
# A trailing tag that names a file's role inside its scene; the rest of the name is the scene key.
_ROLE = re.compile(r'^(.+?)[_\-. ](a|b|c|under|ref|mid|over|rgb|color|colour|guide|depth|lr)$', re.IGNORECASE)
_RANK = {'a': 0, 'under': 0, 'rgb': 0, 'color': 0, 'colour': 0, 'guide': 0, 'b': 1, 'ref': 1, 'mid': 1,
         'depth': 1, 'lr': 1, 'c': 2, 'over': 2}
EXPOSURE_FILE = 'exposure.txt'


@dataclasses.dataclass
class Scene:
  name: str
  files: list[pathlib.Path]
  exposures: list[float] | None = None
  output: pathlib.Path | None = None


def _split(path: pathlib.Path) -> tuple[str, str, int]:
  """(scene key, display name, rank of the role tag or -1)."""
  m = _ROLE.match(path.stem)
  if m:
    return m.group(1).lower(), m.group(1), _RANK[m.group(2).lower()]
  return path.stem.lower(), path.stem, -1


def _is_depth(path: pathlib.Path) -> bool:
  m = _ROLE.match(path.stem)
  return path.suffix.lower() == '.npy' or bool(m and m.group(2).lower() in ('depth', 'lr'))


def _input_files(task, folder: pathlib.Path) -> list[pathlib.Path]:
  suffixes = image_io.LDR_SUFFIXES + tasks.get(task).extra_input_suffixes
  return sorted((f for f in folder.iterdir() if f.is_file() and not f.name.startswith('.')
                 and f.suffix.lower() in suffixes and not f.name.endswith(PREVIEW_SUFFIX)),
                key=lambda f: f.name.lower())


def _make_scene(task, name, files, exposures, folder, explicit=False) -> Scene:
  t = tasks.get(task)
  k = t.num_streams
  if len(files) != k:
    listing = ', '.join(str(f) for f in files)
    raise InputError(f'task {task} needs {k} inputs ({t.roles}), got {len(files)} for {name}: {listing}')
  if t.guided_depth:
    files = sorted(files, key=_is_depth)
    if _is_depth(files[0]) or not _is_depth(files[1]) and not explicit:
      raise InputError(f'cannot tell the RGB guide from the depth in {name}: use .npy for the depth or name it '
                       '*_depth.png')
  elif not explicit:
    files = sorted(files, key=lambda f: (_split(f)[2], f.name.lower()))
  if t.needs_exposures:
    if exposures is None:
      ev_file = (folder or files[0].parent) / EXPOSURE_FILE
      if not ev_file.is_file():
        raise InputError(f'task hdr needs exposure values for {name}: pass --exposures=-2,0,2 or put '
                         f'{EXPOSURE_FILE} beside the frames')
      exposures = image_io.read_exposures(ev_file)
    if len(exposures) != k:
      raise InputError(f'task hdr needs {k} exposure values for {name}, got {len(exposures)}: {exposures}')
  return Scene(name, list(files), exposures)


def _group(task, files, exposures, folder) -> list[Scene]:
  groups = {}
  for f in files:
    groups.setdefault(_split(f)[0], []).append(f)
  return [_make_scene(task, _split(fs[0])[1], fs, exposures, folder) for fs in groups.values()]


def _is_scene_dir(task, folder) -> bool:
  files = _input_files(task, folder)
  if tasks.get(task).needs_exposures and (folder / EXPOSURE_FILE).is_file():
    return bool(files)
  return len(files) == tasks.get(task).num_streams and len({_split(f)[0] for f in files}) == 1


def _scenes_in_dir(task, folder, exposures) -> list[Scene]:
  files = _input_files(task, folder)
  if files:
    if _is_scene_dir(task, folder):
      return [_make_scene(task, folder.name, files, exposures, folder)]
    return _group(task, files, exposures, folder)
  subdirs = sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith('.')),
                   key=lambda d: d.name.lower())
  scenes = [s for d in subdirs if _input_files(task, d) for s in _scenes_in_dir(task, d, exposures)]
  if not scenes:
    raise InputError(f'no input images in {folder}')
  return scenes


def _pair_stream_dirs(task, dirs, exposures) -> list[Scene]:
  """K folders, one per stream: pair their files by scene key."""
  tables = []
  for d in dirs:
    table = {}
    for f in _input_files(task, d):
      key = _split(f)[0]
      if key in table:
        raise InputError(f'{table[key]} and {f} have the same scene name')
      table[key] = f
    if not table:
      raise InputError(f'no input images in {d}')
    tables.append(table)
  for d, table in zip(dirs, tables):
    for other_d, other in zip(dirs, tables):
      missing = sorted(set(table) - set(other))
      if missing:
        raise InputError(f'{table[missing[0]]} has no match in {other_d} ({len(missing)} unmatched)')
  return [_make_scene(task, _split(tables[0][key])[1], [t[key] for t in tables], exposures, None, explicit=True)
          for key in sorted(tables[0])]


def find_scenes(task, paths, exposures=None) -> list[Scene]:
  """The scenes named by the expanded command-line inputs (see the --help text)."""
  k = tasks.get(task).num_streams
  files = [p for p in paths if p.is_file()]
  dirs = [p for p in paths if p.is_dir()]
  if files and dirs:
    raise InputError(f'give either files or folders, not both: {", ".join(str(p) for p in paths)}')
  if files:
    if len(files) == k:
      return [_make_scene(task, _split(files[0])[1], files, exposures, None, explicit=True)]
    keys = [_split(f)[0] for f in files]
    if len(files) < k or any(keys.count(key) != k for key in keys):
      listing = ', '.join(str(f) for f in files)
      raise InputError(f'task {task} needs {k} inputs ({tasks.get(task).roles}), got {len(files)}: {listing}')
    return _group(task, files, exposures, None)
  if len(dirs) == k and not all(_is_scene_dir(task, d) for d in dirs):
    return _pair_stream_dirs(task, dirs, exposures)
  return [s for d in dirs for s in _scenes_in_dir(task, d, exposures)]


def assign_outputs(scenes, output, fmt) -> None:
  """One scene: `output` is the file (or a folder to put it in). A batch: `output` is a folder."""
  out = pathlib.Path(output)
  if len(scenes) == 1 and not out.is_dir() and not str(output).endswith(os.sep):
    scenes[0].output = out
    return
  if not out.is_dir():
    if not out.parent.is_dir():
      raise InputError(f'cannot write output {out}: folder {out.parent} does not exist')
    try:
      out.mkdir()
    except OSError as e:
      raise InputError(f'cannot write output {out}: {e.strerror}') from None
  seen = {}
  for s in scenes:
    if s.name.lower() in seen:
      raise InputError(f'two scenes are both named {s.name}: {seen[s.name.lower()][0]} and {s.files[0]}')
    seen[s.name.lower()] = s.files
    s.output = out / f'{s.name}.{fmt}'


def expand_inputs(inputs) -> list[pathlib.Path]:
  out = []
  for item in inputs:
    if not os.path.exists(item) and glob.has_magic(item):
      matches = sorted(glob.glob(item))
      if not matches:
        raise InputError(f'no file matches {item}')
      out.extend(pathlib.Path(m) for m in matches)
    elif not os.path.exists(item):
      raise InputError(f'input {item} does not exist')
    else:
      out.append(pathlib.Path(item))
  return out
