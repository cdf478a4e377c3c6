"""Continual de-raining on a 4-domain built-in stream: CLGID against sequential fine-tuning.

Stream with the character of the paper's default order 100H -> 100L -> 1400 -> 1200m, plus `real_like` as the
unseen domain. Writes `runs/benchmarks/continual_synthetic.{md,json}` (the command is at the top of the md).
Every stage's wall time is recorded; the generator bank is reused if it already exists under --work.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from derain.data.datasets import dataset_rain
from derain.data.synth import synthesize, synthesize_split
from derain.machine import device_name
from derain.models.registry import ModelSpec, load_model
from derain.outputs import atomic_write_text
from derain.quality.rain_similarity import distances, generator_rain, rain_stats, reference_floor
from derain.quality.reports import dumps, revive_json
from derain.train.continual import ContinualConfig, memory_config, task_dir, task_names, train_stream, uses_generators
from derain.train.generator_bank import GeneratorBank, GeneratorConfig
from derain.train.rain_memory import DRAWS, ParametricRain, judge_memory
from derain.train.reports import write_matrix
from derain.train.testset import CLEAN, crop_scores, mean_ci

STREAM = ("rain100H", "rain100L", "rain1400", "rain1200_medium")
DEFAULT_ORDER = STREAM  # the paper's default order; --order trains another (`set_order`)
UNSEEN = "real_like/test"  # the trainer's own matrix scores this unseen folder; the report scores UNSEEN_DOMAINS
UNSEEN_DOMAINS = ("real_like", "storm")
# benchmark name -> ContinualConfig overrides; `clgid_released` is the released code's detached distillation,
# which gives no gradient and so is also "CLGID without KD"
VARIANTS = {
    "sequential": {"method": "sequential"},
    "clgid": {"method": "clgid"},
    "clgid_released": {"method": "clgid", "kd_mode": "released_code"},
    "clgid_kd0.1": {"method": "clgid", "kd_weight": 0.1},
    "joint": {"method": "joint"},
    "individual": {"method": "individual"},
    # diagnostic: replay rain drawn by the built-in renderer (a perfect generator); no GANs are trained for it
    "clgid_oracle": {"method": "clgid", "replay_source": "renderer"},
    # diagnostics on the first two tasks only (rain100H -> rain100L, where CLGID's current-task deficit is
    # largest): perfect replay without distillation; CLGID with a task trained like a joint task over the
    # datasets it mixes (plateau window and cap x2)
    "clgid_oracle_kd0_2tasks": {
        "method": "clgid", "replay_source": "renderer", "kd_mode": "released_code", "stream": STREAM[:2]},
    "clgid_long_2tasks": {"method": "clgid", "stream": STREAM[:2], "window_scale": 2, "cap_scale": 2},
    # the current task's term 4x heavier (2.0 vs 0.5; replay 0.5, KD 1): is the replay half drowning it?
    "clgid_current4x_2tasks": {"method": "clgid", "stream": STREAM[:2], "current_weight": 2.0},
    # CLGID replaying from the other memories (`train/rain_memory.py`), each with the distillation sweep
    **{f"clgid_{memory}{'' if kd == 1 else f'_kd{kd:g}'}": {"method": "clgid", "memory": memory, "kd_weight": kd}
       for memory in ("parametric", "paired_gan") for kd in (1.0, 0.3, 0.1, 0.0)},
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="runs/continual_synthetic")
    parser.add_argument("--model", default="realtime")
    parser.add_argument("--order", default=",".join(STREAM), help="the stream's order (a permutation of the four "
                        "datasets); another order trains in folders of its own and writes "
                        "continual_synthetic_<order>.{md,json}, e.g. continual_synthetic_1400-1200m-100H-100L.md")
    parser.add_argument(
        "--model-kwargs", type=json.loads, default={}, help="network arguments as JSON, e.g. '{\"width\": 16}'"
    )
    parser.add_argument("--iterations", type=int, default=3000, help="cap on the de-rainer iterations per task")
    parser.add_argument("--plateau-window", type=int, default=400, help="0: a fixed budget of --iterations per task")
    parser.add_argument("--validate-every", type=int, default=100)
    parser.add_argument(
        "--plateau-min-fresh",
        type=int,
        default=1500,
        help="iterations a task from a fresh network trains before the plateau rule may stop it",
    )
    parser.add_argument("--n-val", type=int, default=16, help="validation images per domain (training scenes)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--gan-iterations", type=int, default=1800, help="cap on the VRGNet critic steps per dataset")
    parser.add_argument("--gan-check-every", type=int, default=300, help="similarity check of the generators")
    parser.add_argument("--gan-window", type=int, default=600, help="stop when the similarity has not improved")
    parser.add_argument("--gan-batch-size", type=int, default=8)
    parser.add_argument(
        "--gan-background", default="2x16", help="VRGNet background net STAGESxCHANNELS (released recipe: 6x32)"
    )
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=8, help="test images per domain for the trainer's own matrix")
    parser.add_argument("--methods", default="sequential,clgid,clgid_released", help=f"from {sorted(VARIANTS)}")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/benchmarks/continual_synthetic")
    parser.add_argument(
        "--part",
        default="all",
        help="all | data | generator:NAME | streams | report: one independent part, so that parts can run as "
        "parallel processes (render `data` first); `generator:NAME` learns NAME's memory for every method of "
        "--methods that replays one (processes sharing a bank learn each memory once); `report` scores every "
        "finished network of --methods; `all` runs everything and writes the report",
    )
    parser.add_argument(
        "--results", action="store_true", help="write to benchmarks/results/ (committed), not runs/benchmarks/"
    )
    parser.add_argument("--reuse", help="an earlier run's JSON: methods of --methods with no networks under --work "
                        "take their scores from it (marked `*`)")  # fmt: skip
    return parser


def gan_config(args: argparse.Namespace) -> GeneratorConfig:
    """The VRGNet recipe of every bank entry, from the command line."""
    stages, channels = (int(v) for v in args.gan_background.split("x"))
    return GeneratorConfig(
        iterations=args.gan_iterations, batch_size=args.gan_batch_size, background_stages=stages,
        background_channels=channels, checkpoint_every=args.gan_check_every, device=args.device, cache=True,
        similarity_every=args.gan_check_every, similarity_window=args.gan_window,
    )  # fmt: skip


def stream_config(method: str, args: argparse.Namespace, data: Path, work: Path, gan: GeneratorConfig
                  ) -> ContinualConfig:  # fmt: skip
    """One method's stream over the built-in datasets."""
    variant = dict(VARIANTS[method])
    window, cap = args.plateau_window * variant.pop("window_scale", 1), args.iterations * variant.pop("cap_scale", 1)
    return ContinualConfig(**{
        "data_root": str(data), "stream": STREAM, "unseen": (UNSEEN,),
        "model": ModelSpec(args.model, args.model_kwargs), "out": str(work / run_name(method, args)),
        "bank": str(work / "bank"), "generator": gan, "iterations": cap,
        "warmup_epochs": 0.05 * 250,  # 5% of the task, as 3/250 epochs is too short a warm-up for short tasks
        "batch_size": args.batch_size, "lr": args.lr, "checkpoint_every": 300, "device": args.device, "cache": True,
        "plateau_window": window, "validate_every": args.validate_every,
        "plateau_min_fresh": args.plateau_min_fresh, **variant,
    })  # fmt: skip


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    order = tuple(args.order.split(","))
    if sorted(order) != sorted(STREAM):
        parser.error(f"--order must be a permutation of {','.join(STREAM)}")
    if args.results:
        args.out = str(Path(__file__).parent / "results" / f"continual_synthetic{order_tag(order)}")
    set_order(order)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = Path(args.work)

    methods = args.methods.split(",")
    for method in methods:  # before any data is rendered
        if method not in VARIANTS:
            parser.error(f"unknown method {method!r}; choose from {sorted(VARIANTS)}")
    started = time.perf_counter()
    data = work / "data"
    if not (data / UNSEEN_DOMAINS[-1] / "test").is_dir():
        synthesize(list(STREAM), data, args.n_train, args.n_test, size=(256, 256), seed=0, n_val=args.n_val)
        for name in UNSEEN_DOMAINS:
            synthesize_split(name, "test", args.n_test, data / name / "test", size=(256, 256), seed=1)
    if args.part == "data":
        return

    gan = gan_config(args)
    if args.part.startswith("generator:"):  # the memory of NAME for every method of --methods that replays one
        name = args.part.split(":", 1)[1]
        if name not in STREAM[:-1]:
            parser.error(f"--part generator:NAME takes one of {STREAM[:-1]}")
        replaying = [stream_config(m, args, data, work, gan) for m in methods]
        for memory in dict.fromkeys(c.memory for c in replaying if uses_generators(c)):
            config = next(c for c in replaying if c.memory == memory)
            GeneratorBank(work / "bank", memory).ensure(name, data / name / "train", memory_config(config))
        return
    if args.part not in ("all", "streams", "report"):
        parser.error(f"unknown --part {args.part!r}")
    configs = {method: stream_config(method, args, data, work, gan) for method in methods}
    if args.part != "report":
        for memory in dict.fromkeys(c.memory for c in configs.values() if uses_generators(c)):  # memories first
            config = next(c for c in configs.values() if c.memory == memory)
            for name in STREAM[:-1]:
                GeneratorBank(work / "bank", memory).ensure(name, data / name / "train", memory_config(config))
        for method, config in configs.items():
            share_first_task(config, [c for m, c in configs.items() if m != method] + [
                stream_config(m, args, data, work, gan) for m in VARIANTS if m not in configs])  # fmt: skip
            train_stream(config, resume="auto")
        if args.part == "streams":
            return
    write_report(args, configs, work, time.perf_counter() - started)


