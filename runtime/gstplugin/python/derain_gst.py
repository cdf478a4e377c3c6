"""The `derain` element for gst-launch-1.0 and any GStreamer application: GStreamer's Python plugin loader
(`gstreamer1.0-python3-plugin-loader` on Debian / Ubuntu, part of JetPack's GStreamer) loads this file from the
`python/` folder of a GST_PLUGIN_PATH entry. `eval "$(derain-gst env)"` sets GST_PLUGIN_PATH to its parent and
DERAIN_SITE to the site-packages of the environment derain-edge is installed in (the loader runs the system's
Python, which does not know that environment)."""

import os
import site
import sys

_before = list(sys.path)
for _folder in os.environ.get("DERAIN_SITE", "").split(os.pathsep):
    if _folder and _folder not in sys.path:
        site.addsitedir(_folder)  # runs the environment's .pth files too (editable installs)
sys.path[:] = [p for p in sys.path if p not in _before] + _before  # the environment's packages first

from gi.repository import Gst  # noqa: E402 - after the environment is on the path

from derain.runtime.gst_element import _element_class, quiet_floating_warning  # noqa: E402

quiet_floating_warning()
__gstelementfactory__ = ("derain", Gst.Rank.NONE, _element_class())
