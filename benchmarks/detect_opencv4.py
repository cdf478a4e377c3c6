"""Detectors that ship inside OpenCV 4.x, run on saved frames: a helper of `benchmarks/video_derainer.py`.

OpenCV 5 moved the HOG people detector and the Haar cascades out of its main module, and the project runs on
OpenCV 5; so the benchmark runs this script in a child process whose `PYTHONPATH` puts an OpenCV 4.x wheel first
(`pip install --target .detector/opencv4 --no-deps "opencv-python-headless<5"`, nothing downloaded at run time).
It imports nothing from the project.

    PYTHONPATH=.detector/opencv4 python benchmarks/detect_opencv4.py frames.npz boxes.json

frames.npz: uint8 BGR (N, H, W, 3) arrays, one per variant (clean, rainy, each de-rainer). boxes.json: per variant,
per detector, per frame, [x, y, w, h] boxes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

# detector -> (cascade file in cv2.data.haarcascades or "hog", scale factor, min neighbours, min size in pixels)
DETECTORS = {
    "face": ("haarcascade_frontalface_default.xml", 1.1, 3, 24),
    "cat_face": ("haarcascade_frontalcatface_extended.xml", 1.1, 3, 24),
    "upper_body": ("haarcascade_upperbody.xml", 1.1, 3, 48),
    "person": ("hog", 1.05, 0, 128),
}


def detectors() -> dict:
    if int(cv2.__version__.split(".")[0]) >= 5:
        raise SystemExit(f"OpenCV {cv2.__version__} at {cv2.__file__}: the detectors need OpenCV 4.x first on "
                         "PYTHONPATH")  # fmt: skip
    built = {}
    for name, (source, *_) in DETECTORS.items():
        if source == "hog":
            hog = cv2.HOGDescriptor()
            hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
            built[name] = hog
        else:
            built[name] = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / source))
    return built


def detect(built: dict, frame: np.ndarray) -> dict[str, list[list[int]]]:
    grey = cv2.equalizeHist(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    boxes = {}
    for name, (source, scale, neighbours, size) in DETECTORS.items():
        if source == "hog":
            found, _ = built[name].detectMultiScale(frame, winStride=(8, 8), padding=(8, 8), scale=scale)
        else:
            found = built[name].detectMultiScale(grey, scaleFactor=scale, minNeighbors=neighbours,
                                                 minSize=(size, size))  # fmt: skip
        boxes[name] = [list(map(int, box)) for box in (found if len(found) else [])]
    return boxes


def main(argv: list[str]) -> int:
    source, target = Path(argv[0]), Path(argv[1])
    built = detectors()
    out: dict = {"opencv": cv2.__version__}
    with np.load(source) as frames:
        for variant in frames.files:
            per_frame = [detect(built, frame) for frame in frames[variant]]
            out[variant] = {name: [boxes[name] for boxes in per_frame] for name in DETECTORS}
    target.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
