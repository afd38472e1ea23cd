# The Latent Video Transformer over the codes.


rule train_transformer:
    """Train the transformer on random clips and slices; resumes from results/<run>/train_state."""
    input:
        codes="results/{run}/codes/train.h5",
    output:
        model="results/{run}/transformer/model.pt",
        metrics="results/{run}/transformer/metrics.csv",
    params:
        settings=settings("transformer", "vqvae", "preprocess"),
        state="results/{run}/train_state/transformer",
    log:
        "results/{run}/logs/train_transformer.log",
    benchmark:
        "results/{run}/benchmarks/train_transformer.tsv"
    threads: 4
    resources:
        mem_mb=16000,
        gpu=1,
    conda:
        ENV
    shell:
        "python -m lvt.stages.train_transformer --settings {params.settings:q}"
        " --codes {input.codes} --state-dir {params.state} --threads {threads}"
        " --model {output.model} --metrics {output.metrics} > {log} 2>&1"
