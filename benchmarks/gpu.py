"""One prepared run that proves and times every CUDA path of the pipeline, within a time budget.

    python benchmarks/gpu.py [--device auto|cuda|cpu] [--smoke] [--budget-s 480] [--out FILE]
        [--parts checks transformer_training ...] [--compile-backend inductor]

Parts, in this order, each with its share of `--budget-s` (time a part leaves unused passes to
the next ones); a part checks its clock between steps and stops cleanly when its share is spent,
and a step that overruns its share by far is interrupted; either way the JSON and the table say
so, and the run goes on with the next part:

1. `checks`: correctness, pass/fail with the measured difference (fp32 and TF32 off unless
   said): the fast sampler draws the plain sampler's codes with a generator on the device (small
   random DSFVT, DSSVT, DSTSVT); teacher-forced logits on the CPU and on the device agree; a
   training step of the paper-size DSFVT and VQ-VAE in bf16 autocast has a loss within 1% of
   fp32 and finite gradients; block-local attention with the relative-position bias (the fused
   kernels) matches explicit softmax attention, output and every gradient; a run checkpointed
   after 4 steps on the device and resumed to 8 ends with the weights of an uninterrupted 8-step
   run (deterministic algorithms on), and its checkpoint loads on the CPU; a 1-process group
   (NCCL on CUDA, gloo on the CPU) all-reduces and runs the VQ-VAE's EMA update under it;
   `torch.compile` on and off give the same loss.
2. `transformer_training`: a DSFVT step at the paper's batch 64: the reference-style model
   (`reference_model.py`, fp32, eager) against ours in fp32 (TF32 on, the pipeline's default),
   bf16 autocast and bf16 + compile; steps/s, peak memory, FLOP/s (FlopCounterMode's count of
   one step), hours for 600k steps; the pipeline's own step (`TransformerTraining`, clips read
   from HDF5, default settings); and the loader's clips/s against what the step consumes.
3. `vqvae_training`: the same for the VQ-VAE at batch 32 and 256 (500k steps), frames/s loaded.
4. `sampling`: the fast sampler at batch 1, 64, 256, 1024 and 2048 (until memory runs out),
   timed over the rest of slice 1 after a warm-up and projected to whole videos and the BAIR
   protocol (25,600 clips, 1 -> 15 frames).
5. `i3d`: clips/s of I3D at 224×224×16 (random weights; the cost does not depend on them), as
   `lvt.fvd.i3d_embeddings` runs it, and the time of FVD's 25,856 clips.
6. `extract_codes`: frames/s of the paper-size VQ-VAE encoding HDF5 frames as the stage does.

Timings exclude warm-up steps and give medians. Everything goes to one JSON file, written
after every part (machine, GPU, torch and CUDA versions, every check and figure; default
`benchmarks/results/<date>-<device>.json`), and a short table is printed at the end. `--smoke`
runs tiny sizes (and a compile backend without code generation) so that the whole script runs
on a CPU in well under a minute; tests/test_gpu_benchmark.py runs it that way.
"""

from __future__ import annotations

import os

# Deterministic cuBLAS for the resume check (read when CUDA starts).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference_model import ReferenceVideoTransformer, ReferenceVQVAE  # noqa: E402
from sampling import synchronize, time_encoder, time_positions  # noqa: E402
from train import (  # noqa: E402
    cpu_name,
    images_batch,
    memory_status,
    optimisation_step,
    transformer_batch,
)

from lvt.atomic import write_json  # noqa: E402
from lvt.checkpoints import read_payload  # noqa: E402
from lvt.config import paper_model_configs, validate  # noqa: E402
from lvt.data.dataset import VideoArrays, VideoArraysWriter  # noqa: E402
from lvt.devices import available_cpus  # noqa: E402
from lvt.fvd import I3D, i3d_embeddings  # noqa: E402
from lvt.images import frames_to_images  # noqa: E402
from lvt.inference import encode_frames  # noqa: E402
from lvt.models import transformer as vt  # noqa: E402
from lvt.models import vqvae  # noqa: E402
from lvt.models.transformer import (  # noqa: E402
    BlockLocalAttention,
    LatentVideoTransformer,
    TransformerConfig,
)
from lvt.models.vqvae import VQVAE, VQVAEConfig  # noqa: E402
from lvt.sampling import sample_codes, sample_codes_fast, sampling_plan  # noqa: E402
from lvt.stages.common import from_section  # noqa: E402
from lvt.stages.extract_codes import BATCH_FRAMES  # noqa: E402
from lvt.training.acceleration import PLAIN, Acceleration, set_tf32  # noqa: E402
from lvt.training.distributed import Distributed  # noqa: E402
from lvt.training.loop import LoopSettings, checkpoint_name, train  # noqa: E402
from lvt.training.transformer import (  # noqa: E402
    ClipSettings,
    RMSpropSettings,
    TransformerTraining,
)
from lvt.training.vqvae import AdamSettings, VQVAETraining  # noqa: E402

log = logging.getLogger("benchmarks.gpu")

PROTOCOL_CLIPS = 25_600  # BAIR: 256 test videos x 100 samples
FVD_CLIPS = 25_856  # the protocol's generated clips and the 256 real ones through I3D
BAIR_FRAMES = 43_520 * 30  # every frame extract_codes encodes for BAIR
CODE_SIZE, IMAGE_SIZE = 16, 64
PAPER_VQVAE, PAPER_TRANSFORMER = paper_model_configs()  # PR-DVQVAE2, DSFVT
_VQVAE_TRAIN, _TRANSFORMER_TRAIN = (validate({})[name]["train"]
                                    for name in ("vqvae", "transformer"))  # the paper's
PAPER_ADAM = {"lr": _VQVAE_TRAIN["lr"], "betas": tuple(_VQVAE_TRAIN["betas"])}
PAPER_RMSPROP = {key: _TRANSFORMER_TRAIN[key] for key in ("lr", "alpha", "momentum", "eps")}
TRANSFORMER_STEPS, VQVAE_STEPS = _TRANSFORMER_TRAIN["steps"], _VQVAE_TRAIN["steps"]
PAPER_CLIP = from_section(ClipSettings, _TRANSFORMER_TRAIN)
CLIP_FRAMES, N_PRIME = PAPER_CLIP.clip_frames, PAPER_CLIP.n_prime
GOAL_SPEEDUP, GOAL_TRAINING_HOURS, GOAL_PROTOCOL_MINUTES = 3.0, 24.0, 15.0
PARTS = {  # name: share of the budget (two torch.compile runs make the first two the longest)
    "checks": 0.32,
    "transformer_training": 0.30,
    "vqvae_training": 0.10,
    "sampling": 0.16,
    "i3d": 0.07,
    "extract_codes": 0.05,
}
SAMPLER_VARIANTS = {  # kernel, stride, attention block on 16 × 8 × 8 code videos (the presets)
    "DSFVT": ((7, 1, 1), (16, 1, 1), (1, 8, 8)),
    "DSSVT": ((1, 3, 3), (1, 2, 2), (4, 4, 4)),
    "DSTSVT": ((5, 3, 3), (4, 2, 2), (4, 4, 4)),
}
CHECKS = (
    *(f"sampler_fast_equals_plain_{name}" for name in SAMPLER_VARIANTS),
    "logits_cpu_vs_device",
    "bf16_loss_transformer",
    "bf16_loss_vqvae",
    "attention_bias_encoder",
    "attention_bias_decoder",
    "resume_transformer",
    "resume_vqvae",
    "checkpoint_loads_on_cpu",
    "process_group_all_reduce",
    "process_group_vqvae_ema",
    "compile_loss_transformer",
    "compile_loss_vqvae",
)


