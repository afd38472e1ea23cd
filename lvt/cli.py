"""Command line entry point `lvt`.

Every subcommand is one `add_<name>_parser` function that registers its arguments and sets
`handler`, a function taking the parsed arguments and returning an exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from lvt.checkpoints import file_sha256, save_model
from lvt.config import LATENT_DOWNSAMPLING
from lvt.devices import available_cpus
from lvt.inference import check_models_fit, encode_frames, load_trained_models
from lvt.media import load_priming_frames, write_contact_sheet, write_sample
from lvt.original import import_transformer, import_vqvae
from lvt.samples import sample_and_decode


def import_original_vqvae(args: argparse.Namespace) -> int:
    """Convert the authors' netE/netG/netC files into one of our VQ-VAE files."""
    model, config = import_vqvae(args.netE, args.netG, args.netC)
    sources = {"netE": args.netE, "netG": args.netG, "netC": args.netC}
    digest = save_model(args.output, "vqvae", config, model, extra=_provenance(sources))
    print(f"wrote {args.output} (vqvae, sha256 {digest}): {config}")
    return 0


def import_original_transformer(args: argparse.Namespace) -> int:
    """Convert the authors' transformer netG file into one of our transformer files."""
    stride = tuple(args.stride) if args.stride else None
    model, config = import_transformer(args.netG, stride=stride)
    extra = _provenance({"netG": args.netG})
    digest = save_model(args.output, "transformer", config, model, extra=extra)
    print(f"wrote {args.output} (transformer, sha256 {digest}): {config}")
    return 0


def _provenance(sources: dict[str, str]) -> dict[str, dict[str, dict[str, str]]]:
    return {
        "imported_from": {
            role: {"path": path, "sha256": file_sha256(path)} for role, path in sources.items()
        }
    }


def add_import_original_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-original", help="convert checkpoints of the authors' code into our model files"
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    vqvae = kinds.add_parser("vqvae", help="VQ-VAE from netE, netG and netC files")
    vqvae.add_argument("--netE", required=True, help="encoder checkpoint (netE/model_*.pth)")
    vqvae.add_argument("--netG", required=True, help="decoder checkpoint (netG/model_*.pth)")
    vqvae.add_argument("--netC", required=True, help="codebook checkpoint (netC/model_*.pth)")
    vqvae.add_argument("-o", "--output", required=True, help="our model file to write")
    vqvae.set_defaults(handler=import_original_vqvae)
    transformer = kinds.add_parser("transformer", help="Video Transformer from its netG file")
    transformer.add_argument("--netG", required=True, help="transformer checkpoint")
    transformer.add_argument(
        "--stride",
        type=int,
        nargs=3,
        metavar=("T", "H", "W"),
        help="subscale stride; default: the known variant with the same context kernel",
    )
    transformer.add_argument("-o", "--output", required=True, help="our model file to write")
    transformer.set_defaults(handler=import_original_transformer)


def sample(args: argparse.Namespace) -> int:
    """Complete a video from its priming frames, as the reference's scripts/generate_videos.py;
    and a contact sheet of the source's frames above each sample's."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.threads)
    print(f"sampling on {device.type} with {args.threads} CPU thread(s)")
    models = load_trained_models(args.vqvae, args.transformer, device)
    latent = args.size // LATENT_DOWNSAMPLING
    check_models_fit(args.vqvae, models.vqvae_config, args.transformer, models.transformer_config,
                     (args.frames, latent, latent))
    source = load_priming_frames(args.prime, args.n_prime, args.size, at_most=args.frames)
    prime = source[:args.n_prime]
    prime_codes = torch.from_numpy(encode_frames(models.vqvae, prime, device)).to(device)
    prime_codes = prime_codes.permute(1, 0, 2, 3).unsqueeze(0).expand(args.samples, -1, -1, -1, -1)
    generator = torch.Generator(device).manual_seed(args.seed)
    _, videos = sample_and_decode(models, prime_codes, args.frames, args.temperature, generator)
    rows = [("source", source)]
    for k, video in enumerate(videos):
        write_sample(args.output / f"sample_{k}", video, args.n_prime, args.fps)
        rows.append((f"sample {k}", video))
    write_contact_sheet(args.output / "contact_sheet.png", [(args.prime.name, rows)],
                        args.n_prime)
    print(f"wrote {args.samples} sample(s) of {args.frames} frames and their contact sheet to "
          f"{args.output}")
    return 0


def add_sample_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample", help="complete a video from priming frames (a PNG folder or a video file)"
    )
    parser.add_argument("--vqvae", type=Path, required=True, help="our VQ-VAE model file")
    parser.add_argument("--transformer", type=Path, required=True,
                        help="our transformer model file")
    parser.add_argument("--prime", type=Path, required=True,
                        help="folder of PNG frames (0.png, 1.png, ...) or a video file")
    parser.add_argument("--n-prime", type=int, default=1, help="priming frames (BAIR 1, K600 5)")
    parser.add_argument("--frames", type=int, default=16, help="length of the completed video")
    parser.add_argument("--samples", type=int, default=1, help="completions to draw")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="frame size the models take")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate of the GIFs")
    parser.add_argument("--threads", type=int, default=available_cpus(),
                        help="CPU threads for torch (default: the CPUs this process may run on, "
                        "%(default)s here)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to write")
    parser.set_defaults(handler=sample)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvt", description="Latent Video Transformer tools")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_import_original_parser(subparsers)
    add_sample_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as err:
        print(f"lvt: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
