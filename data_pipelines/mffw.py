"""`mffw`: the 19 pairs of the MFFW multi-focus "in the wild" dataset (MFF test set, no ground truth).

Accepted layouts of manual_dir/mffw: `A/<n>.*` + `B/<n>.*` paired by name, or one folder of `<scene>-A.*` /
`<scene>_B.*` files (letter case-insensitive; scenes with a third source are skipped). image_0 = A, image_1 = B.
"""
import pathlib

import tensorflow_datasets as tfds

from data_pipelines import common
from data_pipelines import paired


class Mffw(tfds.core.GeneratorBasedBuilder):
  """MFFW (Xu et al., "MFFW: a new dataset for multi-focus image fusion", 2020)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download MFFW (https://github.com/lmn-ning/MFFW or the MFIF benchmark) and place its 19 two-source pairs in
  manual_dir (manual_dir/mffw for the pipelines): A/ and B/ folders with matching names, or <scene>_A.<ext> and
  <scene>_B.<ext> files in one folder.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=common.fusion_features(2, with_target=False))

  def _split_generators(self, dl_manager):
    scenes = paired.scan_pairs(pathlib.Path(dl_manager.manual_dir), 'MFFW')
    paired.validate(scenes)
    return {'test': self._generate_examples(scenes)}

  def _generate_examples(self, scenes):
    yield from paired.generate(scenes)
