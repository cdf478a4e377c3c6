from __future__ import annotations

import pytest
import torch
from conftest import TINY_NETWORKS

from derain.models import (
    NETWORKS,
    CheckpointError,
    build_model,
    load_model,
    pad_to_multiple,
    prediction,
    run_padded,
    save_checkpoint,
)
from derain.models.cost import frame_cost
from derain.registry import UnknownNameError
from derain.train.state import load_state


def test_registry_lists_every_network():
    assert set(NETWORKS.names()) >= {"mprnet", "prenet", "nafnet", "realtime"}
    with pytest.raises(UnknownNameError, match="known: .*mprnet"):
        build_model("mprnett")


def test_mprnet_matches_official_deraining_parameter_count():
    # The official Deraining/MPRNet.py model has about 3.64 M parameters (shared notes, PERF.md).
    count = sum(p.numel() for p in build_model("mprnet").parameters())
    assert abs(count - 3.64e6) / 3.64e6 < 0.01, count


def test_mprnet_returns_three_stage_images():
    model = build_model("mprnet", **TINY_NETWORKS["mprnet"]).eval()
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 32, 48))
    assert len(outputs) == 3 and all(o.shape == (1, 3, 32, 48) for o in outputs)


def test_reference_parameter_counts():
    # PReNet (Ren et al., CVPR 2019; csdwren/PReNet networks.py), counted by hand from its layers: conv0 6->32
    # 3x3 (1,760) + 5 residual blocks of two 32->32 3x3 convs (92,480) + 4 ConvLSTM gates 64->32 3x3 (73,856) +
    # conv 32->3 3x3 (867) = 168,963. NAFNet-w32 SIDD configuration: 29.16 M (shared notes, PERF.md table 1a,
    # matching a third-party fvcore count).
    assert sum(p.numel() for p in build_model("prenet").parameters()) == 168_963
    nafnet = sum(p.numel() for p in build_model("nafnet").parameters())
    assert abs(nafnet - 29.16e6) / 29.16e6 < 0.005


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
@pytest.mark.parametrize("size", [(17, 29), (40, 33), (8, 8)])
def test_any_size_runs_through_padding(name, size):
    model = build_model(name, **TINY_NETWORKS[name]).eval()
    image = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = run_padded(model, image)
    assert out.shape == image.shape
    assert torch.isfinite(out).all()


def test_padding_is_outside_forward_and_cropped_back():
    image = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    padded, size = pad_to_multiple(image, 8)
    assert padded.shape[-2:] == (8, 8) and size == (5, 7)
    assert torch.equal(padded[..., :5, :7], image)
    assert torch.equal(padded[..., 5, :7], image[..., 4, :])  # edge (the frame contract): row 5 repeats row 4
    assert torch.equal(padded[..., :5, 7], image[..., :, 6])
    reflected, _ = pad_to_multiple(image, 8, mode="reflect")
    assert torch.equal(reflected[..., 5, :7], image[..., 3, :])  # reflect on request: row 5 mirrors row 3


def test_checkpoint_round_trip_rebuilds_the_network(tmp_path):
    model = build_model("realtime", **TINY_NETWORKS["realtime"]).eval()
    path = save_checkpoint(tmp_path / "net.pt", model, step=3)
    loaded = load_model(path)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(prediction(model(x)), prediction(loaded(x)))
    assert loaded.spec == model.spec


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "naf.pt", build_model("nafnet", **TINY_NETWORKS["nafnet"]))
    with pytest.raises(CheckpointError, match="expected a 'mprnet' checkpoint, found 'nafnet'"):
        load_model(path, expect="mprnet")
    state = load_state(path)
    state["model"] = {"name": "realtime", "kwargs": {}}
    torch.save(state, tmp_path / "forged.pt")
    with pytest.raises(CheckpointError, match="does not fit network 'realtime'"):
        load_model(tmp_path / "forged.pt")


def test_foreign_and_corrupt_checkpoints(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="expected a derain checkpoint"):
        load_model(tmp_path / "foreign.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_model(tmp_path / "corrupt.pt")


def test_cost_counter_agrees_with_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model("nafnet", **TINY_NETWORKS["nafnet"]).eval()
    cost = frame_cost(model, 64, 64)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 3, 64, 64))
    assert cost.macs == counter.get_total_flops() // 2


