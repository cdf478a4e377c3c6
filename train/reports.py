"""Reports of a continual run: the accuracy matrix (rows: after each task; columns: each test split) as JSON, CSV
and a heatmap, and its summary (average seen, backward transfer, unseen)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from derain.outputs import atomic_write_text
from derain.train.methods import method_of, task_names


def load_matrix(out: Path) -> dict:
    path = out / "matrix.json"
    if path.is_file():
        return json.loads(path.read_text())
    return {"rows": {}}


def summarize(config: Any, matrix: dict) -> dict:
    """Average seen PSNR after the last task, backward transfer, unseen PSNR (RGB and Y).

    `individual` has no last task: each dataset is scored by its own network, each unseen set by the mean over
    the networks trained so far, and there is no backward transfer."""
    rows = matrix["rows"]
    tasks = [t for t in task_names(config) if t in rows]
    if not tasks:
        return {"tasks_done": 0}
    method = method_of(config)
    if method.fresh:
        final = {name: rows[name][name] for name in tasks}
        for unseen in (f"unseen:{name}" for name in config.unseen):
            metrics = rows[tasks[0]][unseen]
            final[unseen] = {m: float(np.mean([rows[t][unseen][m] for t in tasks])) for m in metrics}
    else:
        final = rows[tasks[-1]]
    summary: dict = {"method": config.method, "model": config.model.name, "tasks_done": len(tasks)}
    for metric in ("psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y"):
        seen = config.stream if method.joint else config.stream[: len(tasks)]
        summary[f"avg_seen_{metric}"] = float(np.mean([final[n][metric] for n in seen]))
        if method.forgets and len(tasks) > 1:
            drops = [final[n][metric] - rows[n][n][metric] for n in config.stream[: len(tasks) - 1]]
            summary[f"bwt_{metric}"] = float(np.mean(drops))
        for name in config.unseen:
            summary[f"unseen_{name}_{metric}"] = final[f"unseen:{name}"][metric]
    summary["final"] = final
    return summary


def write_matrix(config: Any, matrix: dict, out: Path) -> None:
    """`matrix.json`, `matrix.csv` and the `matrix.png` heatmap of a stream's accuracy matrix, each atomic."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "matrix.json", json.dumps(matrix, indent=2))
    columns = [*config.stream, *(f"unseen:{n}" for n in config.unseen)]
    lines = ["task," + ",".join(f"{c}:{m}" for c in columns for m in config.metrics)]
    for task, scores in matrix["rows"].items():
        lines.append(task + "," + ",".join(f"{scores[c][m]:.4f}" for c in columns for m in config.metrics))
    atomic_write_text(out / "matrix.csv", "\n".join(lines) + "\n")
    heatmap(matrix, columns, "psnr_rgb", out / "matrix.png", "alone on" if method_of(config).fresh else "after")


def heatmap(matrix: dict, columns: list[str], metric: str, path: Path, rows_are: str = "after") -> None:
    """Task x dataset PSNR heatmap as a PNG, drawn with OpenCV (no plotting dependency); row labels read
    `<rows_are> <task>` ("after" a task of a stream, "alone on" a dataset for `individual`)."""
    rows = list(matrix["rows"])
    values = np.array([[matrix["rows"][r][c][metric] for c in columns] for r in rows], dtype=np.float32)
    cell_w, cell_h, left, top = 150, 48, 170, 60
    image = np.full((top + cell_h * len(rows) + 30, left + cell_w * len(columns), 3), 255, np.uint8)
    low, high = float(values.min()), float(values.max())
    colours = cv2.applyColorMap(
        ((values - low) / max(high - low, 1e-6) * 255).astype(np.uint8)[..., None], cv2.COLORMAP_VIRIDIS
    )
    font = cv2.FONT_HERSHEY_SIMPLEX
    title = "after each task" if rows_are == "after" else f"trained {rows_are} each set"
    cv2.putText(image, f"{metric} {title} (rows) on each test set (columns)", (8, 20), font, 0.5, 0, 1)
    for j, column in enumerate(columns):
        cv2.putText(image, column[:20], (left + j * cell_w + 4, top - 10), font, 0.42, 0, 1)
    for i, row in enumerate(rows):
        cv2.putText(image, f"{rows_are} {row}"[:22], (4, top + i * cell_h + 30), font, 0.45, 0, 1)
        for j in range(len(columns)):
            x, y = left + j * cell_w, top + i * cell_h
            image[y : y + cell_h - 2, x : x + cell_w - 2] = colours[i, j]  # BGR
            shade = 0 if colours[i, j].mean() > 110 else 255
            cv2.putText(image, f"{values[i, j]:.2f}", (x + 40, y + 30), font, 0.6, (shade,) * 3, 1)
    cv2.imwrite(str(path), image)
