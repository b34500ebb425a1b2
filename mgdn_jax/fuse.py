r"""Fuse your own images with a trained or converted MGDN: `python -m mgdn_jax.fuse --help`.

Examples:
  python -m mgdn_jax.fuse --task=mff --checkpoint=ckpt/mff data/lytro/A data/lytro/B --output=out/ \
      --padding=official
  python -m mgdn_jax.fuse --task=hdr --checkpoint=ckpt/hdr a.tif b.tif c.tif --exposures=-2,0,2 --output=x.hdr
  python -m mgdn_jax.fuse --task=gdsr --checkpoint=ckpt/gdsr rgb.jpg depth_lr.npy --output=depth.npy
"""

import importlib.util
import logging
import os
import pathlib
import sys
import types

import tqdm
from absl import flags

from mgdn_jax import cli
from mgdn_jax import platform
from mgdn_jax import image_io
from mgdn_jax import padding
from mgdn_jax.fuse_scenes import assign_outputs, expand_inputs, find_scenes
from mgdn_jax import tasks
from mgdn_jax.image_io import InputError

log = logging.getLogger('mgdn_jax.fuse')

_DESCRIPTION = """\
Fuse images with MGDN (Guan et al., ACM MM 2023): multi-exposure (mef: under, over), multi-focus (mff: A, B),
HDR deghosting (hdr: three LDR frames under, reference, over + exposure values) and RGB-guided depth
super-resolution (gdsr: RGB guide, low-resolution depth).

INPUTS are either the K files of one scene (in stream order; gdsr: RGB then depth), or a batch:
  * K folders, one per stream (e.g. lytro/A lytro/B, or RGB/ Depth/): files are paired by scene name (file name
    without extension and without a trailing _A/_B/_under/_over/_rgb/_depth tag, case-insensitive);
  * folders (or a quoted glob such as 'mefb/*'), one scene per folder (hdr: the frames + exposure.txt);
  * a folder of files named <scene>_A.png, <scene>_B.png, ...
For a batch, --output is a folder and each result is written as <scene>.<format>.
Every input is read and every output checked before the first fusion: an existing output is replaced only with
--overwrite, an input never.

Tiling: --tile runs the model on overlapping tiles and cross-fades them. MGCA attends over all pixels of its
input, so a tiled result differs from the untiled one everywhere (not only at seams); use it for images that
would not fit in memory. Without --tile the whole image is used unless the estimated memory does not fit, in
which case a tile size is chosen and logged. --tile=500 --overlap=0 reproduces the official HDR evaluation.
"""


PROG = 'fuse'
INPUTS_HELP = 'INPUTS: image files, folders or quoted globs (see above)'


