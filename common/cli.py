"""What every `derain-*` command shares (torch-free).

- Exit statuses: 0 done, 2 bad input (one line naming every problem, before any work), 3 a batch finished but some
  items failed (listed), 130 interrupted, 1 a bug (the traceback is kept and the user is asked to report it).
- `run_main`: the top-level handler that turns an `InputError` (or a missing / unwritable path) into that one line.
- `Problems`: collect every problem found while checking arguments, raise them together as a `UsageError`.
- `setup_logging` / `progress`: a progress bar on a terminal; in a log file, one line per stage with the time and,
  for long loops, one line every `LOG_EVERY_S` seconds.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from typing import Any

EXIT_OK, EXIT_BUG, EXIT_INPUT, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
LOG_EVERY_S = 30.0
ISSUES_URL = "the project's issue tracker"

# Paths that are missing, of the wrong kind or not ours to write: the user's input, not a bug.
OS_INPUT_ERRORS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


class InputError(Exception):
    """Base of every error caused by what the user gave (a path, a flag, a file's contents), not by a bug.

    `run_main` prints its message as one line and exits with status 2."""


class UsageError(InputError, ValueError):
    """One or more problems with a command's arguments or inputs, all found before any work started."""

    def __init__(self, problems: Iterable[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else [str(p) for p in problems]
        super().__init__("; ".join(self.problems))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        return f"{len(self.problems)} problems: " + "; ".join(f"({i}) {p}" for i, p in enumerate(self.problems, 1))


class Problems:
    """Every problem found while checking a command's inputs; `raise_if_any()` reports them in one message."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, problem: str) -> None:
        self.items.append(problem)

    def extend(self, problems: Iterable[str]) -> None:
        self.items.extend(problems)

    def attempt(self, check: Callable[[], Any]) -> Any:
        """Run `check`; an `InputError` / bad path / `ValueError` it raises becomes a problem (returns None)."""
        try:
            return check()
        except (InputError, ValueError, *OS_INPUT_ERRORS) as error:
            self.add(str(error))
            return None

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise UsageError(self.items)


def number_problems(values: dict[str, Any], minimum: float | None = None, maximum: float | None = None
                    ) -> list[str]:  # fmt: skip
    """Range problems of named numeric flags (`{"--tile": 512}`); None values are skipped."""
    problems = []
    for flag, value in values.items():
        if value is None:
            continue
        if minimum is not None and value < minimum:
            problems.append(f"{flag} must be >= {minimum:g}, got {value:g}")
        if maximum is not None and value > maximum:
            problems.append(f"{flag} must be <= {maximum:g}, got {value:g}")
    return problems


def run_main(prog: str, body: Callable[[], int]) -> int:
    """Run a command's body: input errors are one line on stderr and exit 2; bugs keep their traceback (exit 1)."""
    try:
        return body()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (InputError, *OS_INPUT_ERRORS) as error:
        print(f"{prog}: error: {one_line(error)}", file=sys.stderr)
        return EXIT_INPUT
    except Exception:  # a bug: keep everything a maintainer needs
        traceback.print_exc()
        print(f"{prog}: unexpected error (a bug in derain-edge, not in your input): please report it with the "
              f"traceback above to {ISSUES_URL}", file=sys.stderr)  # fmt: skip
        return EXIT_BUG


def one_line(error: BaseException) -> str:
    """An error's message on one line (an OSError with a file name says which file)."""
    text = str(error)
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    return " ".join(text.split()) or type(error).__name__


def is_terminal() -> bool:
    return sys.stderr.isatty()


def setup_logging(level: int = logging.INFO, library_only: bool = False) -> None:
    """Log to stderr: plain messages on a terminal, `HH:MM:SS message` in a log file.

    `library_only`: the root logger stays at WARNING and only `derain.*` loggers speak at `level`."""
    fmt = "%(message)s" if is_terminal() else "%(asctime)s %(message)s"
    logging.basicConfig(level=logging.WARNING if library_only else level, format=fmt, datefmt="%H:%M:%S")
    if library_only:
        logging.getLogger("derain").setLevel(level)


class LogProgress:
    """tqdm's interface for a log file: a line when it starts, every `every` seconds, and when it ends."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        total: int | None = None,
        desc: str = "",
        initial: int = 0,
        every: float = LOG_EVERY_S,
    ) -> None:
        self.iterable, self.desc, self.n, self.every = iterable, desc, initial, every
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.log = logging.getLogger("derain.progress")
        self.postfix = ""
        self.started = self.last = time.perf_counter()
        self.initial, self.closed = initial, False
        self.log.info("%s: %s", desc, f"starting at {initial}/{self.total}" if initial else f"0/{self.total}")

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> str:
        elapsed = time.perf_counter() - self.started
        done = self.n - self.initial
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.desc}: {self.n}/{self.total if self.total is not None else '?'}", f"{elapsed:.0f} s"]
        if rate and self.total:
            parts.append(f"{rate:.2f}/s, {max(self.total - self.n, 0) / rate:.0f} s left")
        if self.postfix:
            parts.append(self.postfix)
        return "  ".join(parts)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self.log.info("%s", self._line())

    def set_postfix(self, **values: Any) -> None:
        self.postfix = " ".join(f"{key} {value}" for key, value in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.log.info("%s (done)", self._line())


def progress(iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str = "", initial: int = 0,
             leave: bool = True, enabled: bool = True) -> Any:  # fmt: skip
    """A tqdm bar on a terminal, a `LogProgress` in a log file, nothing visible if not `enabled`."""
    from tqdm import tqdm

    if not enabled:
        return tqdm(iterable, total=total, desc=desc, initial=initial, disable=True)
    if is_terminal():
        return tqdm(iterable, total=total, desc=desc, initial=initial, leave=leave)
    return LogProgress(iterable, total=total, desc=desc, initial=initial)
