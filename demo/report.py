"""`derain-demo`'s report: one list of blocks (headings, text, tables, images, the video) written as Markdown and as
a self-contained HTML page (styles inline; images and video are files beside it, linked by relative paths, so the
page opens from disk with no server). Every figure says how it was produced."""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

from derain.demo.core import ORDER, STREAM, UNSEEN, Demo
from derain.outputs import atomic_write_text

Block = tuple  # ("h1"|"h2"|"p"|"table"|"img"|"video"|"note", ...)


def write_report(demo: Demo, results: dict[str, dict], total: float) -> tuple[Path, Path]:
    """`report.md` and `report.html` under the demo's folder; returns their paths."""
    blocks = build_blocks(demo, results, total)
    md, page = demo.path("report.md"), demo.path("report.html")
    atomic_write_text(md, to_markdown(blocks, demo.out))
    atomic_write_text(page, to_html(blocks, demo.out))
    return md, page


def _ci(entry: dict) -> str:
    low, high = entry["ci"]
    return f"{entry['mean']:.2f} [{low:.2f}, {high:.2f}]"


def _how(demo: Demo, record: dict, extra: str = "") -> Block:
    return (
        "note",
        f"How: `{demo.command}`, stage `{record['stage']}` ({demo.size_name} size), seed {record['seed']}, "
        f"device {record['device']}, {record['seconds']:.0f} s, finished {record['finished']}"
        + (f"; {extra}" if extra else "")
        + ".",
    )


def build_blocks(demo: Demo, results: dict[str, dict], total: float) -> list[Block]:
    blocks: list[Block] = [("h1", "derain-demo: from training to a de-rained video")]
    ran = [s for s in ORDER if results[s]["status"] == "done"]
    blocks.append(
        (
            "p",
            f"{len(ran)} of {len(ORDER)} stages ran ({demo.size_name} size) on {demo.device}; the stages took "
            f"{sum(results[s]['seconds'] for s in ORDER):.0f} s in all (this invocation: {total:.0f} s, finished "
            f"stages reused). Command: `{demo.command}`. Everything here is rendered from the built-in scenes; "
            "nothing was downloaded.",
        )
    )
    rows = [
        [
            s,
            results[s]["status"] + (" (reused)" if results[s].get("reused") else ""),
            f"{results[s]['seconds']:.0f}",
            results[s].get("error", ""),
        ]
        for s in ORDER
    ]
    blocks.append(("table", ["stage", "status", "seconds", "why not"], rows))
    for stage, section in (
        ("scores", _scores),
        ("continual", _continual),
        ("reward", _reward),
        ("export", _export),
        ("latency", _latency),
        ("stream", _stream),
        ("video", _video),
    ):
        if results[stage]["status"] == "done":
            blocks += section(demo, results[stage])
        else:
            blocks += [("h2", stage), ("p", f"Did not run: {results[stage].get('error', '?')}")]
    return blocks


def _scores(demo: Demo, record: dict) -> list[Block]:
    scores = record["scores"]
    names = list(scores)
    first = scores[names[0]]
    header = ["domain", "rainy input", *names]
    rows, worse = [], []
    for domain in record["domains"]:
        row = [domain + (" (unseen)" if domain == UNSEEN else ""), _ci(first[domain]["input"]["psnr_y"])]
        for name in names:
            entry = scores[name][domain]
            row.append(f"{_ci(entry['output']['psnr_y'])} ({entry['gain']['psnr_y']['mean']:+.2f})")
            if entry["gain"]["psnr_y"]["mean"] <= 0:
                worse.append(f"{name} on {domain} ({entry['gain']['psnr_y']['mean']:+.2f} dB)")
        rows.append(row)
    rows.append(
        [
            "clean input (dry frames)",
            "100 (unchanged)",
            *[_ci(scores[n]["clean input"]["output"]["psnr_y"]) for n in names],
        ]
    )
    verdict = (
        "Every de-rained output beats its rainy input on PSNR-Y."
        if not worse
        else "Not every output beats its rainy input: " + "; ".join(worse) + "."
    )
    return [
        ("h2", "De-rained against rainy, per domain"),
        (
            "p",
            f"PSNR-Y (dB) on the data v2 test set: {first[record['domains'][0]]['n']} crops of 80x80 from four photos "
            "no training image comes from (all 126 but at --quick size), "
            "the same crops in every domain; [95 % bootstrap CI], (gain over the rainy input). `clean input`: the "
            "network fed the clean crops (100 = returned unchanged). " + verdict,
        ),
        ("table", header, rows),
        ("img", record["grid"], f"rainy | de-rained ({record['grid_network']}) | clean, 2x zoomed crops per domain"),
        _how(demo, record, "scored with derain.train.testset.score_domains"),
    ]


