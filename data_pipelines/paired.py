"""Finding, validating and encoding the source pairs of fusion test sets (Lytro, MFFW, MEFB).

Scenes are found and every image is decoded in a scan *before* TFDS writes anything, so a bad file stops the
preparation with a one-line error and leaves nothing behind.
"""
import collections
import logging
import pathlib
import re

from data_pipelines import common

_SUFFIX = re.compile(r'^(?P<scene>.+?)[-_](?P<letter>[A-Za-z])$')


def _by_stem(folder: pathlib.Path) -> dict[str, pathlib.Path]:
  """The images of `folder` by file stem; two files of one stem (X.png and X.jpg) would pair ambiguously."""
  files = {}
  for path in common.list_images(folder):
    if path.stem in files:
      raise common.DataError(f'{files[path.stem]} and {path}: two images of one name (keep one of them)')
    files[path.stem] = path
  return files


def scan_ab_folders(folder: pathlib.Path) -> list[tuple[str, list[pathlib.Path]]]:
  """`folder/A/<n>.*` and `folder/B/<n>.*`, paired by file stem; every file must have its partner."""
  a_files = _by_stem(folder / 'A')
  b_files = _by_stem(folder / 'B')
  for stem, path in sorted({**b_files, **a_files}.items()):
    if stem not in a_files or stem not in b_files:
      other = 'A' if stem not in a_files else 'B'
      raise common.DataError(f'{path}: unmatched pair (no {stem}.* in {folder / other})')
  return [(stem, [a_files[stem], b_files[stem]]) for stem in sorted(a_files)]


def scan_suffixed(folder: pathlib.Path, letters=('A', 'B')) -> list[tuple[str, list[pathlib.Path]]]:
  """Files `<scene>-A.*` / `<scene>_B.*` in one folder (letter case-insensitive), grouped by scene.

  Scenes with more sources than `letters` (e.g. Lytro's three-source series, with a `-C` file) are skipped.
  """
  groups = collections.defaultdict(dict)
  for path in common.list_images(folder):
    m = _SUFFIX.match(path.stem)
    if not m:
      raise common.DataError(f'{path}: name does not end in -A/-B (expected <scene>-A.<ext>, <scene>-B.<ext>)')
    letter = m['letter'].upper()
    scene = m['scene']
    if letter in groups[scene.lower()]:
      raise common.DataError(f'{path}: second source {letter} of scene {scene}')
    groups[scene.lower()][letter] = path
  scenes = []
  for _, files in sorted(groups.items()):
    extra = sorted(set(files) - set(letters))
    if extra:
      logging.info('skipping %s: %d-source scene', files[sorted(files)[0]], len(files))
      continue
    for letter in letters:
      if letter not in files:
        some = next(iter(files.values()))
        raise common.DataError(f'{some}: unmatched pair (no {letter} source beside it)')
    name = _SUFFIX.match(files[letters[0]].stem)['scene']
    scenes.append((name, [files[letter] for letter in letters]))
  return scenes


def scan_pairs(folder: pathlib.Path, what: str) -> list[tuple[str, list[pathlib.Path]]]:
  """Either layout: `A/` + `B/` sub-folders, or one folder of `<scene>-A.*`, `<scene>-B.*` files."""
  folder = common.require_dir(folder, what)
  if (folder / 'A').is_dir() or (folder / 'B').is_dir():
    scenes = scan_ab_folders(folder)
  else:
    scenes = scan_suffixed(folder)
  if not scenes:
    raise common.DataError(f'{folder}: no image pairs found ({what}: expected A/ and B/ folders or '
                           '<scene>-A.<ext> / <scene>-B.<ext> files)')
  return scenes


def validate(scenes) -> None:
  """Decodes every image; raises on unreadable files, on streams of different sizes within a scene and on two
  scenes of one name (names are the dataset's keys, e.g. lytro-02 and lytro_02 both become lytro_02)."""
  first = {}
  for name, paths in scenes:
    if name in first:
      raise common.DataError(f'{first[name]} and {paths[0]}: both give the scene name {name} (keep one of them)')
    first[name] = paths[0]
  for name, paths in scenes:
    shapes = [common.read_rgb8(p).shape[:2] for p in paths]
    common.check_same_size(name, paths, shapes)


def generate(scenes):
  """(key, example) of fusion pairs: image_k = encoded source k, name = scene name (also the key)."""
  for name, paths in scenes:
    example = {f'image_{k}': common.encoded_rgb8(p)[0] for k, p in enumerate(paths)}
    example['name'] = name
    yield name, example