def test_the_per_layer_floor_adds_up_and_is_never_below_the_network_floor():
    """Layers partition the counts; each layer's max(compute, memory) summed is at least the network's max, and
    strictly more when some layers are bound by memory and others by compute (as in the realtime network)."""
    cost = frame_cost(build_model("realtime"), 720, 1280)
    assert len(cost.layers) > 10
    assert sum(m for m, _ in cost.layers) == cost.macs and 2 * sum(e for _, e in cost.layers) == cost.conv_bytes
    rate, bandwidth = 400e12, 3.3e12  # an H100-like balance point (121 FLOP / byte)
    network = max(2 * cost.macs / rate, cost.conv_bytes / bandwidth)
    layers = cost.layer_floor_s(rate, bandwidth)
    assert layers > network * 1.05
    ridge = [2 * m / rate > 2 * e / bandwidth for m, e in cost.layers]
    assert any(ridge) and not all(ridge)  # both kinds of layer exist


def test_cost_counter_reproduces_published_counts():
    # NAFNet-w16 (SIDD cfg) is 58.1 GMAC at 720p and MPRNet 1983 GMAC (shared notes, PERF.md table 1a).
    assert frame_cost(build_model("nafnet", width=16), 720, 1280).gmac == pytest.approx(58.1, abs=0.1)
    assert frame_cost(build_model("mprnet"), 720, 1280).gmac == pytest.approx(1983, rel=0.002)


def test_realtime_network_fits_its_edge_budget():
    """At 1280x720: at most 40 GMAC and 400 MB of FP16 conv traffic per frame (NAFNet-w16: 58 GMAC, ~4 GB)."""
    cost = frame_cost(build_model("realtime"), 720, 1280)
    assert cost.gmac <= 40, cost
    assert cost.conv_megabytes <= 400, cost
    reference = frame_cost(build_model("nafnet", width=16), 720, 1280)
    assert cost.conv_bytes * 5 < reference.conv_bytes


def test_realtime_network_uses_only_fusable_ops():
    model = build_model("realtime")
    kinds = {type(m).__name__ for m in model.modules()}
    assert not any("Norm" in kind for kind in kinds), kinds


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_every_reader_refuses_a_malicious_pickle_without_running_it(tmp_path):
    """Checkpoints, resume states and saved scorers all go through the weights-only reader."""
    from derain.models.registry import read_checkpoint
    from derain.train.rgsud import load_scorer

    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pt"
    torch.save({"format": "derain-checkpoint-v1", "name": "niqe", "weights": _Payload(marker)}, path)
    for reader in (read_checkpoint, load_state, load_scorer, load_model):
        with pytest.raises(CheckpointError, match="weights-only load refuses"):
            reader(path)
    assert not marker.exists()
    path.write_bytes(path.read_bytes()[:40])  # truncated
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint .*zip archive"):
        load_state(path)


def test_a_legacy_resume_state_says_how_to_convert_and_converts_without_running_code(tmp_path):
    import random

    import numpy as np

    from derain.train.state import convert_legacy, set_rng_state

    legacy = tmp_path / "last.pt"
    torch.save({"step": 7, "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                                   "torch": torch.get_rng_state()}}, legacy)  # fmt: skip
    with pytest.raises(CheckpointError, match="python -m derain.train.state --convert"):
        load_state(legacy)
    np.random.seed(5)
    expected = np.random.get_state()[1].copy()
    torch.save({"step": 7, "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                                   "torch": torch.get_rng_state()}}, legacy)  # fmt: skip
    convert_legacy(legacy)
    state = load_state(legacy)
    np.random.seed(0)
    set_rng_state(state["rng"])
    assert state["step"] == 7 and (np.random.get_state()[1] == expected).all()
    assert (tmp_path / "last.pt.legacy").is_file()
    marker = tmp_path / "PWNED"
    torch.save({"rng": _Payload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="cannot convert"):
        convert_legacy(tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="exists already"):  # never overwrites an earlier original
        convert_legacy(legacy)
    with pytest.raises(CheckpointError, match="no such file"):
        convert_legacy(tmp_path / "missing.pt")
