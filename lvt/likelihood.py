"""Teacher-forced scores of both models on the test split.

- VQ-VAE: PSNR of the decoded test codes against the test frames (the tokenizer's ceiling).
- Transformer: bits per code as the reference's `BitsEvaluator` computes it (every slice run
  once with teacher forcing over the first `frames` frames of each test video, leading `n_prime`
  frames left out), next to the entropy of the unigram distribution of the same codes: a model
  that learnt nothing beyond code frequencies scores about that entropy.

Reference: `BitsEvaluator` in the authors' code at commit 0899c21, over the logits of
`calculate_logits_for_entire_video` (vidgen/modeling/meta_arch/vt.py):
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/evaluation/bits_evaluation.py
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lvt.data.dataset import VideoArrays
from lvt.inference import decode_codes
from lvt.metrics import entropy_bits, frame_psnr, nats_to_bits
from lvt.models.transformer import LatentVideoTransformer, whole_video_logits
from lvt.models.vqvae import VQVAE


def reconstruction_psnr(
    vqvae: VQVAE,
    frames: VideoArrays,
    codes: VideoArrays,
    device: torch.device,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Mean per-frame PSNR (dB) of every decoded test frame against the original."""
    psnr = []
    for start in range(0, frames.num_items, batch_size):
        indices = np.arange(start, min(start + batch_size, frames.num_items))
        decoded = decode_codes(vqvae, codes.items(indices).astype(np.int64), device)
        psnr.append(frame_psnr(frames.items(indices), decoded))
    values = np.concatenate(psnr)
    return {"psnr_db": float(values.mean()), "psnr_db_min": float(values.min()),
            "frames": int(values.size)}


@torch.no_grad()
def bits_per_code(
    transformer: LatentVideoTransformer,
    codes: VideoArrays,
    frames: int,
    n_prime: int,
    videos: list[int],
    device: torch.device,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Teacher-forced bits per code and the unigram entropy of the scored codes."""
    config = transformer.config
    counts = np.zeros((config.codebooks, config.codebook_size), dtype=np.int64)
    nats = 0.0
    for start in range(0, len(videos), batch_size):
        clips = np.stack([codes.clip(v, 0, frames) for v in videos[start:start + batch_size]])
        video = torch.from_numpy(clips.astype(np.int64)).permute(0, 2, 1, 3, 4).to(device)
        logits = whole_video_logits(transformer, video)
        scored = video[:, :, n_prime:]
        nats += F.cross_entropy(logits[:, :, :, n_prime:].transpose(1, 2), scored,
                                reduction="sum").item()
        for k in range(config.codebooks):
            counts[k] += np.bincount(scored[:, k].flatten().cpu().numpy(),
                                     minlength=config.codebook_size)
    n_codes = int(counts.sum())
    if not n_codes:
        raise ValueError("no codes to score: every video is shorter than the clip")
    entropies = [entropy_bits(row) for row in counts]
    bits = nats_to_bits(nats) / n_codes
    unigram = float(np.mean(entropies))
    return {
        "bits_per_code": bits,
        "unigram_entropy_bits": unigram,
        "unigram_entropy_bits_per_codebook": entropies,
        "bits_to_unigram_ratio": bits / unigram if unigram else float("inf"),
        "codes_scored": n_codes,
        "videos": len(videos),
        "clip_frames": frames,
        "n_prime": n_prime,
    }
