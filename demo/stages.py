"""The stages of `derain-demo` in a registry (`STAGES`, run in `derain.demo.core.ORDER`): each takes the `Demo` and
returns what the report needs (JSON-able), raising on failure."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from derain.demo.core import STREAM, UNSEEN, Demo, clear
from derain.machine import environment
from derain.registry import Registry

log = logging.getLogger("derain.demo")
METHODS = ("sequential", "clgid")
# CLGID's rain memory and distillation weight in the demo: what benchmarks/results/continual_synthetic.md picks
# (parametric memory, KD 0.1: +1.95 dB [1.70, 2.20] over sequential fine-tuning on the seen average; KD 0: +1.40,
# KD 0.3: +1.29, KD 1: -1.28)
MEMORY = "parametric"
KD_WEIGHT = 0.1
STAGES: Registry[Callable[[Demo], dict]] = Registry("demo stage")


@STAGES.register("data")
def stage_data(demo: Demo) -> dict:
    """The stream's train / val / test splits, the unseen domain's frames split into unpaired halves."""
    from derain.data.pairing import paired_folder
    from derain.data.synth import synthesize, synthesize_split

    root = demo.path("data")
    clear(root)
    side, count = demo.size.side, demo.size.images
    synthesize(list(STREAM), root, count, 4, size=(side, side), seed=demo.seed, n_val=4)
    for split, n in (("train", count), ("val", 4), ("test", 4)):
        synthesize_split(UNSEEN, split, n, root / UNSEEN / split, size=(side, side), seed=demo.seed)
    pairs = paired_folder(root / UNSEEN / "train")  # first half: rainy frames; second half: clean frames
    half = len(pairs) // 2
    for folder in ("unpaired_rain", "unpaired_clean"):
        (root / UNSEEN / folder).mkdir()
    for pair in pairs[:half]:
        shutil.copy(pair.rainy, root / UNSEEN / "unpaired_rain" / pair.rainy.name)
    for pair in pairs[half:]:
        shutil.copy(pair.clean, root / UNSEEN / "unpaired_clean" / pair.clean.name)
    return {"root": str(root), "domains": [*STREAM, UNSEEN], "train_images": count, "size": side}


def shipped_spec() -> tuple[str, Any]:
    from derain.models import load_model
    from derain.models.builtin import BUILTIN_WEIGHTS
    from derain.models.registry import ModelSpec

    spec = load_model(BUILTIN_WEIGHTS).spec
    return str(BUILTIN_WEIGHTS), ModelSpec(spec["name"], spec.get("kwargs", {}))


@STAGES.register("continual")
def stage_continual(demo: Demo) -> dict:
    """Sequential fine-tuning and CLGID over the stream from the shipped de-rainer; the better one goes on."""
    from derain.train.continual import ContinualConfig, task_dir, train_stream
    from derain.train.generator_bank import GeneratorConfig
    from derain.train.rain_memory import ParametricConfig

    weights, spec = shipped_spec()
    size = demo.size
    parametric = ParametricConfig(evaluations=max(8, size.gan_steps), count=64)  # a demo's budget
    gan = GeneratorConfig(
        iterations=size.gan_steps,
        batch_size=4,
        background_stages=size.gan_background[0],
        background_channels=size.gan_background[1],
        checkpoint_every=max(1, size.gan_steps),
        device=demo.device,
        cache=True,
        milestones=(),
    )
    summaries, configs = {}, {}
    for method in METHODS:
        clear(demo.path("continual", method))
        config = ContinualConfig(
            data_root=str(demo.path("data")),
            stream=STREAM,
            unseen=(f"{UNSEEN}/test",),
            method=method,
            model=spec,
            init=weights,
            out=str(demo.path("continual", method)),
            bank=str(demo.path("continual", "bank")),
            generator=gan,
            memory=MEMORY,
            parametric=parametric,
            kd_weight=KD_WEIGHT,
            iterations=size.iterations,
            warmup_epochs=0.05 * 250,
            batch_size=8,
            patch_size=64 if size.side >= 64 else size.side,
            lr=1e-4,
            min_lr=1e-5,
            checkpoint_every=10**9,
            device=demo.device,
            seed=demo.seed,
            cache=True,
        )
        summaries[method] = train_stream(config)
        configs[method] = config
    best = max(METHODS, key=lambda m: summaries[m]["avg_seen_psnr_y"])
    final = {m: str(task_dir(c, len(STREAM) - 1) / "final.pt") for m, c in configs.items()}
    bank = demo.path("continual", "bank", MEMORY)
    generators = {p.parent.name: str(p) for p in sorted(bank.glob("*/samples.png"))}
    return {
        "summaries": summaries,
        "final": final,
        "best": best,
        "best_weights": final[best],
        "heatmaps": {m: str(demo.path("continual", m, "matrix.png")) for m in METHODS},
        "generators": generators,
        "config": {
            "iterations_per_task": size.iterations,
            "gan_steps": size.gan_steps,
            "memory": MEMORY,
            "memory_evaluations": parametric.evaluations,
            "kd_weight": KD_WEIGHT,
            "lr": 1e-4,
            "batch": 8,
            "init": "the shipped de-rainer",
        },
    }


@STAGES.register("reward")
def stage_reward(demo: Demo) -> dict:
    """`derain-adapt`: the shipped de-rainer adapted to a new camera's rain (`storm`, which it never saw) from
    unpaired footage (rainy clips and dry clips of other scenes, rendered), keeping the earlier rain."""
    from derain.data.scenes import SceneSampler
    from derain.data.video import ClipConfig, write_footage
    from derain.train.adapt import AdaptConfig, adapt

    out = demo.path("reward")
    clear(out)
    quick = demo.size_name == "quick"
    clips, frames, (width, height) = (3, 4, (160, 112)) if quick else (6, 8, (320, 192))
    config = ClipConfig(frames=frames, height=height, width=width, dry_prob=0.0, shots=(1, 1))
    sampler = SceneSampler(1.0 if quick else 0.5, pool=0 if quick else 32, seed=demo.seed)
    rainy = write_footage(out / "footage" / "rainy", UNSEEN, clips, config, seed=demo.seed, sampler=sampler)
    dry = write_footage(out / "footage" / "dry", UNSEEN, 2, config, seed=demo.seed, dry=True, sampler=sampler)
    settings = dict(iterations=4, val_every=2, fit_evaluations=10, fit_crops=16, scorer_steps=10, reward_crops=8,
                    reward_every=2, val_per_domain=2, batch_size=4, photo_fraction=1.0, pool=0) if quick else dict(
                    iterations=25 * demo.size.reward_iterations, minutes=3.0 if demo.size_name == "default" else 30.0,
                    fit_evaluations=60 if demo.size_name == "default" else 160, val_every=100)  # fmt: skip
    adapt_config = AdaptConfig(rainy=tuple(str(p) for p in rainy), dry=tuple(str(p) for p in dry),
                               out=str(out / "run"), device=demo.device, seed=demo.seed, **settings)  # fmt: skip
    summary = adapt(adapt_config)
    return {
        "weights": str(out / "run" / "adapted.pt"),
        "method": adapt_config.method,
        "kept": summary["kept"],
        "steps": summary["steps"],
        "footage": summary["footage"],
        "start": summary["start"],
        "adapted": summary["adapted"],
        "rain": summary["rain"],
        "frames_image": str(out / "run" / "report.jpg"),
        "rain_image": str(out / "run" / "rain.png") if summary["rain"] else None,
        "config": {"iterations": adapt_config.iterations, "minutes": adapt_config.minutes,
                   "fit_evaluations": adapt_config.fit_evaluations},  # fmt: skip
    }


@STAGES.register("export")
def stage_export(demo: Demo) -> dict:
    """FP32, FP16, INT8 graphs of the better continual network, TensorRT-RTX engines, parity, cards."""
    from derain.export.pipeline import ExportRequest, export, parse_target_groups

    weights = demo.record("continual")["best_weights"]
    size = demo.size
    try:
        import tensorrt_rtx  # noqa: F401

        builder = "tensorrt_rtx"
    except ImportError:
        builder = "onnx-only"
    results, cards = {}, []
    for precision in ("fp32", "fp16", "int8"):
        request = ExportRequest(
            weights=weights,
            out=str(demo.path("export", precision)),
            precision=precision,
            shapes=(size.export_shape,),
            builder=builder,
            targets=tuple(parse_target_groups(size.targets)),
            calib_count=size.calib,
            test_domain=UNSEEN,
            test_count=4,
            seed=demo.seed,
        )
        result = export(request, overwrite=True)
        results[precision] = {
            "onnx": result.onnx.get(precision),
            "parity": result.parity.get(precision),
            "seconds": result.seconds,
            "engines": result.engines,
        }
        for engine in result.engines:
            card = json.loads(Path(engine["card"]).read_text()) if engine.get("card") else {}
            cards.append(
                {
                    "precision": precision,
                    **{k: v for k, v in engine.items() if k != "card"},
                    "card": engine.get("card"),
                    "summary": _card_summary(card),
                }
            )
    return {"builder": builder, "precisions": results, "cards": cards, "shape": list(size.export_shape)}


def _card_summary(card: dict) -> dict:
    """What the report shows of an engine card: the builder (library, version, targets) and the I/O."""
    builder = card.get("builder", {})
    return {
        "library": f"{builder.get('library', '?')} {builder.get('version', '')}".strip(),
        "io": card.get("io"),
        "inputs": card.get("inputs"),
        "checkpoint": card.get("checkpoint"),
    }


@STAGES.register("latency")
def stage_latency(demo: Demo) -> dict:
    """Each exported graph (and the checkpoint) on this machine: p50 / p95 of frame -> frame at the export size."""
    from derain.runtime import Derainer

    height, width = demo.size.export_shape
    frame = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    export = demo.record("export")
    rows = []
    candidates = [(f"onnxruntime {p}", info["onnx"]) for p, info in export["precisions"].items() if info["onnx"]]
    candidates.append(("pytorch fp32", demo.record("continual")["best_weights"]))
    for label, path in candidates:
        with Derainer(path, device="cpu") as derainer:
            derainer(frame)
            times = []
            for _ in range(8 if demo.size_name != "quick" else 3):
                started = time.perf_counter()
                derainer(frame)
                times.append((time.perf_counter() - started) * 1000)
        rows.append(
            {
                "backend": label,
                "p50_ms": float(np.percentile(times, 50)),
                "p95_ms": float(np.percentile(times, 95)),
                "runs": len(times),
                "frame": f"{width}x{height}",
            }
        )
    return {
        "rows": rows,
        "device": "CPU",
        "environment": environment(),
        "engines": "built for RTX targets; this machine has no GPU that can run them" if not _cuda() else "",
    }


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def best_backend(demo: Demo) -> tuple[str, str, dict]:
    """(label, model path, options): TensorRT where an engine runs here, else PyTorch CUDA (fused kernels when they
    build), else ONNX Runtime on the CPU with the FP32 graph (else the checkpoint)."""
    from derain.runtime.card import can_run

    export = demo.record("export") or {}
    for card in export.get("cards", []):
        engine = card.get("engine")
        if engine and can_run(engine):
            return "tensorrt", engine, {}
    weights = demo.record("continual")["best_weights"]
    if _cuda() and demo.device.startswith("cuda"):
        return "pytorch cuda fp16 (kernels auto)", weights, {"precision": "fp16", "kernels": "auto"}
    fp32 = export.get("precisions", {}).get("fp32", {}).get("onnx") if export.get("status") == "done" else None
    if fp32:
        return "onnxruntime cpu fp32", fp32, {"threads": 2}
    return "pytorch cpu fp32", weights, {"threads": 2}


@STAGES.register("stream")
def stage_stream(demo: Demo) -> dict:
    """A synthetic rainy `storm` video through the best backend: side-by-side mp4 (+ webm for browsers), stats."""
    import cv2

    from derain.runtime.cli import main as stream_main

    label, model, options = best_backend(demo)
    folder = demo.path("video")
    clear(folder)
    folder.mkdir(parents=True)
    width, height = demo.size.video_size
    source = f"synthetic://{UNSEEN}?size={width}x{height}&frames={demo.size.video_frames}&fps=15&pace=false"
    mp4, stats = folder / "side_by_side.mp4", folder / "stats.json"
    argv = [
        "--model",
        model,
        "--source",
        source,
        "--sink",
        str(mp4),
        "--side-by-side",
        "--lossless",
        "--quiet",
        "--stats",
        str(stats),
        "--overwrite",
        "--device",
        "cuda" if label.startswith(("pytorch cuda", "tensorrt")) else "cpu",
        *[f"--{k}={v}" for k, v in options.items()],
    ]
    status = stream_main(argv)
    if status != 0:
        raise RuntimeError(f"derain-stream exited with status {status}")
    webm, poster = folder / "side_by_side.webm", folder / "poster.png"
    reader = cv2.VideoCapture(str(mp4))
    writer = None
    frames = 0
    while True:
        ok, image = reader.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(webm), cv2.VideoWriter_fourcc(*"VP90"), 15, image.shape[1::-1])
        writer.write(image)
        frames += 1
        if frames == max(1, demo.size.video_frames // 2):
            cv2.imwrite(str(poster), image)
    reader.release()
    if writer is not None:
        writer.release()
    if frames == 0:
        raise RuntimeError(f"{mp4} holds no frames")
    return {
        "backend": label,
        "model": model,
        "source": source,
        "mp4": str(mp4),
        "webm": str(webm) if webm.is_file() and webm.stat().st_size > 0 else None,
        "poster": str(poster),
        "frames": frames,
        "stats": json.loads(stats.read_text()),
        "command": "derain-stream " + " ".join(argv),
    }


def write_side_by_side(panels: dict[str, np.ndarray], folder: Path, fps: float) -> dict[str, str | None]:
    """RGB clips (T, H, W, 3) of one size, side by side: an mp4, a WebM for browsers and a poster frame."""
    import cv2

    frames = np.concatenate(list(panels.values()), axis=2)
    paths = {"mp4": folder / "side_by_side.mp4", "webm": folder / "side_by_side.webm", "poster": folder / "poster.png"}
    for key, codec in (("mp4", "mp4v"), ("webm", "VP90")):
        writer = cv2.VideoWriter(str(paths[key]), cv2.VideoWriter_fourcc(*codec), fps, frames.shape[2:0:-1])
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
    cv2.imwrite(str(paths["poster"]), cv2.cvtColor(frames[len(frames) // 2], cv2.COLOR_RGB2BGR))
    return {key: str(path) if path.is_file() and path.stat().st_size > 0 else None for key, path in paths.items()}


@STAGES.register("video")
def stage_video(demo: Demo) -> dict:
    """Rendered rainy video (a moving camera, a cut, heavy rain) through the shipped per-frame and temporal
    de-rainers, frame by frame as a stream: rainy | per-frame | temporal side by side, PSNR-Y and flicker."""
    from derain.data.video import ClipConfig, render_clip
    from derain.quality.video import CleanMotion, flicker, frame_scores
    from derain.runtime import Derainer

    folder = demo.path("temporal_video")
    clear(folder)
    folder.mkdir(parents=True)
    width, height = demo.size.video_size
    config = ClipConfig(frames=demo.size.video_frames, height=height, width=width, shots=(2, 2), dry_prob=0.0,
                        motions=("static", "forward"), in_order=True)  # fmt: skip
    clip = render_clip("rain1200_heavy", demo.seed, config)
    outputs = {"rainy": clip.rainy}
    for name, model in (("per-frame", "builtin"), ("temporal", "builtin-temporal")):
        with Derainer(model, device="cpu") as derainer:
            outputs[name] = np.stack([derainer(np.ascontiguousarray(f[..., ::-1]), timestamp=i / 15)[..., ::-1]
                                      for i, f in enumerate(clip.rainy)])  # fmt: skip
    motion = CleanMotion(clip.clean, clip.cuts)
    scores = {name: {"psnr_y": float(frame_scores(frames, clip.clean)["psnr_y"].mean()),
                     "flicker": flicker(frames, motion)} for name, frames in outputs.items()}  # fmt: skip
    files = write_side_by_side(outputs, folder, fps=15)
    return {"domain": clip.domain, "frames": len(clip.rainy), "frame_size": [width, height], "cuts": list(clip.cuts),
            "motions": list(clip.motions), "scores": scores, **files}  # fmt: skip


@STAGES.register("scores")
def stage_scores(demo: Demo) -> dict:
    """Every network on the data v2 test set, and before/after grids (2x zoomed crops) of the best one."""
    from derain.models import load_model
    from derain.train.testset import CLEAN, image_grid, model_runner, score_domains

    weights, _ = shipped_spec()
    continual = demo.record("continual")
    reward = demo.record("reward") or {}
    networks = {"shipped de-rainer": weights, **{f"{m} (after the stream)": p for m, p in continual["final"].items()}}
    if reward.get("status") == "done":
        networks[f"shipped de-rainer adapted to {UNSEEN} (derain-adapt)"] = reward["weights"]
    domains = [*STREAM, UNSEEN]
    scores = {}
    for name, path in networks.items():
        scores[name] = score_domains(model_runner(load_model(path).eval()), domains,
                                     limit=32 if demo.size_name == "quick" else None)  # fmt: skip
    best = f"{continual['best']} (after the stream)"
    grid = demo.path("images", "before_after.png")
    grid.parent.mkdir(parents=True, exist_ok=True)
    image_grid(model_runner(load_model(networks[best]).eval()), [*domains, CLEAN], grid)
    return {"scores": scores, "grid": str(grid), "grid_network": best, "domains": domains}