def order_tag(order: tuple[str, ...]) -> str:
    """'' for the default order, else the order in short names, e.g. `_1400-1200m-100H-100L` (run folders and
    result files)."""
    if order == DEFAULT_ORDER:
        return ""
    return "_" + "-".join(name.replace("rain", "").replace("_medium", "m") for name in order)


def set_order(order: tuple[str, ...]) -> None:
    """The stream every part of this benchmark trains and reports (the datasets are rendered for all orders alike;
    the 2-task diagnostics keep the default order's first two)."""
    global STREAM
    STREAM = order


def share_first_task(config: ContinualConfig, others: list[ContinualConfig]) -> None:
    """Every method but `joint` trains task 1 identically (a fresh network on the first dataset, the same seed and
    schedule): copy a finished task 1 (and its matrix row) from another method's run instead of training it again."""
    if config.method == "joint" or (task_dir(config, 0) / "final.pt").is_file():
        return
    for other in others:
        source = task_dir(other, 0)
        matrix = Path(other.out) / "matrix.json"
        if (other.method == "joint" or tuple(other.stream[:1]) != tuple(config.stream[:1])
                or not (source / "final.pt").is_file() or not matrix.is_file()):  # fmt: skip
            continue
        first = config.stream[0]
        row = json.loads(matrix.read_text())["rows"].get(first)
        if row is None:
            continue
        shutil.copytree(source, task_dir(config, 0))
        write_matrix(config, {"rows": {first: row}}, Path(config.out))
        logging.info("%s: task 1 copied from %s (identical training)", config.out, other.out)
        return


