"""Outputs that never overwrite inputs or earlier results, written atomically (torch-free).

- `output_problems`: why an output path may not be written (it is, contains or lies inside an input; it exists and
  `--overwrite` was not given; it is a file where a folder is needed).
- `atomic_path` / `atomic_write_text` / `atomic_write_bytes`: write beside the target, then rename over it, so a
  killed command leaves either the old file or the new one, never half of one.
- `staged_folder`: build a whole output folder beside the target and move it into place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

PARTIAL = ".partial"


def _resolved(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


def overlap_problem(out: str | Path, inputs: Iterable[str | Path | None], flag: str = "--out") -> str | None:
    """Why `out` may not be written given these inputs: it is one of them, contains one, or lies inside one."""
    target = _resolved(out)
    for item in inputs:
        if item is None or not Path(item).exists():
            continue
        source = _resolved(item)
        if target == source:
            return f"{flag} {out} is the input {item}: outputs never replace inputs"
        if source in target.parents:
            return f"{flag} {out} lies inside the input {item}: outputs never go into an input folder"
        if target in source.parents:
            return f"{flag} {out} contains the input {item}: writing there could replace it"
    return None


def output_problems(out: str | Path, inputs: Iterable[str | Path | None] = (), *, overwrite: bool = False,
                    kind: str = "folder", flag: str = "--out", allow: Iterable[str] = ()) -> list[str]:  # fmt: skip
    """Every reason `out` (a "folder" or a "file") may not be written; [] when it may.

    A non-empty folder (ignoring names in `allow`) or an existing file needs `overwrite`."""
    problems = []
    overlap = overlap_problem(out, inputs, flag)
    if overlap:
        return [overlap]  # nothing else matters until the output is elsewhere
    path = Path(out)
    if kind == "folder":
        if path.exists() and not path.is_dir():
            problems.append(f"{flag} {out} is a file, a folder is needed")
        elif path.is_dir() and not overwrite:
            present = [p.name for p in path.iterdir() if p.name not in set(allow)]
            if present:
                shown = ", ".join(sorted(present)[:3]) + (" ..." if len(present) > 3 else "")
                entries = f"{len(present)} entr{'y' if len(present) == 1 else 'ies'}"
                problems.append(f"{flag} {out} is not empty ({entries}: {shown}); give --overwrite to "
                                "replace what is there, or choose another folder")  # fmt: skip
    else:
        if path.is_dir():
            problems.append(f"{flag} {out} is a folder, a file is needed")
        elif path.exists() and not overwrite:
            problems.append(f"{flag} {out} exists; give --overwrite to replace it")
        elif path.parent != Path("") and path.parent.exists() and not path.parent.is_dir():
            problems.append(f"{flag} {out}: {path.parent} is a file, not a folder")
    return problems


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix) to write to; renamed over `path` when the block succeeds,
    removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f"{PARTIAL}{path.suffix}")
    os.close(fd)
    temporary = Path(name)
    temporary.chmod(0o666 & ~current_umask())  # mkstemp makes 0600; the file gets what open() would have given it
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def staged_folder(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Build an output folder at `.<name>.partial-*` beside `out`; when the block succeeds it becomes `out` (an
    earlier `out` is replaced only with `overwrite`); when it fails it is removed and `out` is untouched."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}{PARTIAL}-"))
    staging.chmod(0o777 & ~current_umask())  # mkdtemp makes 0700; the output gets what mkdir would have given it
    try:
        yield staging
        if out.exists():
            if not overwrite:
                raise FileExistsError(f"{out} appeared while the command ran; the new output is lost, nothing of "
                                      f"{out} was changed")  # fmt: skip
            previous = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.previous-"))
            os.replace(out, previous / out.name)
            os.replace(staging, out)
            shutil.rmtree(previous, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """The one writer of torch files: save to a temporary file beside `path`, fsync, rename over `path`. A kill
    mid-write leaves the previous file whole (and at most a hidden `.partial` file)."""
    import torch

    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)
