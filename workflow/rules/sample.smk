# Complete test videos from their priming frames.


rule sample:
    """Sample the frames after the priming ones; write PNGs, GIFs and the sampled codes."""
    input:
        vqvae="results/{run}/vqvae/model.pt",
        transformer="results/{run}/transformer/model.pt",
        codes="results/{run}/codes/test.h5",
        dataset="results/{run}/data/test.h5",
    output:
        samples=directory("results/{run}/samples"),
    params:
        settings=settings("sample"),
    log:
        "results/{run}/logs/sample.log",
    benchmark:
        "results/{run}/benchmarks/sample.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        gpu=1,
    conda:
        ENV
    shell:
        "python -m lvt.stages.sample --settings {params.settings:q} --vqvae {input.vqvae}"
        " --transformer {input.transformer} --codes {input.codes} --dataset {input.dataset}"
        " --threads {threads} --out-dir {output.samples} > {log} 2>&1"
