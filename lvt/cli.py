"""Command line entry point `lvt`.

Every subcommand is one `add_<name>_parser` function that registers its arguments and sets
`handler`, a function taking the parsed arguments and returning an exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lvt.checkpoints import file_sha256, save_model
from lvt.original import import_transformer, import_vqvae


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lvt", description="Latent Video Transformer tools")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_import_original_parser(subparsers)
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