@dataclass(frozen=True)
class Sizes:
    """Model sizes, batches and repetitions of a run: the paper's, or tiny ones (--smoke)."""

    transformer: TransformerConfig  # checks and timings
    vqvae: VQVAEConfig
    sampler_model: dict[str, int]  # TransformerConfig fields of the sampler-equality models
    sampler_prime: int  # priming frames there (fewer positions to sample when larger)
    resume_transformer: TransformerConfig
    resume_batch: int
    check_batch: int  # transformer clips in the bf16, compile and attention checks
    logits_batch: int
    vqvae_check_batch: int
    train_batch: int
    vqvae_batches: tuple[int, ...]
    sampling_batches: tuple[int, ...]
    sampling_positions: int  # positions timed per batch, after 2 of warm-up
    i3d_batches: tuple[int, ...]
    i3d_warmup: int
    videos: int  # synthetic HDF5 data: videos of `video_frames` frames
    video_frames: int
    warmup: int  # untimed calls before each timing
    repeats: int  # timed calls (fewer when the budget runs short)


PAPER = Sizes(
    transformer=PAPER_TRANSFORMER,
    vqvae=PAPER_VQVAE,
    sampler_model={"codebooks": 4, "codebook_size": 64, "embedding_dim": 16, "model_dim": 32,
                   "head_dim": 8, "heads": 4, "encoder_layers": 2, "decoder_layers": 2},
    sampler_prime=1,
    resume_transformer=replace(PAPER_TRANSFORMER, encoder_layers=2, decoder_layers=2),
    resume_batch=8,
    check_batch=16,
    logits_batch=2,
    vqvae_check_batch=32,
    train_batch=64,
    vqvae_batches=(32, 256),
    sampling_batches=(1, 64, 256, 1024, 2048),
    sampling_positions=CODE_SIZE * CODE_SIZE - 2,
    i3d_batches=(16, 64),
    i3d_warmup=1,
    videos=256,
    video_frames=30,
    warmup=2,
    repeats=10,
)
TINY_TRANSFORMER = replace(PAPER_TRANSFORMER, codebook_size=16, embedding_dim=8, model_dim=16,
                           head_dim=4, heads=2, encoder_layers=1, decoder_layers=1)
SMOKE = Sizes(
    transformer=TINY_TRANSFORMER,
    vqvae=replace(PAPER_VQVAE, channels=32, residual_channels=16, residual_blocks=1,
                  codebook_size=64),
    sampler_model={"codebooks": 2, "codebook_size": 8, "embedding_dim": 8, "model_dim": 12,
                   "head_dim": 4, "heads": 2, "encoder_layers": 1, "decoder_layers": 1},
    sampler_prime=12,
    resume_transformer=TINY_TRANSFORMER,
    resume_batch=2,
    check_batch=2,
    logits_batch=2,
    vqvae_check_batch=4,
    train_batch=2,
    vqvae_batches=(4, 8),
    sampling_batches=(1, 4),
    sampling_positions=16,
    i3d_batches=(1,),
    i3d_warmup=0,
    videos=6,
    video_frames=20,
    warmup=1,
    repeats=2,
)


class BudgetSpent(BaseException):  # noqa: N818 (not an error: the planned end of a part)
    """A part's share of the budget is spent. A BaseException, so that the handlers that record
    one item's failure and go on to the next let it through."""


@dataclass
class Clock:
    """A part's deadline (time.monotonic)."""

    deadline: float

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.deadline - time.monotonic()

    def check(self) -> None:
        """BudgetSpent once the deadline has passed."""
        if self.left() <= 0:
            raise BudgetSpent("budget spent")


@contextlib.contextmanager
def interrupt_after(seconds: float) -> Iterator[None]:
    """Raise BudgetSpent in the main thread after `seconds`: a step that overruns by far (a slow
    compile, a hang in Python code) does not take the other parts' time."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise BudgetSpent("interrupted: its step overran the budget")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Run:
    """What every part needs: the device, the sizes, the data, and the report being filled."""

    device: torch.device
    sizes: Sizes
    compile_backend: str
    folder: Path  # scratch files (HDF5 data, checkpoints)
    report: dict[str, Any]
    data: dict[str, VideoArrays] = field(default_factory=dict)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


# ------------------------------------------------------------------------------------------
# Small helpers


def free_memory(device: torch.device) -> None:
    """Drop what earlier items left, so that the next peak is the next item's own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reset_peak_memory(device: torch.device) -> None:
    """Start measuring the peak memory (`peak_memory`) afresh."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:  # Linux: writing 5 to clear_refs resets VmHWM to the current resident set
        with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")


def peak_memory(device: torch.device) -> int:
    """Bytes: CUDA's peak allocation, or the process's peak resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return memory_status("VmHWM")


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TensorFloat-32 on (as training runs) or off (exact fp32) inside, restored after."""
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    set_tf32(enabled)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


def prepare(module: nn.Module, acceleration: Acceleration, backend: str) -> nn.Module:
    """`module` as training runs it: compiled by `Acceleration.prepare` when it asks for it and
    the backend is inductor (torch's default); another backend (--smoke: no code generation)
    goes through the same torch.compile."""
    if acceleration.compile and backend != "inductor":
        return torch.compile(module, backend=backend)
    return acceleration.prepare(module)


def time_calls(call: Callable[[], Any], device: torch.device, clock: Clock, warmup: int,
               repeats: int) -> dict[str, Any]:
    """Median seconds of `repeats` calls after `warmup` untimed ones; fewer timed calls (at
    least 1) when the next would end past the clock's deadline."""
    for _ in range(warmup):
        clock.check()
        call()
    synchronize(device)
    times: list[float] = []
    while len(times) < repeats:
        if times and clock.left() < times[-1]:
            break
        clock.check()
        begin = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - begin)
    return {"median_s": statistics.median(times), "timed": len(times), "warmup": warmup,
            "cut_short": len(times) < repeats}


def max_difference(first: Tensor, second: Tensor) -> float:
    """max |first − second| / max(1, max |second|): absolute for values up to 1, relative for
    larger ones (sums of many terms, such as the bias tables' gradients)."""
    first, second = first.detach().double().cpu(), second.detach().double().cpu()
    scale = max(1.0, second.abs().max().item()) if second.numel() else 1.0
    return (first - second).abs().max().item() / scale if first.numel() else 0.0