def run_name(method: str, args: argparse.Namespace) -> str:
    """Folder of one method's stream under --work; network arguments are part of it, so sizes never mix."""
    tag = order_tag(STREAM)
    return f"{method}_{args.model}" + "".join(f"-{k}{v}" for k, v in args.model_kwargs.items()) + tag


def model_args(kwargs: dict) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")" if kwargs else ""


# ----------------------------------------------------------------------------------------------- scoring on v2


def network_scores(config: ContinualConfig, test_key: str = "") -> dict[str, dict]:
    """{task name: per-crop scores of the network after that task (for `individual`: trained on it alone)};
    `test_key`: a fingerprint of the test set and metric (`cached_scores`)."""
    domains: list[str | None] = [*STREAM, *UNSEEN_DOMAINS, None]
    out = {}
    for index, name in enumerate(task_names(config)):
        path = task_dir(config, index) / "final.pt"
        if path.is_file():
            out[name] = cached_scores(path, domains, test_key)
    return out


def cached_scores(path: Path, domains: list[str | None], test_key: str = "") -> dict:
    """`crop_scores` of a checkpoint, kept beside it (`final.scores.json`, valid while the checkpoint's size and
    time, the domains and `test_key` (the rainy input's scores: the test crops and the metric) are those it was
    scored with; an unreadable cache is scored again): a report scores every network of every stream."""
    cache, stat = path.with_suffix(".scores.json"), path.stat()
    key = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "domains": [str(d) for d in domains],
           "test": test_key}  # fmt: skip
    try:
        saved = json.loads(cache.read_text())
        if saved.get("key") == key:
            return saved["scores"]
    except (OSError, ValueError):
        pass
    scores = crop_scores(load_model(path, map_location="cpu"), domains)
    atomic_write_text(cache, json.dumps({"key": key, "scores": scores}))
    return scores


def task_records(config: ContinualConfig) -> dict[str, dict]:
    """Where each task stopped: its `task.json` (iterations, plateau or cap, best validation, seconds)."""
    records = {}
    for index, name in enumerate(task_names(config)):
        path = task_dir(config, index) / "task.json"
        if path.is_file():
            records[name] = json.loads(path.read_text())
    return records


def final_scores(method: str, scores: dict[str, dict]) -> dict[str, list[float]] | None:
    """Per domain, the per-crop PSNR-Y a method ends with: the last task's network; for `individual`, each seen
    domain by its own network and every other column by the mean over the networks' outputs' scores."""
    if not scores:
        return None
    if VARIANTS[base_name(method)]["method"] != "individual":
        last = list(scores)[-1]
        if method != "joint" and last != STREAM[-1]:
            return None  # unfinished stream
        return {d: v["psnr_y"] for d, v in scores[last].items()}
    if len(scores) < len(STREAM):
        return None
    final = {d: scores[d][d]["psnr_y"] for d in STREAM}
    for column in (*UNSEEN_DOMAINS, CLEAN):
        final[column] = list(np.mean([scores[t][column]["psnr_y"] for t in STREAM], axis=0))
    return final


