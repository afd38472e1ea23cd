# Scores: VQ-VAE reconstruction quality and transformer bits per code on the test split.


rule evaluate:
    """Reconstruction PSNR, bits per code against the codes' unigram entropy, sample summary."""
    input:
        vqvae="results/{run}/vqvae/model.pt",
        transformer="results/{run}/transformer/model.pt",
        codes="results/{run}/codes/test.h5",
        dataset="results/{run}/data/test.h5",
        samples="results/{run}/samples",
    output:
        metrics="results/{run}/evaluation/metrics.json",
    params:
        settings=settings("evaluate", "transformer"),
    log:
        "results/{run}/logs/evaluate.log",
    benchmark:
        "results/{run}/benchmarks/evaluate.tsv"
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
