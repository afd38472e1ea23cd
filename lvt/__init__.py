"""Latent Video Transformer: VQ-VAE codes of video frames, modelled by a subscale transformer."""

__version__ = "0.1.0"
