"""`sice`: MEF training pairs from the SICE multi-exposure dataset (Cai et al., TIP 2018), reference = label.

Layout of manual_dir/sice, as distributed: part folders (`Dataset_Part1/`, `Dataset_Part2/`) each holding sequence
folders `<n>/` of differently exposed frames and a `Label/` folder with the reference image `<n>.<ext>` of each
sequence. Any folder of manual_dir with a `Label/` sub-folder is a part (manual_dir itself too).

Frame selection rule (documented, deterministic): the frames of a sequence are ordered by mean brightness (ties by
file name); with N ≥ 5 frames, under = the second darkest and over = the second brightest (the extremes of SICE
sequences are often nearly black or white), with N = 2…4 the darkest and the brightest. Sequences with a single
frame are an error. Both parts go to the train split; names are `<part>/<n>`.
Features: image_0 = under, image_1 = over, target = label (uint8 RGB), name.
"""
import pathlib

import tensorflow_datasets as tfds

from data_pipelines import common


def pick_pair(frames: list[tuple[pathlib.Path, float]]) -> tuple[pathlib.Path, pathlib.Path]:
  """(under, over) from [(path, mean brightness)] by the rule in the module docstring."""
  ordered = sorted(frames, key=lambda f: (f[1], f[0].name))
  k = 1 if len(ordered) >= 5 else 0
  return ordered[k][0], ordered[-1 - k][0]


def _label_for(label_dir: pathlib.Path, seq: str) -> pathlib.Path:
  labels = [p for p in common.list_images(label_dir) if p.stem == seq]
  if len(labels) != 1:
    raise common.DataError(f'{label_dir}: {"no" if not labels else len(labels)} label image {seq}.<ext> '
                           f'for sequence {label_dir.parent / seq} (unmatched sequence)')
  return labels[0]


def scan(root: pathlib.Path) -> list[tuple[str, list[pathlib.Path]]]:
  """[(name, [under, over, label])] after probing every frame (readable, same size as the label)."""
  root = common.require_dir(root, 'SICE')
  parts = [p for p in [root, *sorted(root.iterdir())] if p.is_dir() and (p / 'Label').is_dir()]
  if not parts:
    raise common.DataError(f'{root}: no SICE part folder (expected Dataset_Part1/ with <n>/ and Label/)')
  scenes = []
  for part in parts:
    seqs = sorted((p for p in part.iterdir() if p.is_dir() and p.name != 'Label'),
                  key=lambda p: (len(p.name), p.name))
    for seq in seqs:
      frames = common.list_images(seq)
      if len(frames) < 2:
        raise common.DataError(f'{seq}: {len(frames)} frame(s), a sequence needs at least 2 exposures')
      label = _label_for(part / 'Label', seq.name)
      probed = {p: common.probe_rgb8(p) for p in frames + [label]}
      under, over = pick_pair([(p, probed[p][1]) for p in frames])
      chosen = [under, over, label]
      name = seq.name if part == root else f'{part.name}/{seq.name}'
      common.check_same_size(name, chosen, [probed[p][0] for p in chosen])
      scenes.append((name, chosen))
  if not scenes:
    raise common.DataError(f'{root}: no SICE sequences found')
  return scenes


class Sice(tfds.core.GeneratorBasedBuilder):
  """SICE under/over-exposed pairs with their reference labels."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Download Dataset_Part1 and Dataset_Part2 (with their Label folders) from
  https://github.com/csjcai/SICE and extract them into manual_dir (manual_dir/sice for the pipelines).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(features=common.fusion_features(2, with_target=True),
                                          homepage='https://github.com/csjcai/SICE')

  def _split_generators(self, dl_manager):
    return {'train': self._generate_examples(scan(pathlib.Path(dl_manager.manual_dir)))}

  def _generate_examples(self, scenes):
    for name, (under, over, label) in scenes:
      yield name, {'image_0': common.encoded_rgb8(under)[0], 'image_1': common.encoded_rgb8(over)[0],
                   'target': common.encoded_rgb8(label)[0], 'name': name}
