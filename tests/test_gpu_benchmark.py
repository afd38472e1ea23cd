"""benchmarks/gpu.py, the prepared GPU run, at tiny sizes on the CPU (`--device cpu --smoke`): every
check runs and passes, every figure is measured, a spent budget stops every part cleanly, and the
reports of real runs can be committed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"
CHECKS = [
    "sampler_fast_equals_plain_DSFVT", "sampler_fast_equals_plain_DSSVT",
    "sampler_fast_equals_plain_DSTSVT", "logits_cpu_vs_device", "bf16_loss_transformer",
    "bf16_loss_vqvae", "attention_bias_encoder", "attention_bias_decoder", "resume_transformer",
    "resume_vqvae", "checkpoint_loads_on_cpu", "process_group_all_reduce",
    "process_group_vqvae_ema", "compile_loss_transformer", "compile_loss_vqvae",
]
PARTS = ["checks", "transformer_training", "vqvae_training", "sampling", "i3d", "extract_codes"]


def run_smoke(folder: Path, *options: str) -> tuple[dict[str, Any], str]:
    """Run the script as CI does; return its JSON report and what it printed."""
    out = folder / "report.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--smoke", "--out",
                           str(out), *options], cwd=folder, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text()), done.stdout


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, float]:
    begin = time.monotonic()
    report, printed = run_smoke(tmp_path_factory.mktemp("smoke"))
    return report, printed, time.monotonic() - begin


def test_every_check_runs_and_passes_with_its_measured_difference(smoke) -> None:
    report, printed, _ = smoke
    assert sorted(report["checks"]) == sorted(CHECKS)
    for name, check in report["checks"].items():
        assert check["status"] == "ran", (name, check)
        assert check["passed"] is True, (name, check)
        assert isinstance(check["difference"], int | float), (name, check)
        assert check["difference"] <= check["tolerance"], (name, check)
        assert f"pass  {name}" in printed
    assert report["checks"]["process_group_all_reduce"]["backend"] == "gloo"
    assert not report.get("errors"), report["errors"]


def test_every_part_finishes_within_its_budget(smoke) -> None:
    report, _, seconds = smoke
    assert sorted(report["parts"]) == sorted(PARTS)
    for name, part in report["parts"].items():
        assert part["status"] == "done", (name, part)
        assert 0 < part["elapsed_s"] <= part["budget_s"], (name, part)
    assert report["elapsed_s"] < report["budget_s"] and seconds < report["budget_s"]


def timed(row: dict[str, Any]) -> bool:
    return row["median_s"] > 0 and row["timed"] >= 1 and row["warmup"] >= 1


def test_every_timing_and_projection_is_measured(smoke) -> None:
    timings = smoke[0]["timings"]
    rows = {row["variant"]: row for row in timings["transformer_training"]["rows"]}
    assert list(rows) == ["reference fp32 eager", "ours fp32", "ours bf16",
                          "pipeline step (precision auto)", "ours bf16 + compile"]
    for row in rows.values():
        assert timed(row) and row["peak_memory_bytes"] > 0 and row["tflop_per_s"] > 0, row
        assert row["projected_hours_600k"] == pytest.approx(row["median_s"] * 600_000 / 3600)
    assert "vs_reference" not in rows["reference fp32 eager"]
    assert rows["ours fp32"]["vs_reference"] == pytest.approx(
        rows["reference fp32 eager"]["median_s"] / rows["ours fp32"]["median_s"])
    loader = timings["transformer_training"]["loader"]
    assert loader["unit"] == "clips" and loader["items_per_s"] > 0
    assert loader["consumed_per_s"] == pytest.approx(
        2 * max(row["steps_per_s"] for name, row in rows.items() if name.startswith("ours")))
    for batch in ("4", "8"):
        entry = timings["vqvae_training"]["batches"][batch]
        assert [row["variant"] for row in entry["rows"]] == [
            "reference fp32 eager", "ours (precision auto)", "pipeline step (precision auto)"]
        assert all(timed(row) and row["projected_hours_500k"] > 0 for row in entry["rows"])
        assert entry["loader"]["unit"] == "frames" and entry["loader"]["items_per_s"] > 0
    sampling = timings["sampling"]
    assert [row["batch"] for row in sampling["rows"]] == [1, 4]
    assert sampling["positions_per_video"] == 15 * 256
    assert sampling["encoder_calls_per_video"] == 15
    for row in sampling["rows"]:
        assert row["ms_per_position"] > 0 and row["encoder_s"] > 0, row
        per_batch = row["s_per_video"] * row["batch"]
        assert row["protocol_minutes"] == pytest.approx(-(-25_600 // row["batch"])
                                                        * per_batch / 60)
    i3d = timings["i3d"]["rows"]
    assert [row["batch"] for row in i3d] == [1] and i3d[0]["clips_per_s"] > 0
    assert i3d[0]["fvd_minutes"] == pytest.approx(25_856 / i3d[0]["clips_per_s"] / 60)
    extract = timings["extract_codes"]
    assert timed(extract) and extract["frames_per_s"] > 0 and extract["bair_hours"] > 0
    goals = smoke[0]["goals"]
    assert len(goals) == 4 and all(isinstance(goal["met"], bool) for goal in goals), goals


def test_the_report_names_the_machine_and_prints_a_table(smoke) -> None:
    report, printed, _ = smoke
    machine = report["machine"]
    assert machine["device"] == "cpu" and machine["torch"] and machine["cpu"]
    assert report["smoke"] is True and report["compile_backend"] == "eager"
    for heading in ("checks", "DSFVT training, batch 2", "VQ-VAE training, batch 8",
                    "fast sampling", "I3D 224x224x16", "extract_codes:", "goals", "parts"):
        assert heading in printed


def test_a_spent_budget_stops_every_part_cleanly(tmp_path: Path) -> None:
    report, printed = run_smoke(tmp_path, "--budget-s", "2")
    assert sorted(report["checks"]) == sorted(CHECKS)
    for name, part in report["parts"].items():
        assert part["status"].startswith("stopped: budget spent"), (name, part)
        assert f"{name:22s} stopped" in printed
    stopped = [check for check in report["checks"].values() if check["status"] != "ran"]
    assert stopped and all(check["passed"] is None for check in stopped)
    assert all(check["status"].startswith("not run: the part stopped: budget spent")
               for check in stopped)
    assert all(check["passed"] is True for check in report["checks"].values()
               if check["status"] == "ran")


@pytest.fixture(scope="module")
def gpu() -> Any:
    """benchmarks/gpu.py as a module."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return gpu


