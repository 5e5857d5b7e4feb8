"""Where an export goes: the checks on DIR before any work, the staging folder, the final move.

An export is written into a hidden staging folder beside DIR and renamed into place only when
everything succeeded. DIR may be new, an empty folder, or an earlier tomobile export (its
manifest.json says so); anything else is refused unless `force` is given. DIR is never the
current folder, one that holds it, or the model folder being exported. Interrupts (SIGINT, SIGTERM)
are held back while the staging folder is discarded or moved into place, so no `.staging` or
`.old` folder is left behind. Folders and files get the usual umask-respecting modes.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..graphs.errors import TomobileError
from ..runtime.manifest import is_export_folder


class OutputError(TomobileError, ValueError):
    """An output location that cannot or must not be written; the message says why."""


def nearest_existing(path: Path) -> Path:
    """`path` itself or its closest ancestor that exists."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_parent_writable(path: Path, option: str) -> None:
    """The closest existing ancestor of `path` must be a folder this process may write in."""
    anchor = nearest_existing(path.parent)
    if not anchor.is_dir():
        raise OutputError(f"{option} {path} is under {anchor}, which is a file, not a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: cannot write in {anchor} (permission denied)")


def _contains(outer: Path, inner: Path) -> bool:
    return outer == inner or outer in inner.parents


def check_out_dir(out: Path, force: bool | None = False, keep: tuple[Path, ...] = (), option: str = "--out") -> Path:
    """The absolute export folder for `out`, or OutputError saying why it must not be written.

    `force`: replace whatever is there (None: the command has no --force). `keep`: folders the
    export must not replace (the source model folder). `option` names `out` in the messages."""
    target = Path(os.path.abspath(out))
    if target == target.parent:
        raise OutputError(f"{option} {out} is the file-system root; give a folder to write the export into")
    real = target.resolve()
    if _contains(real, Path.cwd().resolve()):
        raise OutputError(f"{option} {out} is the current folder or holds it; give a new folder or an earlier export")
    for folder in keep:
        if _contains(real, folder.resolve()):
            raise OutputError(f"{option} {out} would replace the model folder {folder}; give another folder")
    check_parent_writable(target, option)
    if not (target.exists() or target.is_symlink()) or force:
        return target
    if not target.is_dir():
        raise OutputError(f"{option} {out} is a file, not a folder; give a folder"
                          + (" (or --force to replace the file)" if force is not None else ""))
    if any(target.iterdir()) and not is_export_folder(target):
        raise OutputError(f"{option} {out} holds files that are not a tomobile export; give another folder"
                          + (" (or --force to replace it)" if force is not None else ""))
    return target


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (then act as usual)."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@dataclass
class Staging:
    """A hidden folder beside `out` that becomes `out`; `made` lists the parent folders created for it.

    `with staging:` discards it when the block raises (Ctrl-C and SIGTERM included) and lets the
    error go on; `finalize` moves it into place."""

    path: Path
    out: Path
    made: list[Path] = field(default_factory=list)

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is not None:
            discard(self)


def _hidden_sibling(out: Path, kind: str) -> Path:
    return out.parent / f".{out.name}.{kind}.{os.getpid()}.{secrets.token_hex(3)}"


def make_staging(out: Path) -> Staging:
    """Create the staging folder (and any missing parents of `out`) with the usual modes."""
    missing = [p for p in reversed(out.parents) if not p.exists()]
    staging = Staging(_hidden_sibling(out, "staging"), out)
    try:
        for folder in missing:
            folder.mkdir()
            staging.made.append(folder)
        staging.path.mkdir()
    except OSError as err:
        discard(staging)
        raise OutputError(f"cannot write the export at {out}: {err.strerror or err}") from None
    return staging


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def discard(staging: Staging) -> None:
    """Remove the staging folder and the parents made for it (if still empty)."""
    with interrupts_held():
        _remove(staging.path)
        for folder in reversed(staging.made):
            with contextlib.suppress(OSError):
                folder.rmdir()


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def usual_modes(root: Path) -> None:
    """Folders and files under `root` get the modes a plain mkdir/open would give them (0777/0666
    less the umask); tools that write through tempfile leave 0700 folders and 0600 files."""
    mask = umask()
    os.chmod(root, 0o777 & ~mask)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            executable = os.path.isdir(path) or os.stat(path).st_mode & 0o100
            os.chmod(path, (0o777 if executable else 0o666) & ~mask)


def finalize(staging: Staging) -> None:
    """Move the staging folder into place, replacing what `check_out_dir` allowed at `out`."""
    out = staging.out
    usual_modes(staging.path)
    with interrupts_held():
        old = None
        if out.exists() or out.is_symlink():
            old = _hidden_sibling(out, "old")
            out.rename(old)
        try:
            staging.path.rename(out)
        except OSError:
            if old is not None:
                old.rename(out)  # put the earlier export back
            raise
        if old is not None:
            _remove(old)
