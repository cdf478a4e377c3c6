"""derain-gst: the `derain` GStreamer element from a shell.

  eval "$(derain-gst env)"                 # GST_PLUGIN_PATH and DERAIN_SITE for gst-launch-1.0 / gst-inspect-1.0
  derain-gst launch videotestsrc ! videoconvert ! video/x-raw,format=BGR ! derain ! videoconvert ! autovideosink
  derain-gst inspect                       # gst-inspect-1.0 derain, with the environment set

`launch` and `inspect` run gst-launch-1.0 / gst-inspect-1.0 with that environment. The element needs GStreamer's
Python plugin loader (Debian / Ubuntu: gstreamer1.0-python3-plugin-loader; JetPack has it).
"""

from __future__ import annotations

import os
import shlex
import shutil
import site
import sys
from pathlib import Path

from derain.cli import EXIT_INPUT, one_line

PLUGIN_DIR = Path(__file__).parent / "gstplugin"
LOADER = "gstreamer1.0-python3-plugin-loader"


def environment() -> dict[str, str]:
    """GST_PLUGIN_PATH with the plugin folder first, DERAIN_SITE with this interpreter's package folders."""
    plugin_path = os.pathsep.join(p for p in (str(PLUGIN_DIR), os.environ.get("GST_PLUGIN_PATH", "")) if p)
    folders = [*site.getsitepackages(), site.getusersitepackages()] if hasattr(site, "getsitepackages") else []
    folders = [f for f in dict.fromkeys([*folders, *(p for p in sys.path if p.endswith("-packages"))]) if
               Path(f).is_dir()]  # fmt: skip
    return {"GST_PLUGIN_PATH": plugin_path, "DERAIN_SITE": os.pathsep.join(folders)}


def plugin_loader() -> Path | None:
    """GStreamer's Python plugin loader (libgstpython.so) where Debian, Ubuntu and JetPack install it, or None."""
    import glob

    found = glob.glob("/usr/lib/*-linux-gnu/gstreamer-1.0/libgstpython.so") + glob.glob(
        "/usr/lib/gstreamer-1.0/libgstpython.so")  # fmt: skip
    return Path(found[0]) if found else None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    env = environment()
    if command == "env":
        for key, value in env.items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if command not in ("launch", "inspect"):
        print(f"derain-gst: error: unknown command {command!r} (env, launch, inspect)", file=sys.stderr)
        return 2
    tool = "gst-launch-1.0" if command == "launch" else "gst-inspect-1.0"
    if shutil.which(tool) is None:
        print(f"derain-gst: error: {tool} is not installed (gstreamer1.0-tools)", file=sys.stderr)
        return EXIT_INPUT
    if plugin_loader() is None:
        print(f"derain-gst: warning: GStreamer's Python plugin loader was not found ({LOADER}); the derain "
              "element will be missing", file=sys.stderr)  # fmt: skip
    try:
        os.execvpe(tool, [tool, *(rest if command == "launch" else rest or ["derain"])], {**os.environ, **env})
    except OSError as error:
        print(f"derain-gst: error: {one_line(error)}", file=sys.stderr)
        return EXIT_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
