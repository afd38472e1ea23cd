"""Training speed and peak memory: our models against straightforward reference-style ones.

For the paper-size VQ-VAE (PR-DVQVAE2) and transformer (DSFVT), one optimisation step is timed
with our implementation and with `reference_model.py` (the authors' way: one-hot 2,048-channel
encoder input, explicit attention with materialised bias and mask, fp32, eager). First both are
given the same weights (through `lvt.original`, which maps the authors' layout onto ours) and
must give the same loss on the same batch. Then every variant runs in a fresh subprocess, so
that its peak memory is its own: on CPU the process's peak resident set (VmHWM; in brackets
the part above the process's size after importing torch), on CUDA
`torch.cuda.max_memory_allocated`. On a shared CPU the wall-clock rate depends on the other
load, so the CPU seconds the process used per step are printed too.

Variants: `reference` (fp32, eager); `ours` as our training runs it (CPU: fp32; CUDA: bf16
autocast, TF32, fused Adam, and torch.compile with --compile); `ours-bf16` (CPU
only: bf16 autocast). Random codes and images: the cost does not depend on the data.

    python benchmarks/train.py [--device cpu|cuda] [--transformer-batch 8] [--vqvae-batch 32]
        [--steps 3] [--warmup 1] [--repeats 1] [--compile] [--models vqvae transformer]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_model import ReferenceVideoTransformer, ReferenceVQVAE  # noqa: E402

from lvt.config import model_configs, validate  # noqa: E402
from lvt.models import transformer as vt  # noqa: E402
from lvt.models import vqvae  # noqa: E402
from lvt.original import import_transformer, import_vqvae  # noqa: E402
from lvt.stages.common import from_section  # noqa: E402
from lvt.training.transformer import (  # noqa: E402
    RMSpropSettings,
    random_slices,
    training_batch,
)
from lvt.training.vqvae import AdamSettings  # noqa: E402

FRAMES, SIZE, N_PRIME = 16, 64, 1
PAPER = validate({})
"""The paper's models and optimisers are the configuration schema's defaults."""
VQVAE_CONFIG, TRANSFORMER_CONFIG = model_configs(PAPER)
RMSPROP = from_section(RMSpropSettings, PAPER["transformer"]["train"])
ADAM = from_section(AdamSettings, PAPER["vqvae"]["train"])
LOSS_TOLERANCE = 1e-4
Step = Callable[[], float]


def cpu_name() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_status(field: str) -> int:
    """A /proc/self/status memory field (VmRSS, VmHWM) in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def transformer_batch(config: vt.TransformerConfig, batch: int, seed: int):
    """(context, target, ignore, slice index) of random code clips, one random slice each."""
    generator = torch.Generator().manual_seed(seed)
    clips = torch.randint(config.codebook_size, (batch, config.codebooks, FRAMES, 16, 16),
                          generator=generator)
    slices = random_slices(batch, config.stride, N_PRIME, generator, frames=FRAMES)
    return training_batch(clips, slices, config, N_PRIME)


def images_batch(batch: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, SIZE, SIZE, generator=generator)


def check_same_model() -> None:
    """Reference and ours with the same weights give the same loss on the same batch."""
    torch.manual_seed(0)
    reference = ReferenceVideoTransformer(TRANSFORMER_CONFIG)
    ours, config = import_transformer(reference.state_dict())
    context, target, ignore, index = transformer_batch(config, 2, seed=1)
    with torch.no_grad():
        losses = [vt.slice_loss(model(context, target, index), target, ignore).item()
                  for model in (reference, ours)]
    report_check("transformer", *losses)
    reference = ReferenceVQVAE(VQVAE_CONFIG)
    ours, _ = import_vqvae(*reference.original_state())
    images = images_batch(4, seed=1)
    with torch.no_grad():
        report_check("VQ-VAE", reference(images).item(), ours(images).loss.item())


def report_check(name: str, reference: float, ours: float) -> None:
    difference = abs(reference - ours)
    print(f"same weights, same batch: {name} loss reference {reference:.6f}, ours {ours:.6f}, "
          f"|difference| {difference:.1e}")
    if difference > LOSS_TOLERANCE * max(1.0, abs(reference)):
        raise SystemExit(f"{name}: the two implementations disagree; not the same model")


def build_step(model_name: str, variant: str, batch: int, device: torch.device,
               compile_model: bool) -> Step:
    """A closure running one optimisation step and returning its loss."""
    ours = variant.startswith("ours")
    cuda = device.type == "cuda"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=ours and (cuda or variant == "ours-bf16"))
    torch.manual_seed(0)
    if model_name == "transformer":
        config = TRANSFORMER_CONFIG
        model = (vt.LatentVideoTransformer(config) if ours else ReferenceVideoTransformer(config))
        model = model.to(device).train()
        optimizer = vt.optimizer(model, **asdict(RMSPROP))
        inputs = [t.to(device) for t in transformer_batch(config, batch, seed=1)]
        forward = torch.compile(model) if compile_model and ours else model
        context, target, ignore, index = inputs

        def loss() -> torch.Tensor:
            return vt.slice_loss(forward(context, target, index), target, ignore)

        optimizers = [optimizer]
    else:
        if ours:
            model = vqvae.VQVAE(VQVAE_CONFIG).to(device).train()
            optimizers = list(vqvae.optimizers(model, lr=ADAM.lr, betas=ADAM.betas,
                                               fused=cuda and ADAM.fused_adam).values())
        else:
            model = ReferenceVQVAE(VQVAE_CONFIG).to(device).train()
            optimizers = [torch.optim.Adam(part.parameters(), lr=ADAM.lr, betas=ADAM.betas)
                          for part in (model.net_e, model.net_g)]
        images = images_batch(batch, seed=1).to(device)
        forward = torch.compile(model) if compile_model and ours else model

        def loss() -> torch.Tensor:
            output = forward(images)
            return output.loss if ours else output

    return optimisation_step(loss, optimizers, autocast)


