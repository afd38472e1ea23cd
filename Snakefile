# Latent Video Transformer: raw videos -> frames -> VQ-VAE -> codes -> transformer -> samples -> scores.
# `snakemake --cores 2` runs the demo in config.yaml; `--configfile presets/<name>.yaml` selects a
# paper setting. Every rule calls a thin stage module of the `lvt` package (python -m lvt.stages.*).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/sources.smk"
include: "workflow/rules/bair.smk"
include: "workflow/rules/kinetics.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/vqvae.smk"
include: "workflow/rules/transformer.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


onsuccess:
    print_run_summary()


onerror:
    print_run_summary()


rule all:
    default_target: True
    input:
        final_outputs(),
    localrule: True
