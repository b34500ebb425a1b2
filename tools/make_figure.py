"""README figure of a fusion model: inputs | fused | ground truth, under labels, from a photo that ships with
scikit-image (so the figure can be remade anywhere and the repo ships no third-party image).

  python tools/make_figure.py --task=mff --checkpoint=mgdn-jax/mff-drpl --out=docs/figures/mff.png

MFF: a DRPL pair (a smooth random focus mask, 7×7 Gaussian blur) of the photo; MEF: an under/over pair of it
(±1.5–2.5 EV). The photo (`stereo_motorcycle`'s left view) is not among `data_pipelines.sharp_photos`' training
photos. `--checkpoint` takes a weights file or short name, an exported model or a training workdir.
"""

HEIGHT, WIDTH = 320, 480
PHOTO = 'stereo_motorcycle'
SEED = 7
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo, when run as a script


def scene(task: str):
  """{'image_0', 'image_1', 'target'} uint8 (HEIGHT, WIDTH, 3) of the photo, as the task's dataset stores them."""
  import numpy as np
  from PIL import Image
  from skimage import data
  from data_pipelines import synth
  photo = data.stereo_motorcycle()[0]
  photo = np.asarray(Image.fromarray(photo).resize((WIDTH, round(photo.shape[0] * WIDTH / photo.shape[1])),
                                                   Image.LANCZOS))
  y = (photo.shape[0] - HEIGHT) // 2
  photo = np.ascontiguousarray(photo[y:y + HEIGHT])
  rng = np.random.default_rng(SEED)
  pairs = {'mff': lambda: synth.drpl_pair(photo, synth.random_mask(rng, HEIGHT, WIDTH)),
           'mef': lambda: synth.mef_pair(rng, photo)}
  a, b = pairs[task]()
  return {'image_0': a, 'image_1': b, 'target': photo}


PROG = 'make_figure'


def define_flags(f) -> None:
  from absl import flags
  from mgdn_jax import tasks  # numpy only: cheap before parsing
  flags.DEFINE_enum('task', None, [n for n in tasks.NAMES if tasks.get(n).is_fusion], 'the fusion task',
                    required=True, flag_values=f)
  flags.DEFINE_string('checkpoint', None, 'weights (.npz or mgdn-jax/<name>), export or workdir', required=True,
                      flag_values=f)
  flags.DEFINE_string('out', None, 'PNG to write (refuses to replace an existing file)', required=True,
                      flag_values=f)


def main(argv=None) -> None:
  from mgdn_jax import cli
  args, _ = cli.parse(PROG, __doc__, define_flags, argv)
  out = pathlib.Path(args.out)
  if out.exists():
    cli.fail(PROG, f'{out} exists: choose another --out')
  from PIL import Image
  from mgdn_jax import checkpoint, inference, tasks
  task = tasks.get(args.task)
  model, _ = checkpoint.load_model(args.checkpoint)
  example = task.encode(scene(args.task))
  streams = [example[f'stream_{k}'] for k in range(task.num_streams)]
  fused = inference.fuse(model, streams)
  panel = task.panel(streams, fused, example['target'])
  out.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(panel).save(out, optimize=True)
  print(f'wrote {out}')


if __name__ == '__main__':
  main()
