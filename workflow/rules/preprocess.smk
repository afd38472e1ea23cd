# trim -> frames -> crop. Sharded per split; full-resolution intermediates are temporary.


rule trim:
    """Cut each video of one shard to its time window (ffmpeg, frame-accurate)."""
    input:
        manifest="results/{run}/sources/manifest.tsv",
    output:
        clips=temp(directory("results/{run}/clips/{split}/shard{shard}")),
    params:
        settings=settings("source", "preprocess"),
    log:
        "results/{run}/logs/trim/{split}-{shard}.log",
    benchmark:
        "results/{run}/benchmarks/trim/{split}-{shard}.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "python -m lvt.stages.trim --settings {params.settings:q} --manifest {input.manifest}"
        " --split {wildcards.split} --shard {wildcards.shard} --out-dir {output.clips} > {log} 2>&1"


rule frames:
    """Decode one shard's clips (optional fps resampling) and resize the short side."""
    input:
        clips="results/{run}/clips/{split}/shard{shard}",
    output:
        frames=temp("results/{run}/frames/{split}/shard{shard}.h5"),
    params:
        settings=settings("source", "preprocess"),
    log:
        "results/{run}/logs/frames/{split}-{shard}.log",
    benchmark:
        "results/{run}/benchmarks/frames/{split}-{shard}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
        "python -m lvt.stages.frames --settings {params.settings:q} --clips {input.clips}"
        " --out {output.frames} > {log} 2>&1"


rule crop:
    """Center-crop every frame of a split and pack the split into one HDF5 dataset."""
    input:
        frames=frame_shards,
    output:
        dataset="results/{run}/data/{split}.h5",
        manifest="results/{run}/data/{split}.tsv",
    params:
        settings=settings("source", "preprocess"),
    log:
        "results/{run}/logs/crop/{split}.log",
    benchmark:
        "results/{run}/benchmarks/crop/{split}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
        "python -m lvt.stages.crop --settings {params.settings:q} --frames {input.frames}"
        " --out {output.dataset} --manifest {output.manifest} > {log} 2>&1"
