# Complete test videos from their priming frames.


rule sample:
    """Sample the frames after the priming ones; write PNGs, GIFs and the sampled codes."""
    input:
        vqvae=f"results/{RUN}/vqvae/model.pt",
        transformer=f"results/{RUN}/transformer/model.pt",
        codes=f"results/{RUN}/codes/test.h5",
        dataset=f"results/{RUN}/data/test.h5",
    output:
        samples=directory(f"results/{RUN}/samples"),
    params:
        settings=settings("sample"),
    log:
        f"results/{RUN}/logs/sample.log",
    benchmark:
        f"results/{RUN}/benchmarks/sample.tsv"
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
