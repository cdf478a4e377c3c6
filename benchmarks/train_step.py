"""Training-step cost on one device: what a CLGID run spends per step, and where the time goes.

Times (median of `--repeat` steps after `--warmup`, synchronized):
- a VRGNet step of the released recipe (background net 6 x 32, batch 18, 64x64; critic every step with the
  gradient penalty, encoder + generator + background every 5th step), averaged over critic steps;
- a plain de-rainer step (batch 16, 64x64, Charbonnier + edge over every stage) under AMP x channels_last x
  cudnn.benchmark;
- a CLGID replay step (student on rainy + replayed, frozen teacher on replayed, L1 distillation).
On CUDA it also profiles three plain steps: device time against host time and the number of kernel launches,
which says whether the step is bound by the GPU or by the Python/launch side.

Every step is the training code's own (`vrgnet_step`, `task_loss`: the restoration loss or `replay_loss`), on
random tensors.
Writes `runs/benchmarks/train_step_<device>.{json,md}` (`--results`: benchmarks/results/). Run on the GPU machine:
`python benchmarks/train_step.py --results`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from derain.models import build_model
from derain.models.registry import ModelSpec
from derain.models.vrgnet import VRGNet
from derain.timing import median_seconds
from derain.train.continual import ContinualConfig, task_loss
from derain.train.generator_bank import GeneratorConfig, vrgnet_optimizers, vrgnet_step


def median_time(step, device: torch.device, warmup: int, repeat: int) -> float:
    return median_seconds(step, repeat, warmup, cuda=device.type == "cuda")


def gan_step(device: torch.device, batch: int = 18):
    """The training code's own VRGNet step (`vrgnet_step`), released recipe, a generator step every 5th."""
    config = GeneratorConfig(batch_size=batch, background_stages=6, background_channels=32)
    net = VRGNet(config.nz, config.size, config.background_stages, config.background_channels).to(device)
    optimizers = vrgnet_optimizers(net, config)
    rainy, clean = torch.rand(2, batch, 3, 64, 64, device=device)
    count = [0]

    def step() -> None:
        vrgnet_step(net, optimizers, rainy, clean, count[0] % config.critic_steps == 0, config)
        count[0] += 1

    return step


def derain_step(name: str, device: torch.device, amp: bool, channels_last: bool, replay: bool, batch: int = 16):
    """A de-rainer step with the training code's loss (`task_loss`): plain (task 1) or CLGID's replay (task n >= 2)."""
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(name).to(device).to(memory_format=memory)
    teacher = build_model(name).to(device).to(memory_format=memory).eval()
    generators = [build_model("vrgnet_generator").to(device).eval()]
    config = ContinualConfig(data_root="", stream=("a", "b"), model=ModelSpec(name))
    optimizer = torch.optim.Adam(model.parameters(), config.lr)
    rainy = torch.rand(batch, 3, 64, 64, device=device).contiguous(memory_format=memory)
    clean = torch.rand_like(rainy)
    rng = torch.Generator().manual_seed(0)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = task_loss(model, teacher if replay else None, generators, rainy, clean, rng, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def profile_steps(step, steps: int = 3) -> dict:
    from torch.profiler import ProfilerActivity, profile

    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    events = prof.key_averages()
    device_us = sum(e.self_device_time_total for e in events)
    host_us = sum(e.self_cpu_time_total for e in events)
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx"))
    return {
        "device_ms_per_step": device_us / 1000 / steps,
        "host_ms_per_step": host_us / 1000 / steps,
        "kernel_launches_per_step": launches / steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="mprnet")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", default="runs/benchmarks")
    parser.add_argument(
        "--results", action="store_true", help="write to benchmarks/results/ (committed), not runs/benchmarks/"
    )
    args = parser.parse_args()
    if args.results:
        args.out = str(Path(__file__).parent / "results")
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    rows = {"vrgnet critic step (released recipe, batch 18)": median_time(gan_step(device), device, 10, 50)}
    for amp in (True, False):
        for channels_last in (True, False):
            for benchmark in (False, True) if cuda else (False,):
                torch.backends.cudnn.benchmark = benchmark
                step = derain_step(args.model, device, amp, channels_last, replay=False)
                key = f"{args.model} plain step amp={amp} channels_last={channels_last} cudnn.benchmark={benchmark}"
                rows[key] = median_time(step, device, args.warmup, args.repeat)
    torch.backends.cudnn.benchmark = False
    step = derain_step(args.model, device, cuda, cuda, replay=True)
    rows[f"{args.model} CLGID replay step amp={cuda} channels_last={cuda}"] = median_time(
        step, device, args.warmup, args.repeat
    )
    report = {"device": name, "torch": torch.__version__, "median_s": rows}
    if cuda:
        report["profile_plain_amp_channels_last"] = profile_steps(derain_step(args.model, device, True, True, False))
    tag = "cuda" if cuda else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"train_step_{tag}.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# Training-step cost on {name}",
        "",
        f"Command: `python benchmarks/train_step.py --model {args.model} --device {args.device}` "
        f"(torch {torch.__version__})",
        "",
        "| step | median ms |",
        "|---|---|",
        *(f"| {key} | {seconds * 1000:.1f} |" for key, seconds in rows.items()),
    ]
    if cuda:
        p = report["profile_plain_amp_channels_last"]
        lines += [
            "",
            f"Profile of the plain step (AMP, channels_last): device busy {p['device_ms_per_step']:.1f} ms, host "
            f"{p['host_ms_per_step']:.1f} ms, {p['kernel_launches_per_step']:.0f} kernel launches per step.",
        ]
    (out / f"train_step_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
