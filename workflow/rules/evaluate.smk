# Scores: VQ-VAE reconstruction quality and transformer bits per code on the test split.


rule evaluate:
    """Reconstruction PSNR, bits per code against the codes' unigram entropy, sample summary."""
    input:
        vqvae=f"results/{RUN}/vqvae/model.pt",
        transformer=f"results/{RUN}/transformer/model.pt",
        codes=f"results/{RUN}/codes/test.h5",
        dataset=f"results/{RUN}/data/test.h5",
        samples=f"results/{RUN}/samples",
    output:
        metrics=f"results/{RUN}/evaluation/metrics.json",
    params:
        settings=settings("evaluate", "transformer"),
    log:
        f"results/{RUN}/logs/evaluate.log",
    benchmark:
        f"results/{RUN}/benchmarks/evaluate.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        gpu=1,
    conda:
        ENV
    shell:
        "python -m lvt.stages.evaluate --settings {params.settings:q} --vqvae {input.vqvae}"
        " --transformer {input.transformer} --codes {input.codes} --dataset {input.dataset}"
        " --samples {input.samples} --threads {threads} --out {output.metrics} > {log} 2>&1"
