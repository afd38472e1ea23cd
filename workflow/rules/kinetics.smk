# Kinetics-600: sharded yt-dlp downloads of the clips the official CSVs list, then one source
# manifest with every clip's outcome. Clips and the download journal live in
# source.kinetics600.folder, so they are shared between runs and never fetched twice.

if config["source"]["kind"] == "kinetics600":
    KINETICS_OUTCOMES = {
        split: expand(
            f"results/{RUN}/sources/kinetics600/{split}/shard{{shard}}.tsv",
            shard=range(config["source"]["kinetics600"]["shards"]),
        )
        for split in SPLITS
    }

    rule kinetics_download:
        """Target: every Kinetics-600 download shard."""
        input:
            KINETICS_OUTCOMES["train"],
            KINETICS_OUTCOMES["test"],
        localrule: True

    rule kinetics_download_shard:
        """Download one shard of a split with yt-dlp (rate-limited, retried with back-off).

        Local: compute nodes often have no internet access.
        """
        input:
            csv=lambda wildcards: config["source"]["kinetics600"][f"{wildcards.split}_csv"],
        output:
            outcomes=f"results/{RUN}/sources/kinetics600/{{split}}/shard{{shard}}.tsv",
        log:
            f"results/{RUN}/logs/kinetics_download/{{split}}-{{shard}}.log",
        benchmark:
            f"results/{RUN}/benchmarks/kinetics_download/{{split}}-{{shard}}.tsv"
        retries: 1
        localrule: True
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=1000,
        params:
            settings=settings("source"),
        shell:
            "python -m lvt.stages.kinetics_download --settings {params.settings:q}"
            " --split {wildcards.split:q} --shard {wildcards.shard:q} --out {output.outcomes:q}"
            " > {log:q} 2>&1"

    rule kinetics_manifest:
        """Merge the download outcomes and invalid CSV rows into the source manifest."""
        input:
            train=KINETICS_OUTCOMES["train"],
            test=KINETICS_OUTCOMES["test"],
            csvs=[config["source"]["kinetics600"][f"{split}_csv"] for split in SPLITS],
        output:
            manifest=f"results/{RUN}/sources/manifest.tsv",
        log:
            f"results/{RUN}/logs/kinetics_manifest.log",
        benchmark:
            f"results/{RUN}/benchmarks/kinetics_manifest.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=1000,
        params:
            settings=settings("source"),
        shell:
            "python -m lvt.stages.kinetics_manifest --settings {params.settings:q}"
            " --train-outcomes {input.train:q} --test-outcomes {input.test:q}"
            " --manifest {output.manifest:q} > {log:q} 2>&1"