def define_flags(f: flags.FlagValues) -> None:
  """fuse's flags on `f` (cli.parse)."""
  flags.DEFINE_enum('task', None, tasks.NAMES, 'the task', required=True, flag_values=f)
  flags.DEFINE_string('checkpoint', None, 'weights file (.npz) or shipped name (mgdn-jax/<name>), exported model '
                      '(mgdn_jax.convert --out) or a training workdir', required=True, flag_values=f)
  flags.DEFINE_string('output', None, 'output file (one scene) or folder (batch)', required=True, flag_values=f)
  flags.DEFINE_bool('overwrite', False, 'replace outputs that already exist (an input file is never replaced)',
                    flag_values=f)
  flags.DEFINE_enum('format', None, ['png', 'tif', 'jpg', 'hdr', 'exr', 'npy'],
                    'output format of a batch (default: png for mef/mff, hdr for hdr, npy for gdsr)', flag_values=f)
  flags.DEFINE_enum('bits', None, ['8', '16'], 'bits of PNG/TIFF image outputs (default: 16 if any input has 16 '
                    'bits, else 8)', flag_values=f)
  flags.DEFINE_enum('padding', 'reflect', list(padding.PADDINGS),
                    "reflect: to the window multiple. official: the official MEF/MFF scripts' symmetric padding to "
                    'the next multiple of 8 (+8 when already divisible); reproduces their outputs. none: leave it '
                    'to the model', flag_values=f)
  flags.DEFINE_integer('tile', None, 'tile size in pixels (default: whole image if it fits in memory)', lower_bound=1,
                       flag_values=f)
  flags.DEFINE_integer('overlap', None, 'tile overlap in pixels (default: inference.DEFAULT_OVERLAP, 32)',
                       lower_bound=0, flag_values=f)
  flags.DEFINE_bool('auto_tile', True, 'tile when the whole image would not fit in memory (--noauto_tile: never '
                    'tile unless --tile is given)', flag_values=f)
  flags.DEFINE_float('memory_gb', None, 'memory a forward pass may use (default: 60% of the free memory)',
                     lower_bound=0.001, flag_values=f)
  flags.DEFINE_enum('dtype', None, ['float32', 'bfloat16'], "compute dtype (default: the checkpoint's)",
                    flag_values=f)
  flags.DEFINE_list('exposures', None, 'hdr: exposure values in stops of the frames, e.g. --exposures=-2,0,2 '
                    '(default: exposure.txt beside the frames)', flag_values=f)
  flags.register_validator('exposures', _numbers, '--exposures must be comma-separated numbers', flag_values=f)
  flags.DEFINE_integer('scale', None, 'gdsr: upsampling factor (default: config.data.gdsr_scale)', lower_bound=2,
                       flag_values=f)
  flags.DEFINE_float('depth_scale', 1000., 'gdsr: integer depth files hold metres × depth_scale (default 1000: '
                     'millimetres)', lower_bound=0., flag_values=f)
  flags.DEFINE_bool('resize_to_first', False, 'resize inputs of another size to the first one (bicubic) instead '
                    'of failing', flag_values=f)


def _numbers(values) -> bool:
  try:
    return values is None or all(float(v) == float(v) for v in values)
  except ValueError:
    return False


def parse_args(argv=None) -> types.SimpleNamespace:
  """The command line as a namespace (`inputs` + one attribute per flag); usage errors exit (cli.parse)."""
  values, inputs = cli.parse(PROG, f'{_DESCRIPTION}\n{__doc__}', define_flags, argv, positional=INPUTS_HELP)
  if not inputs:
    cli.usage_error(PROG, 'give the INPUTS: the files of one scene, or folders / globs of a batch')
  args = types.SimpleNamespace(inputs=inputs, **{name: values[name].value for name in values if name != 'help'})
  args.exposures = [float(v) for v in args.exposures] if args.exposures else None
  args.bits = int(args.bits) if args.bits else None
  return args


# ----------------------------------------------------------------------------------------- reading inputs


def _size_mismatch(paths, sizes) -> InputError:
  listing = ', '.join(f'{p} {h}x{w}' for p, (h, w) in zip(paths, sizes))
  return InputError(f'inputs differ in size: {listing} (pass --resize_to_first to resize them to the first)')


def _depth_too_large(rgb_path, rgb_size, depth_path, depth_size) -> InputError:
  return InputError(f'depth {depth_path} ({depth_size[0]}x{depth_size[1]}) is larger than the RGB guide '
                    f'{rgb_path} ({rgb_size[0]}x{rgb_size[1]})')


def _same_size(paths, images, resize_to_first):
  sizes = [im.shape[:2] for im in images]
  if len(set(sizes)) == 1:
    return images
  if not resize_to_first:
    raise _size_mismatch(paths, sizes)
  log.warning('resizing %s to %dx%d', ', '.join(str(p) for p, s in zip(paths, sizes) if s != sizes[0]),
              *sizes[0])
  from mgdn_jax import inference  # pylint: disable=g-import-not-at-top  (JAX: only once the arguments are valid)
  return [im if im.shape[:2] == sizes[0] else inference.resize(im, sizes[0]) for im in images]


def check_inputs(task, scene, *, depth_scale=1000., resize_to_first=False) -> None:
  """Decodes a scene's files once, before any fusion, so that a batch never stops half-way on a bad input.

  Raises InputError naming the file that cannot be read (or is over the pixel limit) or the sizes that differ.
  Decoding twice costs little next to a forward pass.
  """
  guided_depth = tasks.get(task).guided_depth
  sizes = []
  for k, f in enumerate(scene.files):
    if guided_depth and k == 1:  # the depth map
      sizes.append(image_io.read_depth(f, depth_scale).shape)
    else:
      sizes.append(image_io.read_array(f).shape[:2])
  if guided_depth:
    if sizes[1][0] > sizes[0][0] or sizes[1][1] > sizes[0][1]:
      raise _depth_too_large(scene.files[0], sizes[0], scene.files[1], sizes[1])
  elif len(set(sizes)) > 1 and not resize_to_first:
    raise _size_mismatch(scene.files, sizes)


