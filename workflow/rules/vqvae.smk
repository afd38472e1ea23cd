# The per-frame VQ-VAE and the codes it assigns to every frame.


rule train_vqvae:
    """Train the VQ-VAE on single frames; resumes from results/<run>/train_state/vqvae."""
    input:
        dataset=f"results/{RUN}/data/train.h5",
    output:
        model=f"results/{RUN}/vqvae/model.pt",
        metrics=f"results/{RUN}/vqvae/metrics.csv",
    log:
        f"results/{RUN}/logs/train_vqvae.log",
    benchmark:
        f"results/{RUN}/benchmarks/train_vqvae.tsv"
    conda:
        ENV
    threads: 4
    resources:
        mem_mb=8000,
        gpu=1,
    params:
        settings=settings("vqvae", "preprocess"),
        state=f"results/{RUN}/train_state/vqvae",
        launcher=launcher,
    shell:
        "{params.launcher} -m lvt.stages.train_vqvae --settings {params.settings:q}"
        " --dataset {input.dataset:q} --state-dir {params.state:q} --threads {threads}"
        " --model {output.model:q} --metrics {output.metrics:q} > {log:q} 2>&1"


rule extract_codes:
    """Target: the codes of both splits."""
    input:
        every_split(f"results/{RUN}/codes/{{split}}.h5"),
    localrule: True


rule extract_codes_split:
    """Encode ALL frames of every video of a split (the reference kept only the first 16)."""
    input:
        model=f"results/{RUN}/vqvae/model.pt",
        dataset=f"results/{RUN}/data/{{split}}.h5",
    output:
        codes=f"results/{RUN}/codes/{{split}}.h5",
    log:
        f"results/{RUN}/logs/extract_codes/{{split}}.log",
    benchmark:
        f"results/{RUN}/benchmarks/extract_codes/{{split}}.tsv"
    conda:
        ENV
    threads: 2
    resources:
        mem_mb=4000,
        gpu=1,
    shell:
        "python -m lvt.stages.extract_codes --model {input.model:q} --dataset {input.dataset:q}"
        " --threads {threads} --out {output.codes:q} > {log:q} 2>&1"
