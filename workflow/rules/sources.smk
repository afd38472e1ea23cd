# The first stage: a manifest of source videos (id, path, split, time window, status).

if config["source"]["kind"] == "synthetic":

    rule synthesize:
        """Write the built-in demo videos (seeded moving shapes, H.264) and their manifest."""
        output:
            videos=directory(f"results/{RUN}/sources/videos"),
            manifest=f"results/{RUN}/sources/manifest.tsv",
        log:
            f"results/{RUN}/logs/synthesize.log",
        benchmark:
            f"results/{RUN}/benchmarks/synthesize.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=1000,
        params:
            settings=settings("source", "preprocess"),
        shell:
            "python -m lvt.stages.synthesize --settings {params.settings:q}"
            " --out-dir {output.videos:q} --manifest {output.manifest:q} > {log:q} 2>&1"

elif config["source"]["kind"] == "local":

    rule scan_local:
        """List the user's videos, probe each one, and draw the seeded train/test split."""
        input:
            local_videos,
        output:
            manifest=f"results/{RUN}/sources/manifest.tsv",
        log:
            f"results/{RUN}/logs/scan_local.log",
        benchmark:
            f"results/{RUN}/benchmarks/scan_local.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=1000,
        params:
            settings=settings("source", "preprocess"),
        shell:
            "python -m lvt.stages.scan_local --settings {params.settings:q}"
            " --manifest {output.manifest:q} > {log:q} 2>&1"
