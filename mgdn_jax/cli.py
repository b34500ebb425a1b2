"""The command-line convention of every MGDN-JAX entry point (`main.py`, `fuse`, `evaluate`, `convert`, `weights`,
`prepare`, `sharp_photos`, and the scripts in `tools/` and `benchmarks/`).

* Flags are absl flags, as `main.py` needs for `--config` (ml_collections): `--name=value`, booleans as
  `--name` / `--noname`, lists as `--name=a,b`, repeatable flags by repeating them; `--help` lists them.
* A usage error (unknown or missing flag, bad value) prints `<prog>: error: <message>` and the hint to `--help`,
  exit status 2; a failure of the work itself prints `<prog>: error: <message>` on one line, exit status 1.

Each tool defines its flags on its own `FlagValues` (`parse`), so that tools that share flag names (`--task`,
`--checkpoint`) can be imported into one process and their `main(argv)` called from Python. Only absl is imported
here: `--help` answers before JAX or TensorFlow is loaded.
"""
import sys
from typing import Callable, NoReturn, Sequence

from absl import flags

USAGE_STATUS = 2


def one_line(message) -> str:
  return ' '.join(str(message).split())


def usage_error(prog: str, message) -> NoReturn:
  print(f'{prog}: error: {one_line(message)}\nPass --help to see the flags.', file=sys.stderr)
  sys.exit(USAGE_STATUS)


def fail(prog: str, message) -> NoReturn:
  """Ends the tool with `<prog>: error: <message>`: Python prints a SystemExit's text to stderr and exits with
  status 1, and a caller of `main(argv)` in Python catches the message with the exception."""
  raise SystemExit(f'{prog}: error: {one_line(message)}')


def flags_help(values: flags.FlagValues) -> str:
  """The flags' help in absl's format, without the per-module headings (a tool's flags are all its own)."""
  text = values.get_help(prefix='', include_special_flags=False)
  return '\n'.join(line for line in text.splitlines() if line.strip() and line.startswith(' '))


def parse(prog: str, doc: str, define: Callable[[flags.FlagValues], None],
          argv: Sequence[str] | None = None, *, positional: str | None = None) -> tuple[flags.FlagValues, list[str]]:
  """Defines the tool's flags with `define(values)` on a fresh FlagValues and parses `argv` (default sys.argv[1:]).

  Returns (values, positional arguments). Exits 0 after printing `doc` and the flags for `--help`; exits with a
  usage error for a bad command line, or for positional arguments when `positional` (their description for the
  help text) is None.
  """
  values = flags.FlagValues()
  define(values)
  flags.DEFINE_boolean('help', False, 'Show this help and exit.', short_name='h', flag_values=values)
  args = list(sys.argv[1:] if argv is None else argv)
  try:
    rest = values([prog] + args)[1:]
  except flags.Error as e:
    if '--help' in args or '-h' in args:  # help answers even when the rest of the line is wrong
      _print_help(doc, values, positional)
      sys.exit(0)
    usage_error(prog, e)
  if values.help:
    _print_help(doc, values, positional)
    sys.exit(0)
  if rest and positional is None:
    usage_error(prog, f'unexpected arguments {" ".join(rest)} (every option is a --flag)')
  return values, rest


def _print_help(doc: str, values: flags.FlagValues, positional: str | None) -> None:
  print(doc.strip())
  if positional:
    print(f'\npositional arguments:\n  {positional}')
  print(f'\nflags:\n{flags_help(values)}')