def read_inputs(task, files, *, exposures=None, scale=None, depth_scale=1000., resize_to_first=False):
  """A scene's files (stream order) → (model inputs (H, W, C_k) float32, bits of the inputs, depth range or None).

  The files become the raw example the dataset builders store, encoded by the task as in training and evaluation.
  """
  t = tasks.get(task)
  if t.guided_depth:
    rgb, bits = image_io.read_image(files[0])
    depth = image_io.read_depth(files[1], depth_scale)
    if depth.shape[0] > rgb.shape[0] or depth.shape[1] > rgb.shape[1]:
      raise _depth_too_large(files[0], rgb.shape, files[1], depth.shape)
    if depth.shape == rgb.shape[:2]:
      if not scale:
        raise InputError(f'depth {files[1]} is as large as the guide: pass --scale to simulate its low-resolution '
                         'version')
      log.info('%s: depth has the guide\'s size, reduced ×%d first (official evaluation protocol)', files[1], scale)
    elif scale and (rgb.shape[0] != depth.shape[0] * scale or rgb.shape[1] != depth.shape[1] * scale):
      log.warning('guide %s %dx%d is not ×%d the depth %dx%d', files[0], *rgb.shape[:2], scale, *depth.shape)
    raw = {'rgb': rgb, 'depth': depth}
  else:
    images, bits = zip(*(image_io.read_image(f) for f in files))
    bits = max(bits)
    raw = {f'image_{k}': im for k, im in enumerate(_same_size(files, list(images), resize_to_first))}
    if t.needs_exposures:
      raw['exposures'] = exposures
  try:
    encoded = t.encode(raw, scale)
  except ValueError as e:
    raise InputError(f'{files[0]}: {e}') from None
  streams = [encoded[f'stream_{k}'] for k in range(t.num_streams)]
  depth_range = (encoded['depth_min'], encoded['depth_max']) if 'depth_min' in encoded else None
  return streams, bits, depth_range


def write_result(out, scene, args, bits, depth_range) -> None:
  tasks.get(args.task).write_output(scene.output, out, bits=bits, depth_range=depth_range,
                                    depth_scale=args.depth_scale, out_bits=args.bits)


def check_outputs(task, scenes, overwrite=False) -> None:
  """Every file a run will write: an allowed format, a writable folder, never an input, and not an existing file
  unless `overwrite`."""
  inputs = {}
  for s in scenes:
    for f in s.files:
      st = os.stat(f)
      inputs[st.st_dev, st.st_ino] = f
  for s in scenes:
    suffixes = tasks.get(task).output_suffixes
    if s.output.suffix.lower() not in suffixes:
      raise InputError(f'cannot write {s.output}: task {task} writes {", ".join(suffixes)}')
    for target in tasks.get(task).output_files(s.output):
      image_io.check_writable(target)
      if not os.path.lexists(target):
        continue
      st = os.stat(target)
      if (st.st_dev, st.st_ino) in inputs:
        raise InputError(f'output {target} is the input {inputs[st.st_dev, st.st_ino]}: choose another --output')
      if not overwrite:
        raise InputError(f'output {target} exists: pass --overwrite to replace it, or choose another --output')


# --------------------------------------------------------------------------------------------------- model