def _continual(demo: Demo, record: dict) -> list[Block]:
    summaries = record["summaries"]
    rows = []
    for method, s in summaries.items():
        unseen = next((v for k, v in s.items() if k.startswith("unseen_") and k.endswith("_psnr_y")), float("nan"))
        rows.append(
            [
                method,
                f"{s['avg_seen_psnr_y']:.2f}",
                f"{s.get('bwt_psnr_y', float('nan')):+.2f}",
                f"{unseen:.2f}",
                "yes" if method == record["best"] else "",
            ]
        )
    config = record["config"]
    blocks: list[Block] = [
        ("h2", "Continual learning over the stream: CLGID against sequential fine-tuning"),
        (
            "p",
            f"Stream {' -> '.join(STREAM)}; both methods start from {config['init']} and train "
            f"{config['iterations_per_task']} iterations per task (batch {config['batch']}, lr {config['lr']}); "
            f"CLGID replays from its {config.get('memory', 'vrgnet')} rain memory ({_memory_budget(config)}), "
            f"distillation weight {config.get('kd_weight', 1.0):g}. Scores: PSNR-Y on each "
            "dataset's rendered test images after the last task; BWT: change on earlier tasks since each was "
            "learned. A demo budget: the full comparison on data v2 is `benchmarks/results/continual_synthetic.md`.",
        ),
        ("table", ["method", "average over seen (PSNR-Y)", "BWT", f"unseen {UNSEEN}", "goes on"], rows),
    ]
    for method, path in record["heatmaps"].items():
        blocks.append(("img", path, f"{method}: PSNR after each task (rows) on every test set (columns)"))
    for name, path in record["generators"].items():
        if config.get("memory", "vrgnet") == "parametric":
            caption = (f"rain memory of {name}: the dataset's rain layers (top) and the memory's (bottom), grey as "
                       f"replayed, after {config['memory_evaluations']} renderer evaluations (memories fitted at "
                       "full budget: benchmarks/results/rain_memory.md)")  # fmt: skip
        else:
            caption = (f"rain generator of {name}: samples (grey, as replayed) after {config['gan_steps']} critic "
                       "steps; at a demo budget they draw little or no rain, so replay is weak here (generators "
                       "trained to their plateau: benchmarks/results/continual_synthetic.md)")  # fmt: skip
        blocks.append(("img", path, caption))
    blocks.append(_how(demo, record, "derain.train.continual.train_stream, method sequential and clgid"))
    return blocks


def _memory_budget(config: dict) -> str:
    if config.get("memory", "vrgnet") == "parametric":
        return f"the renderer's parameters fitted in {config['memory_evaluations']} evaluations"
    return f"generators trained {config['gan_steps']} critic steps each"


