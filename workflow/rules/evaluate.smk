# Scores on the test split: VQ-VAE reconstruction PSNR and transformer bits per code (evaluate);
# FVD (fvd) and per-step PSNR/SSIM (frame_scores) of the fvd protocol's samples.


rule evaluate:
    """Reconstruction PSNR, bits per code against the codes' unigram entropy."""
    input:
        **MODELS_AND_TEST_CODES,
        dataset=TEST_DATASET,
    output:
        metrics=f"results/{RUN}/evaluation/metrics.json",
    log:
        f"results/{RUN}/logs/evaluate.log",
    benchmark:
        f"results/{RUN}/benchmarks/evaluate.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        gpu=1,
    params:
        settings=settings("evaluate", "transformer"),
    shell:
        "python -m lvt.stages.evaluate --settings {params.settings:q} --vqvae {input.vqvae:q}"
        " --transformer {input.transformer:q} --codes {input.codes:q} --dataset {input.dataset:q}"
        " --threads {threads} --out {output.metrics:q} > {log:q} 2>&1"


rule fvd:
    """FVD: samples vs real clips, samples vs VQ-VAE reconstructions, reconstructions vs real,
    copy-last-frame vs real."""
    input:
        **MODELS_AND_TEST_CODES,
        dataset=TEST_DATASET,
        samples=fvd_sample_shards,
    output:
        scores=f"results/{RUN}/evaluation/fvd.json",
    log:
        f"results/{RUN}/logs/fvd.log",
    benchmark:
        f"results/{RUN}/benchmarks/fvd.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=16000,
        gpu=1,
    params:
        settings=settings("fvd", "evaluate"),
    shell:
        "python -m lvt.stages.fvd --settings {params.settings:q} --vqvae {input.vqvae:q}"
        " --transformer {input.transformer:q} --codes {input.codes:q} --dataset {input.dataset:q}"
        " --samples {input.samples:q} --threads {threads} --out {output.scores:q} > {log:q} 2>&1"


rule frame_scores:
    """PSNR and SSIM of the predicted frames per time step: best of K samples and their mean,
    beside copy-last-frame and the VQ-VAE reconstruction."""
    input:
        **MODELS_AND_TEST_CODES,
        dataset=TEST_DATASET,
        samples=fvd_sample_shards,
    output:
        scores=f"results/{RUN}/evaluation/frame_scores.json",
    log:
        f"results/{RUN}/logs/frame_scores.log",
    benchmark:
        f"results/{RUN}/benchmarks/frame_scores.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=16000,
        gpu=1,
    params:
        settings=settings("fvd", "evaluate"),
    shell:
        "python -m lvt.stages.frame_scores --settings {params.settings:q}"
        " --vqvae {input.vqvae:q} --transformer {input.transformer:q} --codes {input.codes:q}"
        " --dataset {input.dataset:q} --samples {input.samples:q} --threads {threads}"
        " --out {output.scores:q} > {log:q} 2>&1"
