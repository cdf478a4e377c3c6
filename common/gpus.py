"""The one table of GPU targets (torch-free): compute capabilities, what each builder supports, the FP8 rule, names.

Used by export (targets, FP8 check, the TensorRT-RTX target names), the runtime (`can_run`, engine cards) and
cpp_ext (the `-gencode` list). Facts: TensorRT-RTX 1.x targets Turing..Blackwell consumer/workstation parts and
refuses Hopper (sm_90, measured: the H100/H200 device machines); Jetson Orin (sm_87) has classic TensorRT only;
FP8 tensor cores start with Ada (sm_89); ahead-of-time TensorRT-RTX engines without explicit targets cover
80/86/89/120 (Turing must be asked for) [shared notes, DEPLOY.md].
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    capability: int  # major * 10 + minor
    architecture: str
    examples: str
    tensorrt_rtx: bool  # TensorRT-RTX builds for it (ahead of time, from any machine)
    jetson: bool = False  # an embedded part (classic TensorRT of JetPack)

    @property
    def fp8(self) -> bool:
        return self.capability >= FP8_MIN_TARGET

    @property
    def sm(self) -> str:
        return f"SM{self.capability}"


FP8_MIN_TARGET = 89
TARGETS = {
    t.capability: t
    for t in (
        Target(75, "Turing", "RTX 20xx, T4", tensorrt_rtx=True),
        Target(80, "Ampere", "A100, A30", tensorrt_rtx=True),
        Target(86, "Ampere", "RTX 30xx, A10, RTX A-series", tensorrt_rtx=True),
        Target(87, "Ampere (Orin)", "Jetson AGX/NX/Nano Orin", tensorrt_rtx=False, jetson=True),
        Target(89, "Ada", "RTX 40xx, L4, L40S", tensorrt_rtx=True),
        Target(90, "Hopper", "H100, H200", tensorrt_rtx=False),
        Target(120, "Blackwell", "RTX 50xx, RTX PRO Blackwell", tensorrt_rtx=True),
        Target(121, "Blackwell (GB10)", "DGX Spark", tensorrt_rtx=True),
    )
}
RTX_SUPPORTED = tuple(c for c, t in TARGETS.items() if t.tensorrt_rtx)
RTX_DEFAULT_TARGETS = (80, 86, 89, 120)  # what a TensorRT-RTX engine built without explicit targets covers
# What `derain-export --cc` takes: the TensorRT-RTX targets and Jetson Orin (an engine is built on the Orin itself).
EXPORT_TARGETS = tuple(c for c, t in TARGETS.items() if t.tensorrt_rtx or t.jetson)


def describe(capability: int) -> str:
    """"SM89 (Ada: RTX 40xx, L4, L40S)" or "SM95 (unknown)"."""
    target = TARGETS.get(capability)
    return f"SM{capability} ({target.architecture}: {target.examples})" if target else f"SM{capability} (unknown)"


def nvcc_gencode(capabilities: tuple[int, ...] | None = None) -> list[str]:
    """`-gencode` flags for nvcc: SASS for each capability (default: every one in the table) and PTX for the
    newest, so a newer GPU can still JIT the kernels."""
    chosen = sorted(capabilities or TARGETS)
    flags = [f"-gencode=arch=compute_{c},code=sm_{c}" for c in chosen]
    flags.append(f"-gencode=arch=compute_{chosen[-1]},code=compute_{chosen[-1]}")
    return flags