def _reward(demo: Demo, record: dict) -> list[Block]:
    start, adapted = record["start"], record["adapted"]
    rows = [["held-out footage rain score (lower: less rain left)", f"{start['footage_rain']:.3f}",
             f"{adapted['footage_rain']:.3f}"]]  # fmt: skip
    if "fitted_psnr" in start:
        rows.append(["the fitted rain over held-out clean frames, PSNR", f"{start['fitted_psnr']:.2f}",
                     f"{adapted['fitted_psnr']:.2f}"])  # fmt: skip
    rows += [["earlier rain (every training domain), mean PSNR", f"{start['old_mean']:.2f}",
              f"{adapted['old_mean']:.2f}"],
             ["dry frames, PSNR against themselves", f"{start['dry_psnr']:.2f}", f"{adapted['dry_psnr']:.2f}"],
             ["dry crops, PSNR against themselves", f"{start['dry_crops_psnr']:.2f}",
              f"{adapted['dry_crops_psnr']:.2f}"]]  # fmt: skip
    footage = record["footage"]
    blocks: list[Block] = [
        ("h2", f"A new camera's rain learned without labels: derain-adapt on {UNSEEN}"),
        (
            "p",
            f"The shipped de-rainer, which never saw {UNSEEN}, adapted from unpaired footage: "
            f"{footage['rainy_frames']} rainy frames of {footage['rainy_clips']} clips ({footage['held_out_frames']} "
            f"held out) and {footage['dry_frames']} dry frames of other scenes; method `{record['method']}`, "
            f"{record['steps']} steps. Kept: **{record['kept']}** (a network is kept only if every earlier domain, "
            "the dry frames and the held-out footage are no worse than at the start). Its test-set scores are in "
            "the first table.",
        ),
        ("table", ["measure", "start", "kept"], rows),
        ("img", record["frames_image"], "held-out frames: rainy | start | adapted"),
    ]
    if record.get("rain_image") and Path(record["rain_image"]).is_file():
        blocks.append(("img", record["rain_image"], "the footage's rain (top) and the fitted rain memory's (bottom), "
                       "as the start network removes them"))  # fmt: skip
    blocks.append(_how(demo, record, "derain.train.adapt.adapt (the derain-adapt command)"))
    return blocks


