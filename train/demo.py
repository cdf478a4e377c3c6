"""`derain-demo`: the shipped de-rainer on every built-in rain domain, and (optionally) a training demo.

1. scores the de-rainer (default: the shipped one; `--weights` for another) on the data v2 test set: every seen
   and unseen rain domain and the clean input, rainy input vs output, PSNR-Y/SSIM-Y with 95 % CIs;
2. writes an image grid (rainy | de-rained | clean per domain) to look at;
3. with `--train-iterations N`: trains the realtime network from scratch for N iterations with the shipped recipe
   (data v2 on the fly) and scores it the same way, reported apart: a short training run is a demo of the
   recipe, not the shipped result;
4. writes `<out>/report.md` and prints it.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from pathlib import Path

from derain.builtin import describe_builtin, is_builtin, resolve_weights
from derain.cli import Problems, number_problems, run_main, setup_logging
from derain.data.rain import RAIN_DOMAINS, get_domain
from derain.models import load_model
from derain.models.device import resolve_device
from derain.outputs import atomic_write_text, output_problems
from derain.quality.testset import CLEAN, image_grid, model_runner, score_domains, table_lines
from derain.train.shipped import ShippedConfig, default_domains, train_shipped

log = logging.getLogger("derain.demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="derain-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="derain_out", help="output folder (report, images, runs)")
    parser.add_argument("--weights", default="builtin", help="checkpoint to show (default: the shipped de-rainer)")
    parser.add_argument("--train-iterations", type=int, default=0, help="also train the realtime network this "
                        "many iterations with the shipped recipe and report it apart (0: no training)")  # fmt: skip
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out folder (its report, "
                        "images and training run are replaced)")  # fmt: skip
    return parser


def section(title: str, model, device, domains: list[str], seen: list[str], out: Path, stem: str) -> list[str]:  # noqa: ANN001
    started = time.perf_counter()
    run = model_runner(model.to(device), device)
    scores = score_domains(run, domains)
    image_grid(run, [*domains, CLEAN], out / f"{stem}.png")
    log.info("%s scored in %.0f s", title, time.perf_counter() - started)
    return [f"## {title}", "", *table_lines(scores, seen), "", f"![rainy | de-rained | clean]({stem}.png)", ""]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    return run_main("derain-demo", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    started = time.perf_counter()
    problems = Problems()
    problems.extend(number_problems({"--train-iterations": args.train_iterations}, minimum=0))
    weights = problems.attempt(lambda: resolve_weights(args.weights))
    model = problems.attempt(lambda: load_model(weights)) if weights else None
    device = problems.attempt(lambda: resolve_device(args.device))
    problems.extend(output_problems(out, [weights], overwrite=args.overwrite))
    problems.raise_if_any()
    out.mkdir(parents=True, exist_ok=True)
    name = describe_builtin() if is_builtin(args.weights) else f"`{weights}`"
    log.info("showing %s", name)
    domains = [d for d in RAIN_DOMAINS if get_domain(d).role != "training"]
    seen = list(default_domains()) if is_builtin(args.weights) else None
    lines = [
        "# derain-demo",
        "",
        "Test set: 126 non-overlapping 80x80 crops of four scikit-image photos that no training image comes from, "
        "the same crops for every rain domain; PSNR-Y / SSIM-Y with [95 % bootstrap CI]; gain = output - input.",
        "",
    ]
    lines += section(f"De-rainer: {name}", model, device, domains, seen, out, "shipped")
    if args.train_iterations > 0:
        iterations = args.train_iterations
        config = dataclasses.replace(ShippedConfig(), out=str(out / "run"), max_iterations=iterations,
                                     val_every=max(1, iterations // 4), device=args.device, pool=200)  # fmt: skip
        summary = train_shipped(config, resume="auto")
        trained = load_model(Path(config.out) / "best.pt")
        title = (f"Training demo: realtime network, {summary['iterations']} iterations from scratch "
                 f"({summary['seconds']:.0f} s; a short run, not the shipped result)")  # fmt: skip
        lines += section(title, trained, device, domains, list(summary["domains"]), out, "trained")
    lines.append(f"Total {time.perf_counter() - started:.0f} s on {device}.")
    report = "\n".join(lines) + "\n"
    atomic_write_text(out / "report.md", report)
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
