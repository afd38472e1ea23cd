"""Latent Video Transformer: VQ-VAE codes of video frames modelled by a subscale Video Transformer."""

__version__ = "0.1.0"
