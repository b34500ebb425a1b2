"""`mefb`: the 100 under/over-exposed pairs of the MEFB benchmark (MEF test set, no ground truth).

Layout of manual_dir/mefb (as in the MEFB repository's `input/`): one folder per scene holding `<Name>_A.<ext>`
(under-exposed) and `<Name>_B.<ext>` (over-exposed); other files (MEFB's bracket frames) are ignored. Files are
found by their `_A`/`_B` suffix, case-insensitively, inside the scene folder — never by building `<dir>_A.<ext>` —
because of MEFB's name quirks (`Lighthouse_a.png`, `sKY_a.png`, `Farmhouse_A.png` + `FarmHouse_B.png`,
`garage/Garage_A.jpg`, mixed `.JPG`/`.jpg`). Scene name = folder name. image_0 = under, image_1 = over.
"""
import pathlib
import re

import tensorflow_datasets as tfds

from data_pipelines import common
from data_pipelines import paired

_SOURCE = re.compile(r'_(?P<letter>[AaBb])$')


def scan(folder: pathlib.Path):
  folder = common.require_dir(folder, 'MEFB')
  scenes = []
  for scene in sorted(p for p in folder.iterdir() if p.is_dir()):
    found = {'A': [], 'B': []}
    for path in common.list_images(scene):
      m = _SOURCE.search(path.stem)
      if m:
        found[m['letter'].upper()].append(path)
    for letter, paths in found.items():
      if len(paths) != 1:
        what = 'no' if not paths else f'{len(paths)}'
        raise common.DataError(f'{scene}: {what} *_{letter}.<ext> source image(s) (unmatched pair)')
    scenes.append((scene.name, [found['A'][0], found['B'][0]]))
  if not scenes:
    raise common.DataError(f'{folder}: no MEFB scene folders (expected <Name>/<Name>_A.<ext>, <Name>_B.<ext>)')
  return scenes


class Mefb(tfds.core.GeneratorBasedBuilder):
  """MEFB (Zhang, "Benchmarking and comparing multi-exposure image fusion algorithms", 2021)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Clone https://github.com/xingchenzhang/MEFB and copy (or link) its `input/` folder to manual_dir
  (manual_dir/mefb for the pipelines): 100 scene folders <Name>/ with <Name>_A.<ext> and <Name>_B.<ext>.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=common.fusion_features(2, with_target=False),
                                          homepage='https://github.com/xingchenzhang/MEFB')

  def _split_generators(self, dl_manager):
    scenes = scan(pathlib.Path(dl_manager.manual_dir))
    paired.validate(scenes)
    return {'test': self._generate_examples(scenes)}

  def _generate_examples(self, scenes):
    yield from paired.generate(scenes)