def state_difference(first: dict[str, Tensor], second: dict[str, Tensor]) -> float:
    """Largest absolute difference between two state dicts with the same tensors."""
    return max((first[k].detach().double().cpu() - second[k].detach().double().cpu()).abs()
               .max().item() for k in second if second[k].numel())


def result(difference: float, tolerance: float, measure: str, **details: Any) -> dict[str, Any]:
    """A check's entry: passed when the difference is at most the tolerance."""
    return {"passed": bool(difference <= tolerance), "difference": difference,
            "tolerance": tolerance, "measure": measure, "status": "ran", **details}


def loss_and_gradients(model: nn.Module, loss: Callable[[nn.Module], Tensor],
                       autocast: contextlib.AbstractContextManager) -> tuple[float, int]:
    """One forward and backward: the loss, and how many gradient elements are not finite."""
    model.zero_grad(set_to_none=True)
    with autocast:
        value = loss(model)
    value.backward()
    nonfinite = sum(int((~torch.isfinite(p.grad)).sum()) for p in model.parameters()
                    if p.grad is not None)
    return value.item(), nonfinite


def transformer_loss(config: TransformerConfig, batch: int,
                     device: torch.device) -> Callable[[nn.Module], Tensor]:
    """The training loss of a fixed batch of random clips (one random slice each)."""
    context, target, ignore, index = (t.to(device) for t in transformer_batch(config, batch, 1))
    return lambda model: vt.slice_loss(model(context, target, index), target, ignore)


def vqvae_loss(batch: int, device: torch.device) -> Callable[[nn.Module], Tensor]:
    """The training loss (reconstruction + commitment) of a fixed batch of random images."""
    images = images_batch(batch, seed=1).to(device)
    return lambda model: model(images).loss


def seeded(make: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    """A model made right after seeding torch: the same initial weights in every comparison."""
    torch.manual_seed(seed)
    return make()


# ------------------------------------------------------------------------------------------
# Part 1: correctness checks


def check_samplers(run: Run) -> dict[str, dict[str, Any]]:
    """Fast and plain samplers, fp32, on the device, with equal generators on the device."""
    results = {}
    for name, (kernel, stride, block) in SAMPLER_VARIANTS.items():
        config = TransformerConfig(**run.sizes.sampler_model, kernel=kernel, stride=stride,
                                   encoder_block=block, decoder_block=block)
        model = seeded(lambda config=config: LatentVideoTransformer(config)).eval()
        with torch.no_grad():  # biases and relative tables non-zero, as after training
            for parameter in model.parameters():
                parameter.add_(0.3 * torch.randn_like(parameter))
        model.to(run.device)
        prime = torch.randint(0, config.codebook_size, (2, config.codebooks, 16, 8, 8),
                              generator=torch.Generator().manual_seed(1)).to(run.device)
        samples, logits = [], []
        for sampler in (sample_codes, sample_codes_fast):
            logits.append(recorded_logits(model))
            samples.append(sampler(model, prime, run.sizes.sampler_prime,
                                   generator=torch.Generator(run.device).manual_seed(3)))
        differing = int((samples[0] != samples[1]).sum())
        results[f"sampler_fast_equals_plain_{name}"] = result(
            differing, 0, "codes that differ between the fast and the plain sampler",
            codes=samples[0].numel(),
            logits_max_difference=max_difference(torch.cat(logits[1]), torch.cat(logits[0])),
            logits_note="every draw's logits, in order: float rounding while the codes agree; "
                        "after a near-tie drew differently, the rest of that clip differs too")
    return results


def recorded_logits(model: LatentVideoTransformer) -> list[Tensor]:
    """Make the model's channel predictor append every codebook's logits to the returned list
    (the samplers draw each codebook from one such call)."""
    calls: list[Tensor] = []
    predictor = model.predictor
    logits_of = type(predictor).codebook_logits

    def recording(hidden: Tensor, previous: Tensor, k: int) -> Tensor:
        logits = logits_of(predictor, hidden, previous, k)
        calls.append(logits)
        return logits

    predictor.codebook_logits = recording
    return calls


def check_logits(run: Run) -> dict[str, dict[str, Any]]:
    """Teacher-forced logits of the same model and batch on the CPU and on the device."""
    config = run.sizes.transformer
    model = seeded(lambda: LatentVideoTransformer(config)).eval()
    logits = []
    with torch.no_grad():
        for device in (torch.device("cpu"), run.device):
            context, target, _, index = (t.to(device) for t in
                                         transformer_batch(config, run.sizes.logits_batch, 1))
            logits.append(torch.cat(model.to(device)(context, target, index), 1).cpu())
    return {"logits_cpu_vs_device": result(
        max_difference(logits[1], logits[0]), 1e-3, "max |device − CPU| of the logits",
        compared_with_itself=not run.cuda)}


def training_cases(run: Run) -> dict[str, tuple[Callable[[], nn.Module], Callable[[], Tensor]]]:
    """Per model to check, a maker of it and the loss of one fixed training batch."""
    sizes, device = run.sizes, run.device
    return {
        "transformer": (lambda: LatentVideoTransformer(sizes.transformer),
                        transformer_loss(sizes.transformer, sizes.check_batch, device)),
        "vqvae": (lambda: VQVAE(sizes.vqvae), vqvae_loss(sizes.vqvae_check_batch, device)),
    }


def check_bf16(run: Run) -> dict[str, dict[str, Any]]:
    """One training step's loss in fp32 and under bf16 autocast, from the same weights."""
    device = run.device
    results = {}
    for name, (make, loss) in training_cases(run).items():
        model = seeded(make).to(device).train()
        values, nonfinite = [], 0
        for autocast in (PLAIN, Acceleration(torch.bfloat16)):  # copies: the VQ-VAE's EMA moves
            value, bad = loss_and_gradients(copy.deepcopy(model), loss, autocast.autocast(device))
            values.append(value)
            nonfinite += bad
        relative = abs(values[1] - values[0]) / abs(values[0])
        entry = result(relative, 0.01, "|bf16 − fp32| / |fp32| of the loss; fails too if a "
                       "gradient is not finite", loss_fp32=values[0], loss_bf16=values[1],
                       nonfinite_gradients=nonfinite)
        entry["passed"] = entry["passed"] and nonfinite == 0
        results[f"bf16_loss_{name}"] = entry
        del model
        free_memory(device)
    return results


def explicit_attention(layer: BlockLocalAttention, x: Tensor) -> Tensor:
    """The layer's attention written out: softmax(q·kᵀ/√DA + bias)·v over materialised scores."""
    norm = layer.norm
    tokens = vt.to_blocks(F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps),
                          layer.block)
    q, k, v = (torch.einsum("nld,hde->nhle", tokens, weight)
               for weight in (layer.query, layer.key, layer.value))
    scores = q @ k.transpose(2, 3) / math.sqrt(q.shape[-1]) + layer.attention_bias()
    heads = torch.softmax(scores, dim=-1) @ v
    return vt.from_blocks(layer.output(heads.transpose(1, 2).flatten(2)), layer.block, x.shape)


