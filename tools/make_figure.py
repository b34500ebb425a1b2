"""README figure of a model: inputs | output | ground truth, under labels, from images that ship with scikit-image
(so the figure can be remade anywhere and the repo ships no third-party image).

  python tools/make_figure.py --task=mff --checkpoint=$HOME/weights/mgdn_mff --out=docs/figures/mff.png

MFF, MEF and HDR: a DRPL pair (a smooth random focus mask, 7×7 Gaussian blur), an under/over pair (±1.5–2.5 EV) or a
Kalantari-style triplet (EV 0, +2, +4 of a 3-stop light field; the outer frames moved) made from a photo that is
neither among `data_pipelines.sharp_photos`' training photos nor in the fusion demo data (`stereo_motorcycle`'s left
view). GDSR: the first test scene of its built-in demo data (`mgdn_demo/gdsr:test`, that photo's disparity,
prepared on first use in the checkpoint config's `data.data_dir`). `--checkpoint` takes a
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
  """The photo as the task's dataset stores a scene of it: MFF/MEF {'image_0', 'image_1', 'target'} uint8
  (HEIGHT, WIDTH, 3); HDR three uint16 frames (under, reference, over; the outer ones moved), 'exposures' and the
  linear radiance 'target'."""
  import numpy as np
  from PIL import Image
  from skimage import data
  from data_pipelines import synth
  margin = 12  # the HDR frames are cut from a larger view so the outer ones can move
  photo = data.stereo_motorcycle()[0]
  big_h, big_w = HEIGHT + 2 * margin, WIDTH + 2 * margin
  scale = max(big_h / photo.shape[0], big_w / photo.shape[1])  # cover, then centre-crop
  photo = np.asarray(Image.fromarray(photo).resize((round(photo.shape[1] * scale), round(photo.shape[0] * scale)),
                                                   Image.LANCZOS))
  y, x = (photo.shape[0] - big_h) // 2, (photo.shape[1] - big_w) // 2
  big = np.ascontiguousarray(photo[y:y + big_h, x:x + big_w])
  rng = np.random.default_rng(SEED)
  if task == 'hdr':
    evs = (0.0, 2.0, 4.0)
    frames, radiance = synth.hdr_triplet(rng, big, HEIGHT, WIDTH, evs)
    scene = {f'image_{k}': f for k, f in enumerate(frames)}
    return dict(scene, exposures=np.asarray(evs, np.float32), target=radiance)
  photo = np.ascontiguousarray(big[margin:-margin, margin:-margin])
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
  example = demo_scene(config) if args.task == 'gdsr' else task.encode(photo_scene(args.task))
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
