"""Transformer training task: random clips, one random subscale slice per clip, built into the
model's inputs and targets; and its held-out score, bits per code on fixed test clips.

As the authors' code at commit 0899c21 trains it (examples from `DatasetMapper`, RMSprop and
batch of configs/vt/DSFVT.yaml):
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/data/dataset_mapper.py
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lvt.data.dataset import VideoArrays
from lvt.errors import InputError
from lvt.inference import videos_long_enough
from lvt.likelihood import bits_per_code
from lvt.metrics import nats_to_bits
from lvt.models.transformer import (
    Abc,
    LatentVideoTransformer,
    TransformerConfig,
    optimizer,
    slice_context,
    slice_index,
    slice_loss,
    take_slice,
)
from lvt.tensors import to_device
from lvt.training.distributed import SINGLE_PROCESS, Distributed
from lvt.training.loop import LoopSettings
from lvt.training.placement import PlacedTask


@dataclass(frozen=True)
class ClipSettings:
    """What one training example is: `clip_frames` code frames of a video, the first `n_prime`
    of them priming frames, left out of the loss, played backwards with probability 1/2 when
    `reverse_time` is set (settings of `transformer.train`)."""

    clip_frames: int
    n_prime: int
    reverse_time: bool


@dataclass(frozen=True)
class RMSpropSettings:
    """The RMSprop optimiser's settings of `transformer.train` and its learning-rate schedule
    (the schema holds their defaults)."""

    lr: float
    alpha: float
    momentum: float
    eps: float
    lr_decay: float
    """Fraction of the last steps over which the learning rate falls linearly towards 0."""


def linear_decay(steps: int, decay: float) -> Callable[[int], float]:
    """Learning-rate factor before update `step` (0-based) of `steps`: 1, then falling linearly
    over the last `decay` share of the steps to 1/(decay·steps) at the last one; always 1 when
    `decay` is 0. A short decay at the end settles a constant-rate run's noisy final weights."""
    span = decay * steps

    def factor(step: int) -> float:
        return 1.0 if span == 0 else min(1.0, (steps - step) / span)

    return factor


def random_slices(
    batch: int,
    stride: Sequence[int],
    n_prime: int,
    generator: torch.Generator | None = None,
    frames: int | None = None,
) -> list[Abc]:
    """One uniformly random slice per example (`DatasetMapper` in dataset_mapper.py).

    When a slice is one whole frame (sh = sw = 1 and st = `frames`, the clip length; `frames`
    defaults to st), a is drawn from [n_prime, st − 1] so that no example is a priming frame.
    """
    st, sh, sw = stride
    whole_frame = sh == 1 and sw == 1 and (frames is None or frames == st)
    low = n_prime if whole_frame else 0
    if low >= st:
        raise ValueError(f"no slice to train on: n_prime {n_prime} with stride {tuple(stride)}")
    slices = []
    for _ in range(batch):
        a = int(torch.randint(low, st, (), generator=generator))
        b = int(torch.randint(0, sh, (), generator=generator))
        c = int(torch.randint(0, sw, (), generator=generator))
        slices.append((a, b, c))
    return slices