def check_attention(run: Run) -> dict[str, dict[str, Any]]:
    """Block-local attention (fused kernels; the CPU's own backward) against explicit attention:
    the output and the gradients of the input and of every parameter, bias tables included."""
    config, device = run.sizes.transformer, run.device
    results = {}
    for name, block, causal in (("encoder", config.encoder_block, False),
                                ("decoder", config.decoder_block, True)):
        layer = seeded(lambda block=block, causal=causal: BlockLocalAttention(config, block,
                                                                              causal)).to(device)
        with torch.no_grad():
            for table in (layer.bias_t, layer.bias_h, layer.bias_w):
                table.normal_()
        generator = torch.Generator().manual_seed(2)
        shape = (run.sizes.check_batch, *block, config.model_dim)
        x = torch.randn(shape, generator=generator).to(device).requires_grad_()
        grad_output = torch.randn(shape, generator=generator).to(device)
        names = ["input", *(n for n, _ in layer.named_parameters())]
        inputs = [x, *layer.parameters()]
        outputs = []
        for attention in (layer, lambda x, layer=layer: explicit_attention(layer, x)):
            out = attention(x)
            outputs.append([out, *torch.autograd.grad(out, inputs, grad_output)])
        differences = {label: max_difference(ours, explicit) for label, ours, explicit
                       in zip(["output", *names], *outputs, strict=True)}
        results[f"attention_bias_{name}"] = result(
            max(differences.values()), 1e-3, "max over the output and every gradient of "
            "max |fused − explicit| / max(1, max |explicit|)", each=differences, causal=causal)
        del layer, outputs
        free_memory(device)
    return results


def pipeline_loop(kind: str, **changes: Any) -> LoopSettings:
    """The loop settings a training stage makes of the schema's `<kind>.train` defaults
    (precision auto, no compile), with seed 1 and `changes`."""
    return from_section(LoopSettings, {**validate({})[kind]["train"], "seed": 1, **changes})


def resume_task(run: Run, kind: str, device: torch.device) -> TransformerTraining | VQVAETraining:
    """A training task as the stages make it (pipeline defaults: precision auto, fused Adam on
    CUDA), seeded, on `device`, reading the synthetic HDF5 data."""
    distributed = Distributed(rank=0, world_size=1, device=device)
    torch.manual_seed(0)
    if kind == "transformer":
        model = LatentVideoTransformer(run.sizes.resume_transformer)
        return TransformerTraining(model, run.data["codes"],
                                   pipeline_loop(kind, batch_size=run.sizes.resume_batch),
                                   PAPER_CLIP,
                                   from_section(RMSpropSettings, _TRANSFORMER_TRAIN), distributed)
    return VQVAETraining(VQVAE(run.sizes.vqvae), run.data["frames"],
                         pipeline_loop(kind, batch_size=run.sizes.vqvae_check_batch),
                         AdamSettings(**PAPER_ADAM, fused_adam=True), distributed)


def train_steps(run: Run, kind: str, steps: int,
                state_dir: Path) -> TransformerTraining | VQVAETraining:
    """Train a fresh task to `steps` with the training loop, resuming from `state_dir`."""
    task = resume_task(run, kind, run.device)
    train(task, pipeline_loop(kind, steps=steps, checkpoint_every=4, log_every=4), state_dir,
          "gpu-benchmark", log, Distributed(rank=0, world_size=1, device=run.device))
    return task


def check_resume(run: Run) -> dict[str, dict[str, Any]]:
    """4 steps, a checkpoint and 4 more steps in a new task against 8 steps uninterrupted, with
    deterministic algorithms; then the checkpoint loaded into a CPU task."""
    results: dict[str, dict[str, Any]] = {}
    for kind in ("transformer", "vqvae"):
        folder = run.folder / f"resume-{kind}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.use_deterministic_algorithms(True, warn_only=True)
            try:
                whole = train_steps(run, kind, 8, folder / "whole")
                train_steps(run, kind, 4, folder / "parts")
                resumed = train_steps(run, kind, 8, folder / "parts")
            finally:
                torch.use_deterministic_algorithms(False)
        nondeterministic = sorted({str(w.message).split("\n")[0] for w in caught
                                   if "deterministic" in str(w.message)})
        results[f"resume_{kind}"] = result(
            state_difference(resumed.model.state_dict(), whole.model.state_dict()), 0.0,
            "max |resumed − uninterrupted| of the weights and buffers after 8 steps",
            nondeterministic_ops=nondeterministic)
        if kind == "transformer":
            state = read_payload(folder / "parts" / checkpoint_name(8), "training checkpoint")
            on_cpu = resume_task(run, kind, torch.device("cpu"))
            on_cpu.load_state_dict(state["task"])
            results["checkpoint_loads_on_cpu"] = result(
                state_difference(on_cpu.model.state_dict(), resumed.model.state_dict()), 0.0,
                "max |CPU − device| of the weights loaded from the device's checkpoint",
                cuda_random_state_saved="cuda" in state["random"])
        del whole, resumed
        free_memory(run.device)
    return results


def check_process_group(run: Run) -> dict[str, dict[str, Any]]:
    """A 1-process group: an all-reduce, and the VQ-VAE's EMA update (which all-reduces its
    statistics whenever a group exists) against the same update without a group."""
    device = run.device
    backend = "nccl" if run.cuda else "gloo"
    model = seeded(lambda: VQVAE(run.sizes.vqvae)).to(device).train()
    alone = copy.deepcopy(model)
    images = images_batch(run.sizes.vqvae_check_batch, seed=1).to(device)
    with torch.no_grad():
        alone(images)
    store = dist.FileStore(str(run.folder / "process-group-store"), 1)
    dist.init_process_group(backend, store=store, rank=0, world_size=1,
                            timeout=datetime.timedelta(seconds=120),
                            device_id=device if run.cuda else None)
    try:
        values = torch.arange(1.0, 5.0, device=device)
        reduced = values.clone()
        dist.all_reduce(reduced)
        with torch.no_grad():
            model(images)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return {
        "process_group_all_reduce": result(
            max_difference(reduced, values), 0.0, "max |all-reduced − original| over 1 rank",
            backend=backend),
        "process_group_vqvae_ema": result(
            state_difference(model.state_dict(), alone.state_dict()), 0.0,
            "max |with group − without| of the VQ-VAE's weights and EMA codebooks after one "
            "update", backend=backend),
    }


def check_compile(run: Run) -> dict[str, dict[str, Any]]:
    """One training step's loss eager and compiled (fp32), from the same weights."""
    device = run.device
    results = {}
    for name, (make, loss) in training_cases(run).items():
        model = seeded(make).to(device).train()
        eager, _ = loss_and_gradients(copy.deepcopy(model), loss, contextlib.nullcontext())
        compiled = prepare(copy.deepcopy(model), Acceleration(compile=True), run.compile_backend)
        value, nonfinite = loss_and_gradients(compiled, loss, contextlib.nullcontext())
        entry = result(abs(value - eager), 1e-3, "|compiled − eager| of the loss (fp32)",
                       loss_eager=eager, loss_compiled=value, nonfinite_gradients=nonfinite,
                       backend=run.compile_backend)
        entry["passed"] = entry["passed"] and nonfinite == 0
        results[f"compile_loss_{name}"] = entry
        del model, compiled
        torch._dynamo.reset()
        free_memory(device)
    return results


