"""Training-step cost on one device: what a CLGID run spends per step, and where the time goes.

Times (median of `--repeat` steps after `--warmup`, synchronized):
- a VRGNet step of the released recipe (background net 6 x 32, batch 18, 64x64; critic every step with the
  gradient penalty, encoder + generator + background every 5th step), averaged over critic steps;
- a plain de-rainer step (batch 16, 64x64, Charbonnier + edge over every stage) under AMP x channels_last x
  cudnn.benchmark;
- a CLGID replay step (student on rainy + replayed, frozen teacher on replayed, L1 distillation).
On CUDA it also profiles three plain steps: device time against host time and the number of kernel launches,
which says whether the step is bound by the GPU or by the Python/launch side.

Writes `benchmarks/results/train_step_<device>.{json,md}`. Run on the GPU machine: `python benchmarks/train_step.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from derain.models import build_model, stage_outputs
from derain.models.vrgnet import VRGNet, grey_rain
from derain.train.continual import distillation
from derain.train.losses import restoration_loss
from derain.train.memorize import gradient_penalty, kl_background, kl_latent


def median_time(step, device: torch.device, warmup: int, repeat: int) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def gan_step(device: torch.device, batch: int = 18):
    net = VRGNet(128, 64, 6, 32).to(device)
    critic_opt = torch.optim.Adam(net.critic.parameters(), 4e-4)
    rest = [*net.encoder.parameters(), *net.generator.parameters(), *net.background.parameters()]
    other_opt = torch.optim.Adam(rest, 1e-4)
    rainy, clean = torch.rand(2, batch, 3, 64, 64, device=device)
    count = [0]

    def step() -> None:
        generator_step = count[0] % 5 == 0
        count[0] += 1
        with torch.set_grad_enabled(generator_step):
            parts = net.synthesize(rainy)
        fake = parts["fake"].detach()
        loss = -net.critic(rainy).mean() + net.critic(fake).mean() + 10 * gradient_penalty(net.critic, rainy, fake)
        critic_opt.zero_grad()
        loss.backward()
        critic_opt.step()
        if generator_step:
            loss = (
                -net.critic(parts["fake"]).mean()
                + kl_latent(parts["mu_z"], parts["logvar_z"])
                + kl_background(parts["mu_b"], parts["logvar_b"], clean, 1e-6)
            )
            other_opt.zero_grad()
            loss.backward()
            other_opt.step()

    return step


def derain_step(name: str, device: torch.device, amp: bool, channels_last: bool, replay: bool, batch: int = 16):
    model = build_model(name).to(device)
    teacher = build_model(name).to(device).eval()
    generator = build_model("vrgnet_generator").to(device).eval()
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model, teacher = model.to(memory_format=memory), teacher.to(memory_format=memory)
    optimizer = torch.optim.Adam(model.parameters(), 2e-4)
    rainy = torch.rand(batch, 3, 64, 64, device=device).contiguous(memory_format=memory)
    clean = torch.rand_like(rainy)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            if replay:
                with torch.no_grad():
                    replayed = (clean + grey_rain(generator(torch.randn(batch, 128, device=device)))).clamp(0, 1)
                outputs = stage_outputs(model(torch.cat((rainy, replayed))))
                with torch.no_grad():
                    taught = stage_outputs(teacher(replayed))
                loss = (
                    0.5 * restoration_loss([o[:batch].float() for o in outputs], clean)
                    + 0.5 * restoration_loss([o[batch:].float() for o in outputs], clean)
                    + distillation([o[batch:].float() for o in outputs], [t.float() for t in taught])
                )
            else:
                loss = restoration_loss([o.float() for o in stage_outputs(model(rainy))], clean)
        optimizer.zero_grad()
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
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
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
