"""The package builds as a wheel that installs into a fresh virtual environment, imports, and runs its scripts."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["derain", "derain.models", "derain.data", "derain.quality", "derain.train", "derain.export",
               "derain.runtime", "derain.runtime.backends", "derain.cpp_ext"]  # fmt: skip
SCRIPTS = ["derain-data", "derain-train", "derain-eval", "derain-demo", "derain-export", "derain-stream"]


@pytest.mark.slow
def test_wheel_installs_imports_and_runs_scripts_in_a_fresh_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    wheels = list(dist.glob("derain_edge-*.whl"))
    assert len(wheels) == 1
    env = tmp_path / "env"
    venv.create(env, with_pip=True)
    python = env / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheels[0])], check=True)
    # Dependencies (torch, opencv, ...) come from this interpreter's site-packages, appended after the fresh
    # venv's own, so the wheel's copy of derain is the one imported (the editable install's hook is not loaded).
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    (Path(site) / "outer_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    code = "import importlib; " + "; ".join(
        f"print(importlib.import_module({name!r}).__file__)" for name in SUBPACKAGES
    )
    files = subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout.split()
    assert len(files) == len(SUBPACKAGES)
    assert all(Path(f).resolve().is_relative_to(env.resolve()) for f in files), files
    # Nothing generic lands in site-packages: only the derain namespace.
    assert not any((Path(site) / name).exists() for name in ("models", "data", "train", "runtime"))
    # The shipped de-rainer travels in the wheel, and the installed copy finds it.
    code = "from derain.builtin import resolve_weights; print(resolve_weights(None))"
    where = subprocess.run([str(python), "-c", code], check=True, capture_output=True, text=True,
                           cwd=tmp_path).stdout.strip()  # fmt: skip
    assert Path(where).is_file() and Path(where).resolve().is_relative_to(env.resolve()), where
    for script in SCRIPTS:
        result = subprocess.run([str(env / "bin" / script), "--help"], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout
    # the GStreamer element's plugin file travels too, and `derain-gst env` points GStreamer at the installed copy
    result = subprocess.run([str(env / "bin" / "derain-gst"), "env"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plugin_path = result.stdout.split("GST_PLUGIN_PATH=", 1)[1].split()[0].strip("'").split(":")[0]
    assert (Path(plugin_path) / "python" / "derain_gst.py").is_file()
    assert Path(plugin_path).resolve().is_relative_to(env.resolve()), plugin_path