CHECK_GROUPS: tuple[Callable[[Run], dict[str, dict[str, Any]]], ...] = (
    check_samplers, check_logits, check_bf16, check_attention, check_resume,
    check_process_group, check_compile,
)
CHECK_NAMES = {  # the entries each group fills, for the report of a group that failed
    check_samplers: [c for c in CHECKS if c.startswith("sampler_")],
    check_logits: ["logits_cpu_vs_device"],
    check_bf16: ["bf16_loss_transformer", "bf16_loss_vqvae"],
    check_attention: ["attention_bias_encoder", "attention_bias_decoder"],
    check_resume: ["resume_transformer", "resume_vqvae", "checkpoint_loads_on_cpu"],
    check_process_group: ["process_group_all_reduce", "process_group_vqvae_ema"],
    check_compile: ["compile_loss_transformer", "compile_loss_vqvae"],
}


def part_checks(run: Run, clock: Clock) -> None:
    """Every group of checks in turn, fp32 without TF32; a group that fails marks its checks
    failed with the error, and the next group runs."""
    checks = run.report["checks"]
    seconds = run.report["check_seconds"] = {}
    with tf32(False):
        for group in CHECK_GROUPS:
            clock.check()
            name = group.__name__.removeprefix("check_")
            log.warning("check: %s", name)
            begin = time.monotonic()
            try:
                checks.update(group(run))
            except Exception as error:  # recorded; the next group runs
                for check in CHECK_NAMES[group]:
                    if checks[check]["status"] != "ran":
                        checks[check].update(passed=False, status=f"error: {error!r}")
                run.report.setdefault("errors", []).append(traceback.format_exc())
            seconds[name] = time.monotonic() - begin
            free_memory(run.device)


# ------------------------------------------------------------------------------------------
# Parts 2 and 3: training steps


def model_step(run: Run, kind: str, reference: bool, batch: int,
               acceleration: Acceleration) -> Callable[[], float]:
    """A step of the model alone on a fixed batch (no data loading): the reference-style model
    with the benchmark's optimisers, or ours with the pipeline's."""
    device = run.device
    if kind == "transformer":
        config = run.sizes.transformer
        model = seeded(lambda: (ReferenceVideoTransformer if reference else LatentVideoTransformer)(
            config)).to(device).train()
        optimizers: list[torch.optim.Optimizer] = [vt.optimizer(model, **PAPER_RMSPROP)]
        loss = transformer_loss(config, batch, device)
    else:
        model = seeded(lambda: (ReferenceVQVAE if reference else VQVAE)(run.sizes.vqvae))
        model.to(device).train()
        images = images_batch(batch, seed=1).to(device)
        if reference:
            optimizers = [torch.optim.Adam(part.parameters(), **PAPER_ADAM)
                          for part in (model.net_e, model.net_g)]
            loss = lambda network: network(images)  # noqa: E731 (the reference returns the loss)
        else:
            optimizers = list(vqvae.optimizers(model, **PAPER_ADAM, fused=run.cuda).values())
            loss = lambda network: network(images).loss  # noqa: E731
    network = prepare(model, acceleration, run.compile_backend)
    return optimisation_step(lambda: loss(network), optimizers, acceleration.autocast(device))


