"""Image folders for evaluation without a prepared dataset: source pairs on disk and other methods' fused images.

Source layouts accepted by `source_scenes(root)` (the ones the official scripts and the benchmarks ship):
  * `root/A/*` + `root/B/*` (Lytro, MFFW) or `root/under/*` + `root/over/*` (MGDN MEF test sets): sorted and
    paired by index like the official scripts; the scene name is the A file's stem without a trailing `_A`;
  * `root/<Name>/` folders holding one `*_A.*` and one `*_B.*` file (MEFB; case-insensitive `a`/`b`): the scene
    name is the folder name.
Fused images are matched to scenes by file stem, case-insensitively: by default `<scene>.<ext>` (e.g.
`lytro_01.png`); a pattern such as '{scene}_{method}' reads MEFB's output folder, where all methods' results sit
side by side as `<scene>_<method>.<ext>` (e.g. `507_U2Fusion.tif`).
"""
import pathlib
from typing import Iterator

import numpy as np
from PIL import Image

IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.ppm')
_PAIR_DIRS = (('A', 'B'), ('under', 'over'))


class FolderError(ValueError):
  """A one-line problem with an image folder or file (names the scene and the file)."""


def _images(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def read_rgb8(path: pathlib.Path) -> np.ndarray:
  """An 8-bit image file as (H, W, 3) uint8 (gray is replicated, alpha dropped); one-line error otherwise."""
  try:
    with Image.open(path) as im:
      im.load()
      if im.mode in ('I', 'F') or im.mode.startswith('I;16'):
        raise FolderError(f'{path}: not an 8-bit image (PIL mode {im.mode})')
      return np.asarray(im.convert('RGB') if im.mode != 'RGB' else im, dtype=np.uint8)
  except FolderError:
    raise
  except Exception as e:  # PIL raises many exception types for broken files; report them the same way.
    raise FolderError(f'{path}: unreadable image ({type(e).__name__}: {e})') from None


def _strip_suffix(stem: str, letter: str) -> str:
  return stem[:-2] if stem.lower().endswith('_' + letter.lower()) else stem


def source_pairs(root) -> list[tuple[str, pathlib.Path, pathlib.Path]]:
  """(scene name, A path, B path) for every scene under `root` (layouts in the module docstring)."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FolderError(f'sources_dir {root} does not exist')
  for dir_a, dir_b in _PAIR_DIRS:
    if (root / dir_a).is_dir() and (root / dir_b).is_dir():
      files_a, files_b = _images(root / dir_a), _images(root / dir_b)
      if len(files_a) != len(files_b):
        raise FolderError(f'{root}: {dir_a}/ has {len(files_a)} images but {dir_b}/ has {len(files_b)}')
      if not files_a:
        raise FolderError(f'{root}: no images in {dir_a}/ and {dir_b}/')
      return [(_strip_suffix(a.stem, 'A'), a, b) for a, b in zip(files_a, files_b)]
  pairs = []
  for folder in sorted(p for p in root.iterdir() if p.is_dir()):
    files = _images(folder)
    a = [p for p in files if p.stem.lower().endswith('_a')]
    b = [p for p in files if p.stem.lower().endswith('_b')]
    if len(a) != 1 or len(b) != 1:
      raise FolderError(f'{folder}: expected one *_A.* and one *_B.* image, found {len(a)} and {len(b)}')
    pairs.append((folder.name, a[0], b[0]))
  if not pairs:
    raise FolderError(f'sources_dir {root}: expected A/ and B/ (or under/ and over/) folders, or one folder per '
                      'scene holding *_A.* and *_B.*')
  return pairs


def source_scenes(root) -> Iterator[tuple[str, list[np.ndarray]]]:
  """(scene name, [A, B] uint8 (H, W, 3)) for every scene under `root`.

  Every pair is checked (readable header, pixel limit, A and B of one size) before the first scene is yielded, so
  an evaluation stops before it computes anything, not after part of the set.
  """
  from mgdn_jax import image_io  # pylint: disable=g-import-not-at-top
  pairs = list(source_pairs(root))
  for name, path_a, path_b in pairs:
    try:
      (ha, wa), (hb, wb) = image_io.image_size(path_a), image_io.image_size(path_b)
    except image_io.InputError as e:
      raise FolderError(f'scene {name}: {e}') from None
    if (ha, wa) != (hb, wb):
      raise FolderError(f'scene {name}: {path_a.name} is {wa}x{ha} but {path_b.name} is {wb}x{hb}')
  for name, path_a, path_b in pairs:
    yield name, [read_rgb8(path_a), read_rgb8(path_b)]


class FusedFolder:
  """Other methods' fused images in one folder, looked up by scene name."""

  def __init__(self, folder, pattern: str = '{scene}', method: str = ''):
    self.folder = pathlib.Path(folder)
    self.pattern, self.method = pattern, method
    try:
      pattern.format(scene='x', method=method)
    except (KeyError, IndexError, ValueError):
      raise FolderError(f'fused pattern {pattern!r}: only {{scene}} and {{method}} may be used') from None
    if '{scene}' not in pattern:
      raise FolderError(f'fused pattern {pattern!r} must contain {{scene}}')
    if not self.folder.is_dir():
      raise FolderError(f'fused_dir {self.folder} does not exist')
    self._by_stem: dict[str, list[pathlib.Path]] = {}
    for p in _images(self.folder):
      self._by_stem.setdefault(p.stem.lower(), []).append(p)
    if not self._by_stem:
      raise FolderError(f'fused_dir {self.folder} holds no images ({", ".join(IMAGE_EXTS)})')
    self.used: set[str] = set()

  def path(self, scene: str) -> pathlib.Path:
    stem = self.pattern.format(scene=scene, method=self.method)
    found = self._by_stem.get(stem.lower(), [])
    if not found:
      raise FolderError(f'scene {scene}: no fused image {stem}.<png|jpg|...> in {self.folder}')
    if len(found) > 1:
      raise FolderError(f'scene {scene}: several fused images match in {self.folder}: '
                        f'{", ".join(p.name for p in found)}')
    self.used.add(stem.lower())
    return found[0]

  def read(self, scene: str, shape: tuple[int, ...]) -> np.ndarray:
    """The fused image of `scene` as uint8 (H, W, 3), checked against the sources' (H, W, 3) `shape`."""
    path = self.path(scene)
    fused = read_rgb8(path)
    if fused.shape != tuple(shape):
      raise FolderError(f'scene {scene}: fused image {path} is {fused.shape[1]}x{fused.shape[0]} but the sources '
                        f'are {shape[1]}x{shape[0]}')
    return fused

  def unused(self) -> list[str]:
    """Fused image files that matched no scene (reported, since they usually mean a naming mismatch)."""
    return sorted(p.name for stem, paths in self._by_stem.items() if stem not in self.used for p in paths)