def test_a_check_that_fails_is_recorded_and_the_next_ones_run(gpu, tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(gpu, "CHECK_GROUPS",
                        (gpu.check_logits, gpu.check_resume, gpu.check_process_group))
    report = {"checks": {name: {"passed": None, "status": "not run"} for name in CHECKS}}
    run = gpu.Run(torch.device("cpu"), gpu.SMOKE, "eager", tmp_path, report)  # no data files
    gpu.part_checks(run, gpu.Clock(time.monotonic() + 300))
    checks = report["checks"]
    for name in ("resume_transformer", "resume_vqvae", "checkpoint_loads_on_cpu"):
        assert checks[name]["passed"] is False, checks[name]
        assert checks[name]["status"] == "error: KeyError('codes')", checks[name]
    for name in ("logits_cpu_vs_device", "process_group_all_reduce", "process_group_vqvae_ema"):
        assert checks[name]["passed"] is True and checks[name]["status"] == "ran"
    assert "KeyError: 'codes'" in report["errors"][0]
    assert set(report["check_seconds"]) == {"logits", "resume", "process_group"}


def test_timings_stop_early_when_the_budget_runs_short(gpu) -> None:
    calls = []
    clock = gpu.Clock(time.monotonic() + 0.5)
    timing = gpu.time_calls(lambda: calls.append(time.sleep(0.2)), torch.device("cpu"), clock,
                            warmup=1, repeats=10)
    assert timing["cut_short"] and 1 <= timing["timed"] < 10 and len(calls) == 1 + timing["timed"]
    assert timing["median_s"] == pytest.approx(0.2, abs=0.15)
    time.sleep(max(0.0, clock.left()) + 0.01)
    with pytest.raises(gpu.BudgetSpent):  # the next item does not start
        gpu.time_calls(lambda: None, torch.device("cpu"), clock, warmup=1, repeats=1)


def test_a_step_that_overruns_by_far_is_interrupted(gpu) -> None:
    begin = time.monotonic()
    with pytest.raises(gpu.BudgetSpent, match="interrupted"), gpu.interrupt_after(0.2):
        time.sleep(10)
    assert time.monotonic() - begin < 5


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(),
                    reason="needs git and a git checkout")
def test_the_reports_of_real_runs_can_be_committed() -> None:
    done = subprocess.run(["git", "check-ignore", "-q", "benchmarks/results/2025-01-01-gpu.json"],
                          cwd=ROOT)
    assert done.returncode == 1  # 1: not ignored