def _export(demo: Demo, record: dict) -> list[Block]:
    rows = []
    for precision, info in record["precisions"].items():
        p = info["parity"] or {}
        rows.append(
            [
                precision,
                _num(p.get("psnr_rgb_clean")),
                _num(p.get("ssim_rgb_clean"), 4),
                _num(p.get("psnr_rgb_fp32")),
                len(info["engines"]),
            ]
        )
    cards = []
    for card in record["cards"]:
        targets = ", ".join(f"sm{t}" for t in card.get("targets", []))
        size = _num(card["bytes"] / 1e6) if card.get("bytes") else "-"
        cards.append(
            [
                card["precision"],
                Path(card.get("engine", "")).name,
                targets,
                card["summary"].get("library", ""),
                size,
                _num(card.get("seconds")),
                Path(card["card"]).name if card.get("card") else "",
            ]
        )
    shape = "x".join(map(str, record["shape"]))
    return [
        ("h2", "Export: ONNX FP32 / FP16 / INT8 and TensorRT-RTX engines"),
        (
            "p",
            f"The network that goes on, with uint8 BGR frame I/O at {shape}; INT8 by NVIDIA ModelOpt with calibration "
            f"on rendered rainy frames; engines built ahead of time by `{record['builder']}` for RTX targets on this "
            "machine (no GPU needed to build). Parity on rendered test frames (ONNX Runtime, CPU): PSNR against the "
            "clean frames and against the FP32 graph's output (99 = identical).",
        ),
        ("table", ["precision", "PSNR vs clean", "SSIM vs clean", "PSNR vs FP32", "engines"], rows),
        ("table", ["precision", "engine", "targets", "built by", "MB", "build s", "card (beside the engine)"], cards),
        _how(demo, record, "derain.export.pipeline.export, one call per precision"),
    ]


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _latency(demo: Demo, record: dict) -> list[Block]:
    rows = [[r["backend"], r["frame"], f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", r["runs"]] for r in record["rows"]]
    env = record["environment"]
    note = f" TensorRT engines: {record['engines']}." if record["engines"] else ""
    return [
        ("h2", "Latency on this machine"),
        (
            "p",
            f"Frame in -> frame out (uint8 BGR), one frame at a time after a warm-up, on the CPU ({env['cores']} "
            f"cores, torch {env['libraries'].get('torch')}, onnxruntime {env['libraries'].get('onnxruntime')})."
            f"{note} GPU figures: `python "
            "benchmarks/latency.py` on a GPU machine.",
        ),
        ("table", ["backend", "frame", "p50 ms", "p95 ms", "runs"], rows),
        _how(demo, record),
    ]


def _stream(demo: Demo, record: dict) -> list[Block]:
    stats = record["stats"]
    latency = stats.get("latency_ms", {})
    return [
        ("h2", "Streaming a rainy video"),
        (
            "p",
            f"{record['frames']} frames of the built-in `{UNSEEN}` video through {record['backend']} (the best backend "
            f"this machine has), rainy | de-rained side by side: {stats.get('fps', 0):.1f} fps, latency p50 "
            f"{latency.get('p50', float('nan')):.0f} ms / p90 {latency.get('p90', float('nan')):.0f} ms, "
            f"{stats.get('dropped', 0)} dropped.",
        ),
        ("video", record.get("webm"), record["mp4"], record["poster"]),
        ("note", f"How: `{record['command']}`; {record['seconds']:.0f} s with the re-encode to WebM."),
    ]


def _video(demo: Demo, record: dict) -> list[Block]:
    scores = record["scores"]
    width, height = record["frame_size"]
    return [
        ("h2", "A video de-rainer: per-frame against temporal"),
        (
            "p",
            f"{record['frames']} frames of {width}x{height} rendered `{record['domain']}` rain over a test photo "
            f"(camera {' then '.join(record['motions'])}, a cut at frame {record['cuts'][-1]}), rainy | per-frame | "
            "temporal (the shipped networks, frame by frame as a stream; the temporal one also sees its previous "
            "frame and output, aligned to the camera's motion). PSNR-Y "
            + ", ".join(f"{name} {s['psnr_y']:.2f} dB" for name, s in scores.items())
            + "; flicker on still pixels over the clean video's "
            + ", ".join(f"{name} {s['flicker']:.2f}" for name, s in scores.items())
            + " grey levels.",
        ),
        ("video", record.get("webm"), record["mp4"], record["poster"]),
        ("note", "How: `derain.demo.stages.stage_video`; the full comparison: benchmarks/results/video_derainer.md."),
    ]


# ------------------------------------------------------------------------------------------------------ writers


def _rel(path: str | None, root: Path) -> str | None:
    return None if not path else os.path.relpath(Path(path).resolve(), root.resolve()).replace(os.sep, "/")


def to_markdown(blocks: list[Block], root: Path) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            lines += [("# " if kind == "h1" else "## ") + block[1], ""]
        elif kind in ("p", "note"):
            lines += [block[1] if kind == "p" else f"_{block[1]}_", ""]
        elif kind == "table":
            header, rows = block[1], block[2]
            lines += ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]
        elif kind == "img":
            lines += [f"![{block[2]}]({_rel(block[1], root)})", ""]
        elif kind == "video":
            lines += [f"[![the de-rained video (click to play)]({_rel(block[3], root)})]({_rel(block[2], root)})", ""]
    return "\n".join(lines)


STYLE = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f0f0f0}img,video{max-width:100%;border:1px solid #ddd;margin:0.5em 0}.note{color:#666;font-size:0.85em}
figure{margin:1em 0}figcaption{color:#444;font-size:0.9em}code{background:#f4f4f4;padding:1px 3px}"""


def _inline(text: str) -> str:
    """Escape, then `code` spans."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_html(blocks: list[Block], root: Path) -> str:
    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{_inline(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "note":
            body.append(f'<p class="note">{_inline(block[1])}</p>')
        elif kind == "table":
            head = "".join(f"<th>{_inline(str(h))}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{_inline(str(c))}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif kind == "img":
            body.append(
                f'<figure><img src="{html.escape(_rel(block[1], root))}" alt="{html.escape(block[2])}">'
                f"<figcaption>{_inline(block[2])}</figcaption></figure>"
            )
        elif kind == "video":
            webm, mp4, poster = (_rel(p, root) for p in block[1:4])
            sources = (f'<source src="{html.escape(webm)}" type="video/webm">' if webm else "") + (
                f'<source src="{html.escape(mp4)}" type="video/mp4">'
            )
            body.append(
                f'<figure><video controls loop muted poster="{html.escape(poster)}">{sources}</video>'
                f'<figcaption>rainy | de-rained (<a href="{html.escape(mp4)}">mp4</a>)</figcaption></figure>'
            )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>derain-demo report</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def referenced_files(page: str) -> list[str]:
    """Every src / href / poster of a report page (the test checks each exists)."""
    import re

    return [html.unescape(m) for m in re.findall(r'(?:src|href|poster)="([^"]+)"', page)]
