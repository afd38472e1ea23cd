# The per-frame VQ-VAE and the codes it assigns to every frame.


rule train_vqvae:
    """Train the VQ-VAE on single frames; resumes from results/<run>/train_state/vqvae."""
    input:
        dataset="results/{run}/data/train.h5",
    output:
        model="results/{run}/vqvae/model.pt",
        metrics="results/{run}/vqvae/metrics.csv",
    params:
        settings=settings("vqvae", "preprocess"),
        state="results/{run}/train_state/vqvae",
    log:
        "results/{run}/logs/train_vqvae.log",
    benchmark:
        "results/{run}/benchmarks/train_vqvae.tsv"
    threads: 4
    resources:
        mem_mb=8000,
        gpu=1,
    conda:
        ENV
    shell:
        "python -m lvt.stages.train_vqvae --settings {params.settings:q} --dataset {input.dataset}"
        " --state-dir {params.state} --threads {threads}"
        " --model {output.model} --metrics {output.metrics} > {log} 2>&1"


rule extract_codes:
    """Encode ALL frames of every video of a split (the reference kept only the first 16)."""
    input:
        model="results/{run}/vqvae/model.pt",
        dataset="results/{run}/data/{split}.h5",
    output:
        codes="results/{run}/codes/{split}.h5",
    log:
        "results/{run}/logs/extract_codes/{split}.log",
    benchmark:
        "results/{run}/benchmarks/extract_codes/{split}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        gpu=1,
    conda:
        ENV
    shell:
        "python -m lvt.stages.extract_codes --model {input.model} --dataset {input.dataset}"
        " --threads {threads} --out {output.codes} > {log} 2>&1"
