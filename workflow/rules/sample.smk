# Complete test videos from their priming frames.


rule sample:
    """Sample the frames after the priming ones; write PNGs, GIFs and the sampled codes."""
    input:
        **MODELS_AND_TEST_CODES,
        dataset=TEST_DATASET,
    output:
        samples=directory(f"results/{RUN}/samples"),
    log:
        f"results/{RUN}/logs/sample.log",
    benchmark:
        f"results/{RUN}/benchmarks/sample.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        gpu=1,
    params:
        settings=settings("sample"),
    shell:
        "python -m lvt.stages.sample --settings {params.settings:q} --vqvae {input.vqvae:q}"
        " --transformer {input.transformer:q} --codes {input.codes:q} --dataset {input.dataset:q}"
        " --threads {threads} --out-dir {output.samples:q} > {log:q} 2>&1"


rule fvd_sample:
    """Target: every shard of the fvd protocol's samples."""
    input:
        fvd_sample_shards,
    localrule: True


rule fvd_sample_shard:
    """Sample one shard of the fvd protocol's clips (test videos x samples x trials), batched."""
    input:
        **MODELS_AND_TEST_CODES,
    output:
        samples=f"results/{RUN}/evaluation/samples/shard{{shard}}.h5",
    log:
        f"results/{RUN}/logs/fvd_sample/shard{{shard}}.log",
    benchmark:
        f"results/{RUN}/benchmarks/fvd_sample/shard{{shard}}.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=8000,
        gpu=1,
    params:
        settings=settings("fvd"),
    shell:
        "python -m lvt.stages.fvd_sample --settings {params.settings:q} --vqvae {input.vqvae:q}"
        " --transformer {input.transformer:q} --codes {input.codes:q} --shard {wildcards.shard:q}"
        " --threads {threads} --out {output.samples:q} > {log:q} 2>&1"