def training_batch(
    clips: Tensor, slices: Sequence[Sequence[int]], config: TransformerConfig, n_prime: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Build (context, target_slice, ignore_mask, slice_idx) with one slice per clip.

    ignore_mask (B, 1, t, h, w) marks slice positions in the clip's first `n_prime` frames.
    """
    if len(slices) != clips.shape[0]:
        raise ValueError(f"{len(slices)} slices for {clips.shape[0]} clips")
    frame = torch.arange(clips.shape[2], device=clips.device).view(1, 1, -1, 1, 1)
    priming = (frame < n_prime).expand(1, 1, *clips.shape[2:])
    contexts, targets, ignore = [], [], []
    for clip, abc in zip(clips.split(1), slices, strict=True):
        contexts.append(slice_context(clip, abc, config))
        targets.append(take_slice(clip, abc, config.stride))
        ignore.append(take_slice(priming, abc, config.stride))
    index = [slice_index(abc, config.stride) for abc in slices]
    return (
        torch.cat(contexts),
        torch.cat(targets),
        torch.cat(ignore),
        torch.tensor(index, dtype=torch.long, device=clips.device),
    )


class TransformerTraining(PlacedTask):
    """One step = `loop.batch_size` clips as `clip` sets them, each with one random slice, and
    one RMSprop step.

    A clip comes from a uniformly drawn video at a uniformly drawn start; videos shorter than
    a clip are left out (the reference rejected them one by one). The batch is the global
    batch: with several processes each draws the same clips and slices and trains on its share.
    The task trains on `distributed.device`; the default is one process on the CPU.
    """

    def __init__(
        self,
        model: LatentVideoTransformer,
        codes: VideoArrays,
        loop: LoopSettings,
        clip: ClipSettings,
        rmsprop: RMSpropSettings,
        distributed: Distributed = SINGLE_PROCESS,
    ) -> None:
        super().__init__(model, loop, distributed)
        self.optimizer = optimizer(self.model, lr=rmsprop.lr, alpha=rmsprop.alpha,
                                   momentum=rmsprop.momentum, eps=rmsprop.eps)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, linear_decay(loop.steps, rmsprop.lr_decay))
        self.codes = codes
        self.clip_frames = clip.clip_frames
        self.n_prime = clip.n_prime
        self.reverse_time = clip.reverse_time
        lengths = np.asarray(codes.lengths)
        self.videos = np.flatnonzero(lengths >= self.clip_frames)
        if not len(self.videos):
            raise InputError(
                f"{codes.path}: no video has the {self.clip_frames} frames a training clip "
                f"needs (longest: {lengths.max(initial=0)})"
            )
        self.max_start = lengths[self.videos] - self.clip_frames

    def clips(self) -> torch.Tensor:
        """This rank's share of a batch of random clips, (B, codebooks, T, H, W) int64 on the
        training device (pinned for the copy to a GPU)."""
        picks = torch.randint(len(self.videos), (self.batch_size,), generator=self.generator)
        offsets = torch.rand(self.batch_size, generator=self.generator)
        backwards = (torch.rand(self.batch_size, generator=self.generator) < 0.5
                     if self.reverse_time else torch.zeros(self.batch_size, dtype=torch.bool))
        picks, offsets, backwards = picks[self.share], offsets[self.share], backwards[self.share]
        batch = []
        for pick, offset, backward in zip(picks.tolist(), offsets.tolist(), backwards.tolist(),
                                          strict=True):
            start = int(offset * (self.max_start[pick] + 1))
            clip = self.codes.clip(int(self.videos[pick]), start, self.clip_frames)
            batch.append(clip[::-1] if backward else clip)
        clips = torch.from_numpy(np.stack(batch).astype(np.int64))
        return to_device(clips, self.device).permute(0, 2, 1, 3, 4)

    def step(self) -> dict[str, float]:
        clips = self.clips()
        slices = random_slices(
            self.batch_size, self.model.config.stride, self.n_prime, self.generator,
            frames=self.clip_frames,
        )[self.share]
        context, target, ignore, index = training_batch(
            clips, slices, self.model.config, self.n_prime
        )
        with self.acceleration.autocast(self.device):
            logits = self.network(context, target, index)
            loss = slice_loss(logits, target, ignore)
        weighted = self._weighted_by_positions(loss, ignore)
        self.optimizer.zero_grad(set_to_none=True)
        weighted.backward()
        self.optimizer.step()
        self.schedule.step()
        global_loss = self.distributed.mean(weighted.detach()).item()
        return {"loss": global_loss, "bits_per_code": nats_to_bits(global_loss)}

    def _weighted_by_positions(self, loss: torch.Tensor, ignore: torch.Tensor) -> torch.Tensor:
        """This rank's loss scaled so that the mean over ranks is the global batch's loss.

        slice_loss averages over the non-ignored positions of this rank's share; the global
        batch averages over all of them, so each rank's loss counts in proportion to its
        positions (exactly 1 with one process). A share of priming positions only has no loss
        (NaN): it counts as 0, and its gradients are zero.
        """
        positions = (~ignore).sum()
        weight = positions * self.distributed.world_size / self.distributed.sum(positions)
        return torch.where(positions > 0, loss * weight, 0.0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])


class HeldOutBits:
    """Teacher-forced bits per code (`lvt.likelihood.bits_per_code`, as the evaluate stage
    scores the test split) of a training task's model on the first `clip_frames` code frames of
    the first `videos` held-out videos long enough, `n_prime` leading frames left out as in
    training: the same clips at every evaluation, so the curve shows the model alone changing.

    A `lvt.training.loop.HeldOut`, evaluated every `every` steps: it runs the model without
    gradients and draws no random numbers, so training is the same with it as without. Its
    forward passes take the task's device, acceleration and batch size (the training batch
    fits).
    """

    names = ("held_out_bits_per_code",)

    def __init__(
        self, task: TransformerTraining, codes: VideoArrays, videos: int, every: int
    ) -> None:
        self.task = task
        self.codes = codes
        self.videos = videos_long_enough(codes, task.clip_frames, videos)
        if not self.videos:
            raise InputError(f"{codes.path}: no held-out video has the {task.clip_frames} frames "
                             "of a training clip (config key transformer.train.clip_frames)")
        self.every = every

    def __call__(self) -> dict[str, float]:
        task = self.task
        with task.acceleration.autocast(task.device):
            scores = bits_per_code(task.model, self.codes, task.clip_frames, task.n_prime,
                                   self.videos, task.device, task.batch_size)
        return {"held_out_bits_per_code": scores["bits_per_code"]}
