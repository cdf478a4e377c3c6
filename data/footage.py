"""Footage a user hands over (video files, folders of frames, folders of either), read as sampled clips.

A clip is a video file or a folder of frames in name order; a folder of videos gives each video, a folder of frame
folders each folder. From a video at most one frame per `every_seconds` of it and at most `per_clip` frames, spread
over the whole clip (the frame count from the container); from a folder `per_clip` images spread over it. Frames come
out as RGB uint8; grey, alpha and 16-bit files are converted (`derain.data.io.read_image`), and a frame that does not
decode is skipped and counted. Reading is the training side's (`derain-adapt`); streaming a camera is the
runtime's (`derain.runtime.sources`).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from derain.cli import UsageError
from derain.data.io import IMAGE_SUFFIXES, ImageReadError, read_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".ts", ".h264", ".h265")


def list_clips(inputs: tuple[str, ...], flag: str) -> list[str]:
    """The clips the inputs name: a video file is one; a folder of videos gives each; a folder of images (or one
    image) is one clip of its frames in name order; a folder of frame folders gives each. A missing path or a
    folder with none of these is a UsageError."""
    clips, problems = [], []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            problems.append(f"{flag} {item} does not exist")
        elif path.is_file():
            if path.suffix.lower() not in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES):
                problems.append(f"{flag} {item} is neither a video ({', '.join(VIDEO_SUFFIXES)}) nor an image")
            else:
                clips.append(str(path))
        else:
            videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
            images = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
            if videos:
                clips += [str(v) for v in videos]
            elif images:
                clips.append(str(path))
            else:
                sub = sorted(p for p in path.iterdir() if p.is_dir() and any(
                    q.suffix.lower() in IMAGE_SUFFIXES for q in p.iterdir()))  # fmt: skip
                if sub:
                    clips += [str(s) for s in sub]
                else:
                    problems.append(f"{flag} {item} holds no videos and no images")
    if problems:
        raise UsageError(problems)
    return clips


def _spread(count: int, keep: int) -> list[int]:
    return sorted(set(np.linspace(0, count - 1, min(keep, count)).round().astype(int).tolist()))


def read_clip(clip: str, every_seconds: float, per_clip: int) -> tuple[list[np.ndarray], int]:
    """Sampled frames of one clip (RGB uint8) and how many did not decode; a clip that does not open, or gives no
    frame at all, is a UsageError."""
    path = Path(clip)
    frames, skipped = [], 0
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
        for index in _spread(len(paths), per_clip):
            try:
                frames.append(read_image(paths[index]))
            except ImageReadError:
                skipped += 1
    else:
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise UsageError(f"clip {clip} cannot be read: the video does not open (not a video, or a codec this "
                             "OpenCV lacks)")  # fmt: skip
        try:
            fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
            total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            stride = max(1, int(round(fps * every_seconds)))
            if total > 0:
                stride = max(stride, int(math.ceil(total / per_clip)))
            index = 0
            while len(frames) < per_clip:
                if not capture.grab():
                    break
                if index % stride == 0:
                    ok, frame = capture.retrieve()
                    if ok and frame is not None:
                        frames.append(np.ascontiguousarray(frame[..., ::-1]))
                    else:
                        skipped += 1
                index += 1
        finally:
            capture.release()
    if not frames:
        raise UsageError(f"clip {clip} gave no frame that decodes ({skipped} failed)")
    return frames, skipped