def derived(method: str, scores: dict[str, dict], final: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """Per-crop columns of the summary: average over the seen domains and backward transfer (final minus right
    after its own task, averaged over the first T-1 domains; streams only)."""
    out = {"avg seen": np.mean([final[d] for d in STREAM], axis=0)}
    if VARIANTS[base_name(method)]["method"] in ("sequential", "clgid"):
        out["BWT"] = np.mean([np.subtract(final[d], scores[d][d]["psnr_y"]) for d in STREAM[:-1]], axis=0)
    return out


def gates(results: dict) -> list[dict]:
    """The validity gates: whether this benchmark can compare continual methods at all."""
    rows = []
    inputs = results["rainy input"]
    light = [d for d in STREAM if np.mean(inputs[d]["psnr_y"]) >= 24.0]

    def ran(method: str) -> bool:  # a gate whose methods were not run does not block; an unfinished one does
        return bool(results.get(method, {}).get("scores"))

    def gate(name: str, value: float | None, threshold: float, what: str, method: str) -> None:
        value = None if value is None else float(value)
        passed = value is not None and value >= threshold
        rows.append({"gate": name, "value": value, "threshold": threshold, "passed": passed, "what": what,
                     "ran": ran(method)})  # fmt: skip

    individual = results.get("individual", {}).get("scores", {})
    gains = [np.mean(individual[d][d]["psnr_y"]) - np.mean(inputs[d]["psnr_y"]) for d in STREAM if d in individual]
    gate(
        "individual beats the input",
        min(gains) if len(gains) == len(STREAM) else None,
        2.0,
        "smallest gain (dB) of a network trained on one domain alone, on that domain, over its rainy input",
        "individual",
    )
    first = results.get("sequential", {}).get("scores", {}).get(STREAM[0])
    task1 = min(np.mean(first[d]["psnr_y"]) - np.mean(inputs[d]["psnr_y"]) for d in light) if first else None
    gate(
        "task-1 network not below the input on light rain",
        task1,
        0.0,
        f"smallest gain (dB) of the network after task 1 on the light domains ({', '.join(light)})",
        "sequential",
    )
    sequential = results.get("sequential", {})
    forgetting, forgotten = None, None
    if sequential.get("final") and all(d in sequential.get("scores", {}) for d in STREAM[:-1]):
        scores, final = sequential["scores"], sequential["final"]
        drops = {d: np.mean(scores[d][d]["psnr_y"]) - np.mean(final[d]) for d in STREAM[:-1]}
        forgotten = max(drops, key=drops.get)
        forgetting = drops[forgotten]
    gate(
        "sequential forgets an earlier task",
        forgetting,
        3.0,
        "the largest drop over the earlier tasks, PSNR-Y right after the task minus after the last task (dB), "
        f"sequential fine-tuning{f' (here {forgotten})' if forgotten else ''}",
        "sequential",
    )
    joint = results.get("joint", {}).get("final")
    against = baseline(results, results.get("joint", {}))  # a reused joint stream against its own run's
    margin = None
    if joint and against.get("final"):
        margin = float(np.mean([np.mean(joint[d]) - np.mean(against["final"][d]) for d in STREAM]))
    gate(
        "joint >= sequential (seen average)",
        margin,
        0.0,
        "joint minus sequential on the average over seen domains (dB)",
        "joint",
    )
    return rows


def write_report(args: argparse.Namespace, configs: dict[str, ContinualConfig], work: Path, wall: float) -> None:
    """Score every finished network on the v2 test set; `<out>.md`, `<out>.json` and the generator figure."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    inputs = crop_scores(None, [*STREAM, *UNSEEN_DOMAINS])
    test_key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    results: dict = {"rainy input": inputs}
    earlier = reused_results(args.reuse) if args.reuse else {}
    for key, source, depth in ((EARLIER, "sequential", 1), (EARLIEST, EARLIER, 2)):
        if earlier.get(source) and any(earlier.get(m, {}).get("reused") == depth - 1 for m in configs
                                       if m != "sequential"):  # fmt: skip
            results[key] = {**earlier[source], "reused": depth}
            results[key]["derived"] = derived("sequential", earlier[source]["scores"], earlier[source]["final"])
    for method, config in configs.items():
        scores = network_scores(config, test_key)
        final = final_scores(method, scores)
        if not scores and method in earlier:  # not trained here: the earlier run's scores of the same recipe
            results[method] = {**earlier[method], "reused": earlier[method]["reused"] + 1}
            final = results[method]["final"]
            results[method]["derived"] = derived(method, results[method]["scores"], final) if final else None
            continue
        results[method] = {
            "scores": scores,
            "final": final,
            "tasks": task_records(config),
            "derived": derived(method, scores, final) if final else None,
            "task2_terms": _loss_terms(task_dir(config, 1) / "log.csv"),
        }
    generators = generator_report(work, out)
    if not generators and args.reuse:  # the VRGNet bank was not trained here: its earlier figures, said so
        generators = {name: {**entry, "reused": True} for name, entry in
                      revive_json(json.loads(Path(args.reuse).read_text())).get("generators", {}).items()}  # fmt: skip
    memories = memory_report(work)
    checks = gates(results)
    lines = [*header_lines(args), *gate_lines(checks)]
    if all(row["passed"] or not row["ran"] for row in checks):  # a gate whose methods were not run does not block
        lines += [*table_lines_v2(results), *diagnosis_lines(results, configs), *matrix_lines_v2(results)]
    else:
        lines += [
            "**A gate failed: no method comparison is drawn from this run.** The per-task scores below say "
            "where it stands.",
            "",
            *matrix_lines_v2(results),
        ]
    lines += [*stop_lines(results), *generator_lines(generators, out), *memory_lines(memories),
              f"Wall time of this invocation: {wall:.0f} s."]  # fmt: skip
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    report = {
        "command": command_line(args),
        "device": device_name(),
        "gates": checks,
        "generators": generators,
        "memories": memories,
        "results": {
            m: {k: v for k, v in r.items() if k != "derived"} if isinstance(r, dict) and "scores" in r else r
            for m, r in results.items()
        },
    }
    out.with_suffix(".json").write_text(dumps(report))
    print("\n".join(lines))


def command_line(args: argparse.Namespace) -> str:
    return (
        f"python benchmarks/continual_synthetic.py --model {args.model} "
        + (f"--model-kwargs '{json.dumps(args.model_kwargs)}' " if args.model_kwargs else "")
        + f"--iterations {args.iterations} --plateau-window {args.plateau_window} --plateau-min-fresh "
        f"{args.plateau_min_fresh} --validate-every "
        f"{args.validate_every} --batch-size {args.batch_size} --lr {args.lr} --gan-iterations {args.gan_iterations} "
        f"--gan-check-every {args.gan_check_every} --gan-window {args.gan_window} --gan-background "
        f"{args.gan_background} --n-train {args.n_train} --n-val {args.n_val} --methods {args.methods} "
        + (f"--order {args.order} " if STREAM != DEFAULT_ORDER else "") +
        f"--work {args.work}" + (f" --reuse {args.reuse}" if args.reuse else "")
        + (" --results" if args.results else f" --out {args.out}")
    )


def header_lines(args: argparse.Namespace) -> list[str]:
    return [
        f"# Continual de-raining on data v2: {' -> '.join(STREAM)}",
        "",
        f"Command: `{command_line(args)}` (parts may run as separate processes: `--part data`, "
        "`--part generator:NAME`, `--part streams --methods M`, then `--part report`).",
        "",
        f"Network `{args.model}`{model_args(args.model_kwargs)}; batch {args.batch_size} of 64x64 patches; Adam "
        f"{args.lr}, warm-up, then each task trains to a plateau of its validation PSNR ({args.n_val} images of "
        f"training scenes with the task's rain, checked every {args.validate_every} iterations; no gain of 0.05 dB "
        f"within {args.plateau_window} iterations halves the rate once, the next plateau stops the task, but a "
        f"task from a fresh network trains at least {args.plateau_min_fresh} iterations first (a network still at "
        "the identity on light rain is not at a plateau; joint training scales window and minimum by its 4 "
        f"datasets); cap {args.iterations} iterations; the task's result is its best validation). Training data: "
        f"{args.n_train} images of 256x256 per domain (data v2 training scenes). VRGNet generators: background net "
        f"{args.gan_background.replace('x', ' stages x ')} ch, batch {args.gan_batch_size}, trained until their "
        f"similarity to the dataset's rain stops improving (checked every {args.gan_check_every} steps, window "
        f"{args.gan_window}, cap {args.gan_iterations}). Device: {device_name()}.",
        "",
        "Scores: PSNR-Y (MATLAB convention) on the data v2 test set (126 80x80 crops of four test-only photos, the "
        "same crops in every domain), [95 % bootstrap CI over the crops]; unseen domains `real_like` and `storm`; "
        "`clean input`: the network fed the clean crops (100 = returned unchanged). `clgid` is the paper's loss "
        "(`kd_mode: paper`, KD weight 1); `clgid_released` detaches the KD term as the released code does, which "
        "gives the same gradients as KD weight 0 (so it is the sweep's 0 point); `clgid_kd0.1` is KD weight 0.1; "
        "`clgid_oracle` replays the renderer's own rain of the earlier domains (a perfect generator). Task 1 is "
        "trained once and shared by every method but `joint` (the same network, seed and schedule). The `_2tasks` "
        "streams stop after task 2 (diagnostics: `clgid_oracle_kd0_2tasks` perfect replay without distillation, "
        "`clgid_long_2tasks` window and cap x2, `clgid_current4x_2tasks` the current task's term 4x heavier). "
        "`clgid_parametric[_kdW]`: CLGID replaying from the parametric rain memory (the renderer's parameters "
        "fitted to each dataset's rain layers, `train/rain_memory.py`; replayed as fitted, on a canvas twice the "
        "patch) with KD weight W (1 when not given); `clgid_paired_gan[_kdW]` likewise from the paired rain GAN.",
        "",
        *([f"`*`: not trained by this invocation: the scores of the same recipe's networks from `{args.reuse}` "
           "(data v2, seeds, schedule and test crops are the same, but two trainings of one recipe are not the same "
           "networks: the training loop's random stream changed since, so the sequential stream trained again "
           "here is another draw of it). Rows marked `*` are compared with their own run's sequential stream, "
           "`sequential *`; rows marked `**` come from the run that one reused in turn, and are compared with its "
           "sequential stream, `sequential **`; the others with this run's."] if args.reuse else []),
        "",
    ]


def gate_lines(checks: list[dict]) -> list[str]:
    lines = ["## Validity gates", "", "| gate | value | needs | passed | what |", "|---|---|---|---|---|"]
    for row in checks:
        if row["value"] is None:
            value, passed = ("unfinished", "**no**") if row.get("ran") else ("not run", "-")
        else:
            value, passed = f"{row['value']:+.2f}", "yes" if row["passed"] else "**no**"
        lines.append(
            f"| {row['gate']} | {value} | >= {row['threshold']:g} | {passed} "
            f"| {row['what']} |"
        )
    return [*lines, ""]


def table_lines_v2(results: dict) -> list[str]:
    """After the last task: every seen domain, the average and BWT with CIs, the unseen domains, the clean column,
    and each method's difference from sequential fine-tuning (paired per crop)."""
    columns = [*STREAM, "avg seen", "BWT", *UNSEEN_DOMAINS, CLEAN]
    lines = [
        "## After the last task (PSNR-Y, dB)",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    inputs = results["rainy input"]
    row = [mean_ci(inputs[d]["psnr_y"]) for d in STREAM]
    row += [mean_ci(np.mean([inputs[d]["psnr_y"] for d in STREAM], axis=0)), ""]
    row += [mean_ci(inputs[d]["psnr_y"]) for d in UNSEEN_DOMAINS] + ["100 (by definition)"]
    lines.append("| rainy input | " + " | ".join(row) + " |")
    for method, result in results.items():
        if method == "rainy input" or not result["final"]:
            continue
        final, extra = result["final"], result["derived"]
        cells = [mean_ci(final[d]) for d in STREAM] + [mean_ci(extra["avg seen"])]
        cells += [mean_ci(extra["BWT"]) if "BWT" in extra else "-"]
        cells += [mean_ci(final[d]) for d in (*UNSEEN_DOMAINS, CLEAN)]
        lines.append(f"| {label(method, result)} | " + " | ".join(cells) + " |")
    if results.get("sequential", {}).get("final"):
        lines += [
            "",
            "Difference from sequential fine-tuning, paired per crop (dB, [95 % CI]; rows marked `*` against the "
            "earlier run's sequential stream, `sequential *`, and `**` against `sequential **`):",
            "",
            "| method | avg seen | BWT | " + " | ".join(UNSEEN_DOMAINS) + " |",
            "|---" * (len(UNSEEN_DOMAINS) + 3) + "|",
        ]
        for method, result in results.items():
            base = baseline(results, result)
            if method in ("rainy input", "sequential", EARLIER, EARLIEST) or not result["final"] or not base.get(
                    "final"):
                continue
            cells = [mean_ci(result["derived"]["avg seen"] - base["derived"]["avg seen"])]
            cells += [mean_ci(result["derived"]["BWT"] - base["derived"]["BWT"]) if "BWT" in result["derived"] else "-"]
            cells += [mean_ci(np.subtract(result["final"][d], base["final"][d])) for d in UNSEEN_DOMAINS]
            lines.append(f"| {label(method, result)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


EARLIER = "sequential *"  # the earlier run's sequential stream: the baseline of its reused rows
EARLIEST = "sequential **"  # the sequential stream of the run that the earlier run itself reused rows from


def base_name(method: str) -> str:
    return method.split(" ")[0]  # "sequential **" -> "sequential"


def baseline(results: dict, result: dict) -> dict:
    """What a row's paired differences are taken against: this invocation's sequential stream, or for rows reused
    from an earlier run, that run's own (two trainings of one recipe are not the same networks); `reused` is 1 for
    a row of the --reuse run, 2 for a row that run had itself reused."""
    return results.get({0: "sequential", 1: EARLIER}.get(int(result.get("reused") or 0), EARLIEST), {})


def label(method: str, result: dict) -> str:
    """A method's name in the tables; `*`: its networks were not trained by this invocation (--reuse)."""
    if method.endswith("*") or not result.get("reused"):
        return method
    return f"{method} {'*' * int(result['reused'])}"


def reused_results(path: str) -> dict[str, dict]:
    """Per method, the scores, final columns, task records and task-2 loss terms of an earlier run's JSON (loss
    terms from its Markdown's task-2 table where the JSON predates them)."""
    from derain.quality.reports import revive_json

    report = revive_json(json.loads(Path(path).read_text()))
    # `reused`: 0 for the run's own rows, 1 for rows it reused itself (deeper rows are not carried: their baseline
    # stream is not in the JSON)
    found = {m: {**{k: r.get(k) for k in ("scores", "final", "tasks", "task2_terms")},
                 "reused": int(r.get("reused") or 0)}
             for m, r in report.get("results", {}).items()
             if isinstance(r, dict) and r.get("scores") and int(r.get("reused") or 0) <= 1}  # fmt: skip
    markdown = Path(path).with_suffix(".md")
    if markdown.is_file():
        for line in markdown.read_text().splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) == 9 and cells[0] in found and not found[cells[0]].get("task2_terms"):
                terms = dict(zip(("loss_real", "loss_replay", "kd"), cells[6:9], strict=True))
                found[cells[0]]["task2_terms"] = {k: v for k, v in terms.items() if v not in ("", "-")}
    return found


def diagnosis_lines(results: dict, configs: dict[str, ContinualConfig]) -> list[str]:
    """Why CLGID trails: after task 2 (the first replayed task), each stream's network on the two domains it has
    seen, paired against sequential fine-tuning, where task 2 stopped, and its loss terms at the end of task 2."""
    first, second = STREAM[:2]
    lines = [
        f"## Why CLGID trails: after task 2 ({first} -> {second})",
        "",
        f"PSNR-Y on the v2 test crops after task 2 [95 % CI]; `vs sequential`: paired per crop. Training terms: means "
        f"over the last 500 iterations of task 2 (`loss_real` on {second}, `loss_replay` on replayed {first} rain, "
        "`kd` the distillation L1, logged even where it carries no gradient).",
        "",
        f"| stream | {first} | {second} | {second} vs sequential | task 2 stopped | best validation | loss_real | "
        "loss_replay | kd |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    inputs = results["rainy input"]
    lines.append(f"| rainy input | {mean_ci(inputs[first]['psnr_y'])} | {mean_ci(inputs[second]['psnr_y'])} "
                 "| | | | | | |")  # fmt: skip
    for method, result in results.items():
        if method == "rainy input" or VARIANTS[base_name(method)]["method"] not in ("sequential", "clgid"):
            continue
        scores = result["scores"].get(second)
        if scores is None:
            continue
        base = baseline(results, result).get("scores", {}).get(second)
        versus = mean_ci(np.subtract(scores[second]["psnr_y"], base[second]["psnr_y"])) if base else ""
        record = result["tasks"].get(second, {})
        stop = f"{record.get('iterations', '?')} of {record.get('cap', '?')}, {record.get('stopped', '?')}"
        best = f"{record['best_val_psnr']:.2f}" if "best_val_psnr" in record else "-"
        terms = result.get("task2_terms") or _loss_terms(task_dir(configs[method], 1) / "log.csv")
        lines.append(
            f"| {label(method, result)} | {mean_ci(scores[first]['psnr_y'])} | {mean_ci(scores[second]['psnr_y'])} | "
            f"{versus} | "
            f"{stop} | {best} | " + " | ".join(terms.get(k, "-") for k in ("loss_real", "loss_replay", "kd")) + " |"
        )
    return [*lines, ""]


def _loss_terms(log: Path, last: int = 500) -> dict[str, str]:
    """Mean of each logged loss term over a task's last `last` iterations (the plain `loss` as `loss_real` for a
    stream without replay)."""
    if not log.is_file():
        return {}
    with log.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return {}
    end = int(rows[-1]["step"])
    tail = [row for row in rows if int(row["step"]) > end - last]
    means = {}
    for key in ("loss_real", "loss_replay", "kd"):
        source = key if key in tail[0] else ("loss" if key == "loss_real" else None)
        if source is not None:
            means[key] = f"{np.mean([float(row[source]) for row in tail]):.4f}"
    return means


def matrix_lines_v2(results: dict) -> list[str]:
    """Per method, the mean PSNR-Y of the network after each task (rows) on every domain (columns)."""
    columns = [*STREAM, *UNSEEN_DOMAINS, CLEAN]
    lines = [
        "## Accuracy matrices (mean PSNR-Y on the v2 test set; rows: after task)",
        "",
        "| method | after | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 2) + "|",
    ]
    for method, result in results.items():
        if method == "rainy input":
            continue
        for task, scores in result["scores"].items():
            label = f"alone on {task}" if method == "individual" else task
            lines.append(
                f"| {method} | {label} | " + " | ".join(f"{np.mean(scores[c]['psnr_y']):.2f}" for c in columns) + " |"
            )
    return [*lines, ""]


def stop_lines(results: dict) -> list[str]:
    lines = [
        "## Where each task stopped",
        "",
        "| method | task | iterations | stopped | best validation (dB) at | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for method, result in results.items():
        for task, record in (result.get("tasks") or {}).items() if method != "rainy input" else ():
            best = f"{record['best_val_psnr']:.2f} at {record['best_step']}" if "best_val_psnr" in record else "-"
            lines.append(
                f"| {method} | {task} | {record['iterations']} of {record.get('cap', record['iterations'])} "
                f"| {record.get('stopped', 'budget')} | {best} | {record['seconds_this_run']:.0f} |"
            )
    return [*lines, ""]


# ------------------------------------------------------------------------------------------------- generators


def generator_report(work: Path, out: Path) -> dict:
    """Per bank entry: its similarity history and cost, its distance to the dataset's rain against the reference's
    own noise floor; and a figure of its samples beside the dataset's rain layers."""
    report, strips = {}, []
    for name in STREAM[:-1]:
        entry = work / "bank" / name
        if not (entry / "generator.pt").is_file():
            continue
        summary = json.loads((entry / "summary.json").read_text())
        train = work / "data" / name / "train"
        reference = dataset_rain(train, 256, 64, seed=0)
        generator = load_model(entry / "generator.pt")
        samples = generator_rain(generator, 256, seed=1)
        report[name] = {
            "kept": distances(rain_stats(samples), rain_stats(reference)),
            "floor": reference_floor(*(dataset_rain(train, 256, 64, seed=seed) for seed in (1, 2))),
            "steps": summary["critic_steps"],
            "seconds": summary.get("seconds", summary["seconds_this_run"]),
            "stopped": summary.get("stopped", "budget"),
            "history": summary.get("similarity", []),
        }
        strips.append((name, samples[:8], reference[:8]))
    if strips:
        cv2.imwrite(str(out.parent / f"{out.name}_generators.png"), generator_figure(strips))
    return report


def generator_figure(strips: list[tuple[str, torch.Tensor, torch.Tensor]]) -> np.ndarray:
    """Per dataset two rows of 64x64 grey layers, 2x zoom: the generator's samples, then the dataset's rain."""
    rows = []
    for name, samples, reference in strips:
        for label, layers in ((f"{name}: generator", samples), (f"{name}: dataset rain", reference)):
            strip = torch.cat(list(layers[:, 0]), dim=1).clamp(0, 1).numpy()
            strip = cv2.resize(
                (strip * 255).round().astype(np.uint8), None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST
            )
            band = np.full((24, strip.shape[1]), 255, np.uint8)
            cv2.putText(band, label, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
            rows += [band, strip]
    return np.vstack(rows)


def generator_lines(report: dict, out: Path) -> list[str]:
    if not report:
        return []
    reused = any(entry.get("reused") for entry in report.values())
    lines = [
        "## VRGNet generators: how close their rain comes to the dataset's",
        "",
        "Distances in [0, 1] (0 = the same statistics) between 256 generator samples and 256 rain layers "
        "(rainy - clean) of the dataset's training pairs, grey as replayed: coverage (share of rain pixels, "
        "|log ratio| / log 4), intensity histogram and orientation spectrum (total variation), and their mean; "
        "`floor`: two samples of crops of the dataset's own rain (the earlier floor: they share each image's draws, "
        "so a perfect generator scores above it; the parametric table below uses the floor of `judges`).",
        "",
        *(["The generators were not trained by this invocation: the earlier run's figures, measured then with the "
           "three-term distance (before the scale term); the parametric memories below use all four terms.", ""]
          if reused else []),
        "| dataset | critic steps | stopped | seconds | coverage | intensity | orientation | distance | floor | "
        "distance at each check |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report.items():
        kept, history = entry["kept"], " ".join(f"{h['step']}:{h['distance']:.3f}" for h in entry["history"])
        lines.append(
            f"| {name} | {entry['steps']} | {entry['stopped']} | {entry['seconds']:.0f} | "
            f"{kept['coverage']:.3f} | {kept['intensity']:.3f} | {kept['orientation']:.3f} | "
            f"**{kept['distance']:.3f}** | {entry['floor']['distance']:.3f} | {history} |"
        )
    return [*lines, "", f"![generator samples above the dataset's rain layers]({out.name}_generators.png)", ""]


def memory_report(work: Path) -> dict:
    """Per parametric memory in the bank: its fitted parameters, its distance and the dataset's floor (both means
    over `judge_memory`'s splits: the memory's rain drawn with seeds no fit uses), seconds and bytes
    (rain_memory.md judges every memory in full)."""
    report = {}
    for path in sorted((work / "bank" / "parametric").glob("*/rain.json")):
        if path.parent.name not in STREAM[:-1]:  # replayed memories only (a shared bank holds others)
            continue
        saved = json.loads(path.read_text())
        train = Path(saved.get("train_dir", work / "data" / path.parent.name / "train"))
        report[path.parent.name] = {**judge_memory(ParametricRain.load(path), train), "seconds": saved["seconds"],
                                    "bytes": path.stat().st_size, "fit": saved["parametric_rain"]}  # fmt: skip
    return report


def memory_lines(report: dict) -> list[str]:
    if not report:
        return []
    lines = ["## Parametric memories replayed by `clgid_parametric*`", "",
             "Distance (`quality/rain_similarity.py`, four terms) between 256 layers of the memory's rain (draws no "
             "fit used) and of the dataset's rain on crops of half its images (`train.rain_memory.judges`); floor: "
             f"the other half's distance to the same reference; both means over {DRAWS} splits. "
             "Replay fidelity and the figure: [rain_memory.md](rain_memory.md).", "",
             "| dataset | coverage | intensity | orientation | scale | distance | floor | x floor | seconds | bytes |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, entry in report.items():
        d, floor = entry["distance"], entry["floor"]["distance"]
        lines.append(f"| {name} | {d['coverage']:.3f} | {d['intensity']:.3f} | {d['orientation']:.3f} | "
                     f"{d.get('scale', float('nan')):.3f} | **{d['distance']:.3f}** | {floor:.3f} | "
                     f"{d['distance'] / floor:.1f} | {entry['seconds']:.0f} | {entry['bytes']} |")  # fmt: skip
    return [*lines, ""]


if __name__ == "__main__":
    main()
