"""`lytro`: the 20 two-source pairs of the Lytro multi-focus dataset (MFF test set, no ground truth).

Accepted layouts of manual_dir/lytro:
* `A/lytro_XX.jpg` + `B/lytro_XX.jpg` (as shipped with MGDN and MFIF code bases), paired by name;
* one folder of `lytro-XX-A.jpg`, `lytro-XX-B.jpg` (the original distribution); its three-source series
  (scenes with a `-C` file) are skipped.
Scene names are normalised to `lytro_XX` in both layouts. image_0 = A, image_1 = B (the official input order).
"""
import pathlib

import tensorflow_datasets as tfds

from data_pipelines import common
from data_pipelines import paired


class Lytro(tfds.core.GeneratorBasedBuilder):
  """Lytro multi-focus pairs (Nejati et al. 2015)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download the Lytro multi-focus dataset (https://mansournejati.ece.iut.ac.ir/content/lytro-multi-focus-dataset,
  or the `A/` and `B/` folders of an MFF test set) and place it in manual_dir (manual_dir/lytro for the pipelines):
  either A/lytro_XX.jpg and B/lytro_XX.jpg, or lytro-XX-A.jpg and lytro-XX-B.jpg in one folder.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=common.fusion_features(2, with_target=False),
        homepage='https://mansournejati.ece.iut.ac.ir/content/lytro-multi-focus-dataset')

  def _split_generators(self, dl_manager):
    scenes = [(name.replace('-', '_'), paths)
              for name, paths in paired.scan_pairs(pathlib.Path(dl_manager.manual_dir), 'Lytro')]
    paired.validate(scenes)
    return {'test': self._generate_examples(scenes)}

  def _generate_examples(self, scenes):
    yield from paired.generate(scenes)
