"""README figure of a model: inputs | output | ground truth, under labels, from images that ship with scikit-image
(so the figure can be remade anywhere and the repo ships no third-party image).

  python tools/make_figure.py --task=mff --checkpoint=$HOME/weights/mgdn_mff --out=docs/figures/mff.png

MFF and MEF: a DRPL pair (a smooth random focus mask, 7×7 Gaussian blur) or an under/over pair (±1.5–2.5 EV) of a
photo that is neither among `data_pipelines.sharp_photos`' training photos nor in the demo data
(`stereo_motorcycle`'s left view). HDR and GDSR: the first test scene of the task's built-in demo data
(`mgdn_demo/<task>:test`, prepared on first use in the checkpoint config's `data.data_dir`). `--checkpoint` takes a
weights file or short name, an exported model or a training workdir.
"""

HEIGHT, WIDTH = 320, 480
FIGURE_WIDTH = 1200  # px: a README column; the model still fuses at HEIGHT × WIDTH
PHOTO = 'stereo_motorcycle'
SEED = 7
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the repo, when run as a script


def photo_scene(task: str):
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


def demo_scene(config):
  """The first test example of `mgdn_demo/<task>`, encoded for the model: {'stream_k', 'target'} (H, W, C)."""
  from data_pipelines import input_pipeline
  example = next(input_pipeline.create_eval_iter(config, f'mgdn_demo/{config.task}:test'))
  return {k: v[0] for k, v in example.items() if k != 'name'}


PROG = 'make_figure'


def define_flags(f) -> None:
  from absl import flags
  from mgdn_jax import tasks  # numpy only: cheap before parsing
  flags.DEFINE_enum('task', None, list(tasks.NAMES), 'the task (the checkpoint must be of it)', required=True,
                    flag_values=f)
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
  model, config = checkpoint.load_model(args.checkpoint)
  if config.task != args.task:
    cli.fail(PROG, f'{args.checkpoint} is a {config.task} model, not {args.task}')
  example = task.encode(photo_scene(args.task)) if args.task in ('mff', 'mef') else demo_scene(config)
  streams = [example[f'stream_{k}'] for k in range(task.num_streams)]
  fused = inference.fuse(model, streams)
  panel = task.panel(streams, fused, example['target'])
  out.parent.mkdir(parents=True, exist_ok=True)
  figure = Image.fromarray(panel)
  if figure.width > FIGURE_WIDTH:
    figure = figure.resize((FIGURE_WIDTH, round(figure.height * FIGURE_WIDTH / figure.width)), Image.LANCZOS)
  figure.save(out, optimize=True)
  print(f'wrote {out}')


if __name__ == '__main__':
  main()
