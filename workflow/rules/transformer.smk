# The Latent Video Transformer over the codes.


rule train_transformer:
    """Train the transformer on random clips and slices; resumes from results/<run>/train_state.
    Scores bits per code on fixed test clips as it goes (the held-out training curve).
    """
    input:
        codes=f"results/{RUN}/codes/train.h5",
        held_out_codes=f"results/{RUN}/codes/test.h5",
    output:
        model=f"results/{RUN}/transformer/model.pt",
        metrics=f"results/{RUN}/transformer/metrics.csv",
    log:
        f"results/{RUN}/logs/train_transformer.log",
    benchmark:
        f"results/{RUN}/benchmarks/train_transformer.tsv"
    conda:
        ENV
    threads: 4
    resources:
        mem_mb=16000,
        gpu=1,
    params:
        settings=settings("transformer", "vqvae", "preprocess"),
        state=f"results/{RUN}/train_state/transformer",
        launcher=launcher,
    shell:
        "{params.launcher} -m lvt.stages.train_transformer --settings {params.settings:q}"
        " --codes {input.codes:q} --held-out-codes {input.held_out_codes:q}"
        " --state-dir {params.state:q} --threads {threads}"
        " --model {output.model:q} --metrics {output.metrics:q} > {log:q} 2>&1"
