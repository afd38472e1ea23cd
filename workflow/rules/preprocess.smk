# trim -> frames -> crop: trim cuts each video's window (stream copies); frames decodes it and
# center-crops and resizes each frame, in one FFmpeg filter graph; crop packs the frames of a
# split into its HDF5 dataset (the name is the stage users know; it crops nothing itself).
# Sharded per split; full-resolution intermediates are temporary.
# Snakemake cannot target a rule with wildcards, so each stage's jobs are `<stage>_shard` or
# `<stage>_split`, and the rule named after the stage collects all of them: `snakemake crop`.

if config["source"]["kind"] != "bair":

    rule trim:
        """Target: every trim job."""
        input:
            every_shard(f"results/{RUN}/clips/{{split}}/shard{{shard}}"),
        localrule: True

    rule frames:
        """Target: every frames job (decode, center crop, resize)."""
        input:
            every_shard(f"results/{RUN}/frames/{{split}}/shard{{shard}}.h5"),
        localrule: True

    rule crop:
        """Target: both packed splits (packing only; the frames jobs did the center crop)."""
        input:
            every_split(f"results/{RUN}/data/{{split}}.h5"),
        localrule: True

    rule trim_shard:
        """Cut each video of one shard to its time window (ffmpeg stream copies, batched)."""
        input:
            manifest=f"results/{RUN}/sources/manifest.tsv",
        output:
            clips=temp(directory(f"results/{RUN}/clips/{{split}}/shard{{shard}}")),
        log:
            f"results/{RUN}/logs/trim/{{split}}-{{shard}}.log",
        benchmark:
            f"results/{RUN}/benchmarks/trim/{{split}}-{{shard}}.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=1000,
        params:
            settings=settings("source", "preprocess"),
        shell:
            "python -m lvt.stages.trim --settings {params.settings:q} --manifest {input.manifest:q}"
            " --split {wildcards.split:q} --shard {wildcards.shard:q} --out-dir {output.clips:q}"
            " > {log:q} 2>&1"

    rule frames_shard:
        """Decode one shard's clips: the window, optional fps resampling, then each frame's
        central square resized (Lanczos), in one FFmpeg filter graph (lvt.data.frames)."""
        input:
            clips=f"results/{RUN}/clips/{{split}}/shard{{shard}}",
        output:
            frames=temp(f"results/{RUN}/frames/{{split}}/shard{{shard}}.h5"),
        log:
            f"results/{RUN}/logs/frames/{{split}}-{{shard}}.log",
        benchmark:
            f"results/{RUN}/benchmarks/frames/{{split}}-{{shard}}.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=2000,
        params:
            settings=settings("source", "preprocess"),
        shell:
            "python -m lvt.stages.frames --settings {params.settings:q} --clips {input.clips:q}"
            " --out {output.frames:q} > {log:q} 2>&1"

    rule crop_split:
        """Pack a split's frame shards into one HDF5 dataset and its report (lvt.data.packing).

        No cropping happens here: the frames jobs already center-cropped and resized.
        """
        input:
            frames=frame_shards,
        output:
            dataset=f"results/{RUN}/data/{{split}}.h5",
            manifest=f"results/{RUN}/data/{{split}}.tsv",
        log:
            f"results/{RUN}/logs/crop/{{split}}.log",
        benchmark:
            f"results/{RUN}/benchmarks/crop/{{split}}.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=2000,
        params:
            settings=settings("source", "preprocess"),
        shell:
            "python -m lvt.stages.crop --settings {params.settings:q} --frames {input.frames:q}"
            " --out {output.dataset:q} --manifest {output.manifest:q} > {log:q} 2>&1"