def count_flops(step: Callable[[], float]) -> int:
    """FLOPs of one step as FlopCounterMode counts them (matrix products, convolutions and
    attention; on the CPU without the fused attention kernel's forward)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def time_variant(run: Run, clock: Clock, label: str, make: Callable[[], Callable[[], Any]],
                 tf32_on: bool, flops: int | None = None) -> dict[str, Any]:
    """Build a step in a clean state, time it, and return its row (with its peak memory)."""
    free_memory(run.device)
    reset_peak_memory(run.device)
    with tf32(tf32_on):
        step = make()
        timing = time_calls(step, run.device, clock, run.sizes.warmup, run.sizes.repeats)
    row = {"variant": label, **timing, "steps_per_s": 1 / timing["median_s"],
           "peak_memory_bytes": peak_memory(run.device), "tf32": tf32_on and run.cuda}
    if flops:
        row.update(gflop_per_step=flops / 1e9, tflop_per_s=flops / timing["median_s"] / 1e12)
    log.warning("  %-34s %8.3f steps/s", label, row["steps_per_s"])
    return row


def flops_of(run: Run, kind: str, reference: bool, batch: int) -> int | None:
    """The FLOPs of one eager fp32 step of a model (the same for its bf16 variants)."""
    try:
        with tf32(False):
            return count_flops(model_step(run, kind, reference, batch, PLAIN))
    except Exception:  # the count is a bonus: a step it cannot follow still gets timed
        run.report.setdefault("errors", []).append(traceback.format_exc())
        return None
    finally:
        free_memory(run.device)


def add_row(rows: list[dict[str, Any]], row: dict[str, Any], steps: int) -> None:
    """Append a timing row with its ratio to the reference (the first row) and its projection."""
    if rows and rows[0]["variant"].startswith("reference"):
        row["vs_reference"] = rows[0]["median_s"] / row["median_s"]
    row[f"projected_hours_{steps // 1000}k"] = row["median_s"] * steps / 3600
    rows.append(row)


def timed_rows(run: Run, clock: Clock, rows: list[dict[str, Any]], steps: int,
               variants: Sequence[tuple[str, Callable[[], Callable[[], Any]], bool, int | None]]
               ) -> None:
    """Time each variant into `rows`; one that fails is recorded and the next one runs."""
    for label, make, tf32_on, flops in variants:
        clock.check()
        try:
            add_row(rows, time_variant(run, clock, label, make, tf32_on, flops), steps)
        except Exception as error:
            rows.append({"variant": label, "error": repr(error)})
            run.report.setdefault("errors", []).append(traceback.format_exc())
        finally:
            torch._dynamo.reset()


def loader_rate(run: Run, clock: Clock, load: Callable[[], Tensor], items: int,
                consumed_per_s: float | None) -> dict[str, Any]:
    """Items per second a loader delivers to the device, against what the step consumes."""
    timing = time_calls(load, run.device, clock, run.sizes.warmup, run.sizes.repeats)
    rate = items / timing["median_s"]
    return {**timing, "items_per_s": rate, "consumed_per_s": consumed_per_s,
            "keeps_up": None if consumed_per_s is None else rate >= consumed_per_s}


def fastest(rows: list[dict[str, Any]], prefix: str = "ours") -> dict[str, Any] | None:
    """The fastest timed row whose variant starts with `prefix`."""
    timed = [row for row in rows if row["variant"].startswith(prefix) and "median_s" in row]
    return min(timed, key=lambda row: row["median_s"]) if timed else None


def part_transformer_training(run: Run, clock: Clock) -> None:
    """DSFVT steps: reference, ours in fp32 and bf16, the pipeline's step and its loader, and
    last (its compile may take long) bf16 + compile."""
    batch, config = run.sizes.train_batch, run.sizes.transformer
    section = run.report["timings"]["transformer_training"] = {
        "model": "DSFVT" if config == PAPER_TRANSFORMER else asdict(config), "batch": batch,
        "rows": [], "note": "model rows: the model alone on a fixed batch; pipeline row: "
                            "TransformerTraining.step, clips read from HDF5"}
    rows = section["rows"]
    ours_flops = flops_of(run, "transformer", False, batch)
    bf16 = torch.bfloat16

    def ours(acceleration: Acceleration) -> Callable[[], Callable[[], float]]:
        return lambda: model_step(run, "transformer", False, batch, acceleration)

    timed_rows(run, clock, rows, TRANSFORMER_STEPS, [
        ("reference fp32 eager", lambda: model_step(run, "transformer", True, batch, PLAIN),
         False, flops_of(run, "transformer", True, batch)),
        ("ours fp32", ours(PLAIN), True, ours_flops),
        ("ours bf16", ours(Acceleration(bf16)), True, ours_flops),
    ])
    tasks: list[TransformerTraining] = []

    def pipeline_step() -> Callable[[], Any]:
        model = seeded(lambda: LatentVideoTransformer(config))
        tasks[:] = [TransformerTraining(
            model, run.data["codes"], pipeline_loop("transformer", batch_size=batch),
            PAPER_CLIP, from_section(RMSpropSettings, _TRANSFORMER_TRAIN),
            Distributed(rank=0, world_size=1, device=run.device))]
        return tasks[0].step

    timed_rows(run, clock, rows, TRANSFORMER_STEPS,
               [("pipeline step (precision auto)", pipeline_step, True, ours_flops)])
    if tasks:
        clock.check()
        best = fastest(rows)
        section["loader"] = {**loader_rate(run, clock, tasks[0].clips, batch,
                                           batch * best["steps_per_s"] if best else None),
                             "unit": "clips"}
        tasks.clear()
    timed_rows(run, clock, rows, TRANSFORMER_STEPS,  # last: the compile may take long
               [("ours bf16 + compile", ours(Acceleration(bf16, compile=True)), True, ours_flops)])
    if "loader" in section and (best := fastest(rows)):
        consumed = section["loader"]["consumed_per_s"] = batch * best["steps_per_s"]
        section["loader"]["keeps_up"] = section["loader"]["items_per_s"] >= consumed


def vqvae_rows(run: Run, clock: Clock, batch: int, entry: dict[str, Any]) -> None:
    """Fill `entry` with the VQ-VAE's rows at one batch, and its loader's rate (random frames
    read as the task reads them)."""
    rows = entry["rows"]
    frames, device = run.data["frames"], run.device
    loop = pipeline_loop("vqvae", batch_size=batch)
    auto = Acceleration.from_settings(loop, device)

    def pipeline_step() -> Callable[[], Any]:
        task = VQVAETraining(seeded(lambda: VQVAE(run.sizes.vqvae)), frames, loop,
                             AdamSettings(**PAPER_ADAM, fused_adam=True), Distributed(0, 1, device))
        return task.step

    timed_rows(run, clock, rows, VQVAE_STEPS, [
        ("reference fp32 eager", lambda: model_step(run, "vqvae", True, batch, PLAIN), False,
         None),
        ("ours (precision auto)", lambda: model_step(run, "vqvae", False, batch, auto), True,
         None),
        ("pipeline step (precision auto)", pipeline_step, True, None),
    ])
    clock.check()
    generator = torch.Generator().manual_seed(0)

    def load() -> Tensor:
        indices = torch.randint(frames.num_items, (batch,), generator=generator)
        return frames_to_images(frames.items(indices.numpy()), device)

    best = fastest(rows)
    entry["loader"] = {**loader_rate(run, clock, load, batch,
                                     batch * best["steps_per_s"] if best else None),
                       "unit": "frames"}


def part_vqvae_training(run: Run, clock: Clock) -> None:
    """VQ-VAE steps and loader at each of the batches."""
    batches: dict[str, Any] = {}
    run.report["timings"]["vqvae_training"] = {"batches": batches}
    for batch in run.sizes.vqvae_batches:
        batches[str(batch)] = {"rows": []}
        vqvae_rows(run, clock, batch, batches[str(batch)])


# ------------------------------------------------------------------------------------------
# Parts 4 to 6: sampling, I3D, extract_codes


def part_sampling(run: Run, clock: Clock) -> None:
    """The fast sampler at growing batches, until memory runs out, projected to the protocol."""
    config = run.sizes.transformer
    shape = (CLIP_FRAMES, CODE_SIZE, CODE_SIZE)
    plan = sampling_plan(config, shape, N_PRIME)
    positions = sum(len(p) for _, _, p in plan)
    rows: list[dict[str, Any]] = []
    run.report["timings"]["sampling"] = {
        "rows": rows, "positions_per_video": positions, "encoder_calls_per_video": len(plan),
        "note": f"{run.sizes.sampling_positions} positions of slice 1 timed after 2, projected"}
    model = seeded(lambda: LatentVideoTransformer(config)).to(run.device).eval()
    for batch in run.sizes.sampling_batches:  # the stages' default precision: fp32, no TF32
        clock.check()
        free_memory(run.device)
        reset_peak_memory(run.device)
        try:
            video = torch.randint(config.codebook_size, (batch, config.codebooks, *shape),
                                  device=run.device)
            with torch.no_grad():
                encoder = time_encoder(model, video)
                seconds, count = time_positions(sample_codes_fast, model, video, 2,
                                                run.sizes.sampling_positions)
        except torch.OutOfMemoryError:
            rows.append({"batch": batch, "error": "out of memory"})
            break
        except Exception as error:
            rows.append({"batch": batch, "error": repr(error)})
            run.report.setdefault("errors", []).append(traceback.format_exc())
            continue
        per_batch = seconds / count * positions + encoder * len(plan)
        rows.append({
            "batch": batch, "ms_per_position": 1e3 * seconds / count, "encoder_s": encoder,
            "s_per_video": per_batch / batch,
            "protocol_minutes": math.ceil(PROTOCOL_CLIPS / batch) * per_batch / 60,
            "peak_memory_bytes": peak_memory(run.device)})
        log.warning("  batch %5d: %.4f s per video", batch, per_batch / batch)
        del video


def part_i3d(run: Run, clock: Clock) -> None:
    """I3D embeddings of 16-frame clips at each batch, projected to FVD's clips."""
    rows: list[dict[str, Any]] = []
    run.report["timings"]["i3d"] = {"rows": rows, "frames": CLIP_FRAMES, "resolution": 224,
                                    "note": "random weights; uint8 64x64 clips resized on the "
                                            "device, as lvt.fvd.i3d_embeddings runs them"}
    model = seeded(I3D).to(run.device).eval().requires_grad_(False)
    videos = np.random.default_rng(0).integers(
        0, 256, (max(run.sizes.i3d_batches), CLIP_FRAMES, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for batch in run.sizes.i3d_batches:
        clock.check()
        free_memory(run.device)
        reset_peak_memory(run.device)
        try:
            timing = time_calls(lambda batch=batch: i3d_embeddings(videos[:batch], batch,
                                                                   model=model),
                                run.device, clock, run.sizes.i3d_warmup, run.sizes.repeats)
        except torch.OutOfMemoryError:
            rows.append({"batch": batch, "error": "out of memory"})
            break
        except Exception as error:
            rows.append({"batch": batch, "error": repr(error)})
            run.report.setdefault("errors", []).append(traceback.format_exc())
            continue
        rate = batch / timing["median_s"]
        rows.append({"batch": batch, **timing, "clips_per_s": rate,
                     "fvd_minutes": FVD_CLIPS / rate / 60,
                     "peak_memory_bytes": peak_memory(run.device)})
        log.warning("  batch %4d: %.2f clips/s", batch, rate)


def part_extract_codes(run: Run, clock: Clock) -> None:
    """The paper-size VQ-VAE encoding batches of HDF5 frames, as the extract_codes stage."""
    frames = run.data["frames"]
    model = seeded(lambda: VQVAE(run.sizes.vqvae)).to(run.device).eval()
    step = min(BATCH_FRAMES, frames.num_items)
    starts = iter(range(0, frames.num_items - step + 1, step))

    def encode() -> None:
        start = next(starts, 0)
        encode_frames(model, frames.items(np.arange(start, start + step)), run.device)

    timing = time_calls(encode, run.device, clock, run.sizes.warmup, run.sizes.repeats)
    rate = step / timing["median_s"]
    run.report["timings"]["extract_codes"] = {
        "batch_frames": step, **timing, "frames_per_s": rate,
        "bair_hours": BAIR_FRAMES / rate / 3600,
        "note": "HDF5 frames encoded as the extract_codes stage does (fp32, torch's default "
                "TF32 settings)"}
    log.warning("  %.0f frames/s", rate)


PART_FUNCTIONS: dict[str, Callable[[Run, Clock], None]] = {
    "checks": part_checks,
    "transformer_training": part_transformer_training,
    "vqvae_training": part_vqvae_training,
    "sampling": part_sampling,
    "i3d": part_i3d,
    "extract_codes": part_extract_codes,
}


# ------------------------------------------------------------------------------------------
# The run, its report and its table


def machine(device: torch.device) -> dict[str, Any]:
    """Where the figures come from: host, versions, CPU and GPU (a field that cannot be read
    is left out rather than stopping the run)."""
    info: dict[str, Any] = {
        "host": platform.node(), "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__,
        "cuda": torch.version.cuda, "cpu": cpu_name(), "cpus": available_cpus(),
        "threads": torch.get_num_threads(), "device": str(device),
    }
    if device.type != "cuda":
        return info
    properties = torch.cuda.get_device_properties(device)
    info.update(gpu=properties.name, gpu_memory_bytes=properties.total_memory,
                gpu_capability=f"{properties.major}.{properties.minor}",
                gpu_multiprocessors=properties.multi_processor_count,
                cudnn=torch.backends.cudnn.version())
    with contextlib.suppress(Exception):
        info["nccl"] = str(torch.cuda.nccl.version())
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    return info


def write_data(folder: Path, sizes: Sizes) -> dict[str, VideoArrays]:
    """Random uint8 frames and uint16 codes, one HDF5 file each, as the stages write them."""
    rng = np.random.default_rng(0)
    config = sizes.transformer
    with VideoArraysWriter(folder / "frames.h5", "frames") as frames, \
            VideoArraysWriter(folder / "codes.h5", "codes", dtype=np.uint16) as codes:
        for video in range(sizes.videos):
            frames.add(f"video{video}", rng.integers(
                0, 256, (sizes.video_frames, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8))
            codes.add(f"video{video}", rng.integers(
                0, config.codebook_size,
                (sizes.video_frames, config.codebooks, CODE_SIZE, CODE_SIZE), np.uint16))
    return {"frames": VideoArrays(folder / "frames.h5", "frames"),
            "codes": VideoArrays(folder / "codes.h5", "codes")}


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's goals against what was measured (only meaningful at paper size on a GPU)."""
    timings = report["timings"]
    found: list[dict[str, Any]] = []

    def goal(text: str, measured: float | None, met: Callable[[float], bool]) -> None:
        found.append({"goal": text, "measured": measured,
                      "met": None if measured is None else bool(met(measured))})

    rows = timings.get("transformer_training", {}).get("rows", [])
    best = fastest(rows)
    goal(f"DSFVT step ≥ {GOAL_SPEEDUP:g}× the reference (fastest of ours)",
         best.get("vs_reference") if best else None, lambda x: x >= GOAL_SPEEDUP)
    pipeline = fastest(rows, "pipeline")
    goal(f"600k DSFVT steps ≤ {GOAL_TRAINING_HOURS:g} h (pipeline step), hours",
         pipeline["projected_hours_600k"] if pipeline else None,
         lambda x: x <= GOAL_TRAINING_HOURS)
    sampled = [row["protocol_minutes"] for row in timings.get("sampling", {}).get("rows", [])
               if "protocol_minutes" in row]
    goal(f"BAIR protocol sampling ≤ {GOAL_PROTOCOL_MINUTES:g} min (best batch), minutes",
         min(sampled) if sampled else None, lambda x: x <= GOAL_PROTOCOL_MINUTES)
    loaders = [timings.get("transformer_training", {}).get("loader")]
    loaders += [b.get("loader") for b in
                timings.get("vqvae_training", {}).get("batches", {}).values()]
    ratios = [entry["items_per_s"] / entry["consumed_per_s"] for entry in loaders
              if entry and entry.get("consumed_per_s")]
    goal("the loaders deliver at least what the training steps consume (worst ratio)",
         min(ratios) if ratios else None, lambda x: x >= 1)
    return found


def number(value: Any, digits: int = 3) -> str:
    """A figure for the table: 3 significant digits, '-' when missing."""
    if value is None:
        return "-"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def table(report: dict[str, Any]) -> str:
    """The short printed summary of a report."""
    lines = [f"{report['machine'].get('gpu') or report['machine']['cpu']} "
             f"({report['machine']['device']}), torch {report['machine']['torch']}, "
             f"CUDA {report['machine']['cuda']}{', SMOKE SIZES' if report['smoke'] else ''}",
             "", "checks"]
    for name, check in report["checks"].items():
        verdict = {True: "pass", False: "FAIL", None: "----"}[check["passed"]]
        lines.append(f"  {verdict}  {name:34s} {number(check.get('difference'))} "
                     f"(tolerance {number(check.get('tolerance'))})"
                     + ("" if check["status"] == "ran" else f"  [{check['status'][:70]}]"))
    timings = report["timings"]
    sections = [("DSFVT training, batch " + str(timings.get("transformer_training", {})
                                                  .get("batch")),
                 timings.get("transformer_training", {}).get("rows", []), "600k")]
    for batch, entry in timings.get("vqvae_training", {}).get("batches", {}).items():
        sections.append((f"VQ-VAE training, batch {batch}", entry["rows"], "500k"))
    for title, rows, steps in sections:
        lines += ["", f"{title}: steps/s, ×reference, peak MiB, TFLOP/s, hours for {steps}"]
        for row in rows:
            lines.append(f"  {row['variant']:32s} " + (
                f"error: {row['error'][:60]}" if "error" in row else
                f"{number(row['steps_per_s']):>8s} {number(row.get('vs_reference')):>6s} "
                f"{row['peak_memory_bytes'] / 2**20:9.0f} {number(row.get('tflop_per_s')):>7s} "
                f"{number(row[f'projected_hours_{steps}']):>8s}"))
    loaders = [("DSFVT", timings.get("transformer_training", {}).get("loader"))]
    loaders += [(f"VQ-VAE batch {batch}", entry.get("loader")) for batch, entry in
                timings.get("vqvae_training", {}).get("batches", {}).items()]
    for name, loader in loaders:
        if loader:
            lines.append(f"  loader for {name}: {number(loader['items_per_s'])} {loader['unit']}"
                         f"/s, the step consumes {number(loader['consumed_per_s'])}/s")
    if rows := timings.get("sampling", {}).get("rows"):
        lines += ["", "fast sampling, 16 frames, 1 primed: batch, ms/position, s/video, "
                      "BAIR protocol minutes"]
        lines += [f"  {row['batch']:5d} " + (row["error"] if "error" in row else
                  f"{row['ms_per_position']:9.3f} {row['s_per_video']:9.4f} "
                  f"{row['protocol_minutes']:9.1f}") for row in rows]
    if rows := timings.get("i3d", {}).get("rows"):
        lines += ["", "I3D 224x224x16: batch, clips/s, minutes for FVD's 25,856 clips"]
        lines += [f"  {row['batch']:5d} " + (row["error"] if "error" in row else
                  f"{row['clips_per_s']:9.2f} {row['fvd_minutes']:9.1f}") for row in rows]
    if extract := timings.get("extract_codes"):
        lines += ["", f"extract_codes: {extract['frames_per_s']:.0f} frames/s, "
                      f"{extract['bair_hours']:.2f} h for BAIR's {BAIR_FRAMES:,} frames"]
    lines += ["", "goals"]
    for entry in report.get("goals", []):
        verdict = {True: "met", False: "NOT MET", None: "----"}[entry["met"]]
        lines.append(f"  {verdict:7s} {entry['goal']}: {number(entry['measured'])}")
    lines += ["", "parts"]
    for name, part in report["parts"].items():
        lines.append(f"  {name:22s} {part['status'][:60]:60s} "
                     f"{part.get('elapsed_s', 0):6.1f} of {part['budget_s']:6.1f} s")
    return "\n".join(lines)


def default_output(device: torch.device, smoke: bool) -> Path:
    """benchmarks/results/<date>-<device>.json, never over an earlier file."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ("-smoke" if smoke else "")
    folder = Path(__file__).resolve().parent / "results"
    now = datetime.datetime.now(datetime.UTC)
    path = folder / f"{now:%Y-%m-%d}-{slug}.json"
    return path if not path.exists() else folder / f"{now:%Y-%m-%d-%H%M%S}-{slug}.json"


def save(out: Path, report: dict[str, Any]) -> None:
    """Write the report atomically; a value JSON has no type for is written as its text."""
    write_json(out, json.loads(json.dumps(report, default=str)))


def run_parts(run: Run, parts: Sequence[str], budget_s: float, out: Path) -> None:
    """Each part with its share of what is left of the budget; the report is written after
    every part, so that a run killed from outside keeps what it had measured."""
    end = time.monotonic() + budget_s
    for index, name in enumerate(parts):
        weights = sum(PARTS[p] for p in parts[index:])
        share = max(0.0, end - time.monotonic()) * PARTS[name] / weights
        entry = run.report["parts"][name] = {"budget_s": share, "status": "running"}
        log.warning("part %s (%.0f s)", name, share)
        begin = time.monotonic()
        try:
            if share <= 0:
                raise BudgetSpent("budget spent before it started")
            with interrupt_after(share + max(15.0, 0.25 * share)):
                PART_FUNCTIONS[name](run, Clock(begin + share))
            entry["status"] = "done"
        except BudgetSpent as stop:
            entry["status"] = f"stopped: {stop}"
            torch._dynamo.reset()
        except Exception as error:  # recorded; the next part runs
            entry["status"] = f"error: {error!r}"
            run.report.setdefault("errors", []).append(traceback.format_exc())
        entry["elapsed_s"] = time.monotonic() - begin
        if name == "checks":
            for check in run.report["checks"].values():
                if check["status"] == "not run":
                    check["status"] = f"not run: the part {entry['status']}"
        run.report["goals"] = goals(run.report)
        save(out, run.report)
        free_memory(run.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                        help="auto: CUDA when present")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes: a check that the script runs, not a measurement")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="seconds for all parts together (default 480)")
    parser.add_argument("--out", type=Path, help="the JSON report (default: "
                        "benchmarks/results/<date>-<device>.json)")
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS),
                        help="run only these parts (in the usual order)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for torch (default: the CPUs this process may use; "
                             "--smoke: 1, the fastest for tiny models on a shared machine)")
    parser.add_argument("--compile-backend", default=None,
                        help="torch.compile backend (default: inductor; --smoke: eager)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is present")
    device = (torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda"
              else torch.device("cpu"))
    torch.set_num_threads(args.threads or (1 if args.smoke else available_cpus()))
    backend = args.compile_backend or ("eager" if args.smoke else "inductor")
    sizes = SMOKE if args.smoke else PAPER
    out = args.out or default_output(device, args.smoke)
    parts = [name for name in PARTS if name in args.parts]
    report: dict[str, Any] = {
        "script": "benchmarks/gpu.py", "arguments": sys.argv[1:], "smoke": args.smoke,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "budget_s": args.budget_s, "compile_backend": backend, "machine": machine(device),
        "parts": {}, "timings": {},
        "checks": {name: {"passed": None, "difference": None, "tolerance": None,
                          "status": "not run"} for name in CHECKS},
    }
    begin = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lvt-gpu-benchmark-") as scratch:
        run = Run(device, sizes, backend, Path(scratch), report)
        run.data = write_data(Path(scratch), sizes)
        run_parts(run, parts, args.budget_s - (time.monotonic() - begin), out)
        for arrays in run.data.values():
            arrays.close()
    report["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report["elapsed_s"] = time.monotonic() - begin
    save(out, report)
    print(table(report))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