def _load_model(args):
  from mgdn_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from mgdn_jax import weights  # pylint: disable=g-import-not-at-top
  try:
    weights_file = weights.resolve(args.checkpoint)
  except FileNotFoundError as e:
    raise InputError(f'cannot load checkpoint {args.checkpoint}: {e}') from None
  if weights_file is None and not os.path.isdir(args.checkpoint):
    raise InputError(f'checkpoint {args.checkpoint} is neither a folder (exported model or training workdir), '
                     'a weights file (.npz) nor a shipped name (mgdn-jax/<name>)')
  try:
    model, config = checkpoint.load_model(args.checkpoint, dtype=args.dtype)
  except (FileNotFoundError, ValueError, KeyError) as e:
    raise InputError(f'cannot load checkpoint {args.checkpoint}: {e}') from None
  mcfg = config.model
  t = tasks.get(args.task)
  want = (t.num_streams, t.in_channels)
  if (mcfg.num_streams, tuple(mcfg.in_channels)) != want:
    raise InputError(f'checkpoint {args.checkpoint} takes {mcfg.num_streams} streams of {tuple(mcfg.in_channels)} '
                     f'channels, --task={args.task} needs {want[0]} of {want[1]}')
  if mcfg.task != args.task:
    log.warning('checkpoint %s was configured for task %s, running it as %s', args.checkpoint, mcfg.task,
                args.task)
  return model, config


def _scale(args, config):
  """GDSR factor: --scale, else the checkpoint's config.data.gdsr_scale."""
  data = config.get('data') or {}
  if not tasks.get(args.task).guided_depth or not hasattr(data, 'get'):
    return args.scale
  return args.scale or data.get('gdsr_scale')


# ---------------------------------------------------------------------------------------------------- main


def run(args) -> list[pathlib.Path]:
  """Fuses every scene; returns the written outputs."""
  from mgdn_jax import inference  # pylint: disable=g-import-not-at-top  (JAX: only once the arguments are valid)
  if args.overlap is None:
    args.overlap = inference.DEFAULT_OVERLAP
  if args.overlap < 0 or (args.tile and args.overlap >= args.tile):
    raise InputError(f'--overlap must be in [0, tile size), got {args.overlap}')
  scenes = find_scenes(args.task, expand_inputs(args.inputs), exposures=args.exposures)
  fmt = args.format or tasks.get(args.task).default_format
  output = pathlib.Path(args.output)
  existed = output.exists()
  try:
    assign_outputs(scenes, args.output, fmt)
    return _check_and_fuse(args, scenes)
  finally:
    if not existed and output.is_dir() and not any(output.iterdir()):
      output.rmdir()  # the batch folder this run made, left empty by a failure


def _check_and_fuse(args, scenes) -> list[pathlib.Path]:
  from mgdn_jax import inference  # pylint: disable=g-import-not-at-top
  check_outputs(args.task, scenes, args.overwrite)
  if any(s.output.suffix.lower() == '.exr' for s in scenes) and not importlib.util.find_spec('OpenEXR'):
    raise InputError('.exr output needs the OpenEXR package (pip install OpenEXR); use .hdr')
  for s in scenes:
    check_inputs(args.task, s, depth_scale=args.depth_scale, resize_to_first=args.resize_to_first)
  model, config = _load_model(args)
  scale = _scale(args, config)
  budget = int(args.memory_gb * 2**30) if args.memory_gb else None
  written = []
  for scene in tqdm.tqdm(scenes, desc='scenes', unit='scene', disable=True if len(scenes) < 2 else None):
    streams, bits, depth_range = read_inputs(args.task, scene.files, exposures=scene.exposures, scale=scale,
                                             depth_scale=args.depth_scale, resize_to_first=args.resize_to_first)
    try:
      out = inference.fuse(model, streams, padding=args.padding, tile=args.tile, overlap=args.overlap,
                           auto=args.auto_tile, memory_budget=budget, progress=True)
    except ValueError as e:
      raise InputError(f'{scene.name}: {e}') from None
    write_result(out, scene, args, bits, depth_range)
    log.info('%s → %s', scene.name, scene.output)
    written.append(scene.output)
  return written


def main(argv=None) -> int:
  args = parse_args(argv)
  logging.basicConfig(format='%(levelname)s %(name)s: %(message)s')
  logging.getLogger('mgdn_jax').setLevel(logging.INFO)
  try:
    run(args)
  except (InputError, OSError) as e:
    cli.fail(PROG, e)
  return 0


if __name__ == '__main__':
  parse_args()  # --help and usage errors answer before the process re-exec and JAX's import
  platform.tune_process()
  sys.exit(main())
