"""One training run per workdir: an exclusive lock on `<workdir>/train.lock`, held while the run lives.

Two runs writing one `checkpoints/` folder corrupt each other's saves and defeat the keep policy, so the second
stops at once with one line naming the workdir and the holder. The lock is `fcntl.flock` on the file: the kernel
drops it when the holding process ends, however it ends (SIGKILL and OOM kills included), so a killed run leaves no
stale lock to clean up: the next run simply takes it (one atomic system call) and writes itself in as the holder.
The file's text (`host=<name> pid=<pid>`) only serves that error message; the file itself is never removed, since
removing it would let two runs lock two different files of one name.

In a multi-process job only process 0 takes the lock: every process writes checkpoints into the same workdir.
"""

import contextlib
import fcntl
import os
import socket
from typing import Iterator

import jax

LOCK_FILE = 'train.lock'


class WorkdirBusyError(RuntimeError):
  """Another live run holds the workdir (one-line message naming the workdir and the holder)."""


def _holder(fd: int) -> str:
  text = os.pread(fd, 256, 0).decode('utf-8', 'replace').strip()
  return text or 'holder not yet recorded'


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[None]:
  """Holds `workdir`'s training lock for the `with` block.

  Raises:
    WorkdirBusyError: another process (this host or another one sharing the filesystem) holds it.
  """
  if jax.process_index() != 0:
    yield
    return
  workdir = os.path.abspath(os.fspath(workdir))
  os.makedirs(workdir, exist_ok=True)
  fd = os.open(os.path.join(workdir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirBusyError(f'workdir {workdir} is in use by another training run ({_holder(fd)}); wait for it '
                             'to finish or use another --workdir.') from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f'host={socket.gethostname()} pid={os.getpid()}\n'.encode(), 0)
    try:
      yield
    finally:
      os.ftruncate(fd, 0)  # released: a later message must not name this process
      fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)