def optimisation_step(loss: Callable[[], torch.Tensor],
                      optimizers: Sequence[torch.optim.Optimizer],
                      autocast: contextlib.AbstractContextManager) -> Callable[[], float]:
    """One training step as the tasks take it: forward under autocast, backward, update."""

    def step() -> float:
        with autocast:
            value = loss()
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        value.backward()
        for optimizer in optimizers:
            optimizer.step()
        return value.item()

    return step


def worker(args: argparse.Namespace) -> None:
    """Time one variant; print one JSON line."""
    device = torch.device(args.device)
    if device.type == "cuda":
        tf32 = args.variant.startswith("ours")
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    baseline = memory_status("VmRSS")
    batch = args.transformer_batch if args.worker == "transformer" else args.vqvae_batch
    step = build_step(args.worker, args.variant, batch, device, args.compile)
    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    begin, begin_cpu = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    result = {
        "seconds": (time.perf_counter() - begin) / args.steps,
        "cpu_seconds": (time.process_time() - begin_cpu) / args.steps,
        "load": os.getloadavg()[0],
    }
    if device.type == "cuda":
        result["peak"] = torch.cuda.max_memory_allocated()
    else:
        result["peak"] = memory_status("VmHWM")
        result["above_baseline"] = result["peak"] - baseline
    print(json.dumps(result))


def run_variant(args: argparse.Namespace, model_name: str, variant: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", model_name, "--variant", variant,
               "--device", args.device, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--transformer-batch", str(args.transformer_batch),
               "--vqvae-batch", str(args.vqvae_batch), "--threads", str(args.threads)]
    if args.compile:
        command.append("--compile")
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--models", nargs="+", default=["vqvae", "transformer"],
                        choices=["vqvae", "transformer"])
    parser.add_argument("--transformer-batch", type=int, default=None,
                        help="default: 8 on CPU, the paper's 64 on CUDA")
    parser.add_argument("--vqvae-batch", type=int, default=32, help="default: the paper's 32")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh runs per variant, interleaved; the fastest is shown")
    parser.add_argument("--compile", action="store_true", help="torch.compile our models")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--worker", choices=["vqvae", "transformer"], help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.transformer_batch is None:
        args.transformer_batch = 64 if args.device == "cuda" else 8
    torch.set_num_threads(args.threads)
    if args.worker:
        worker(args)
        return

    device_name = (torch.cuda.get_device_name() if args.device == "cuda"
                   else f"{cpu_name()}, {torch.get_num_threads()} threads")
    print(f"machine: {device_name}, torch {torch.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    check_same_model()
    variants = ["reference", "ours"] + (["ours-bf16"] if args.device == "cpu" else [])
    unit = "peak GPU memory allocated" if args.device == "cuda" else "peak RSS (above imports)"
    for model_name in args.models:
        batch = args.transformer_batch if model_name == "transformer" else args.vqvae_batch
        print(f"\n{model_name}, batch {batch}, {args.steps} steps after {args.warmup} warm-up"
              f"{', torch.compile' if args.compile else ''}: steps/s, {unit}")
        runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in variants}
        for _ in range(args.repeats):  # interleaved, so that all variants see the same load
            for variant in variants:
                runs[variant].append(run_variant(args, model_name, variant))
        results = {}
        for variant in variants:
            result = results[variant] = min(runs[variant], key=lambda run: run["seconds"])
            memory = f"{result['peak'] / 2**20:7.0f} MiB"
            if "above_baseline" in result:
                memory += f" ({result['above_baseline'] / 2**20:.0f} MiB)"
            line = f"  {variant:10s} {1 / result['seconds']:7.3f} steps/s  {memory}"
            if args.device == "cpu":
                line += f"  {result['cpu_seconds']:6.1f} CPU s/step"
            if variant != "reference":
                reference = results["reference"]
                line += f"  speed ×{reference['seconds'] / result['seconds']:.2f}"
                if args.device == "cpu":
                    line += f" (CPU time ×{reference['cpu_seconds'] / result['cpu_seconds']:.2f})"
                line += f", memory ×{result['peak'] / reference['peak']:.2f}"
                if "above_baseline" in result:
                    line += f" (×{result['above_baseline'] / reference['above_baseline']:.2f})"
            print(f"{line}  [load {result['load']:.1f}]", flush=True)


if __name__ == "__main__":
    main()
