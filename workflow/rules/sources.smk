# The first stage: a manifest of source videos (id, path, split, time window, status).

if config["source"]["kind"] == "synthetic":

    rule synthesize:
        """Write the built-in demo videos (seeded moving shapes, H.264) and their manifest."""
        output:
            videos=directory("results/{run}/sources/videos"),
            manifest="results/{run}/sources/manifest.tsv",
        params:
            settings=settings("source", "preprocess"),
        log:
            "results/{run}/logs/synthesize.log",
        benchmark:
            "results/{run}/benchmarks/synthesize.tsv"
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            ENV
        shell:
            "python -m lvt.stages.synthesize --settings {params.settings:q}"
            " --out-dir {output.videos} --manifest {output.manifest} > {log} 2>&1"

else:

    rule scan_local:
        """List the user's videos, probe each one, and draw the seeded train/test split."""
        output:
            manifest="results/{run}/sources/manifest.tsv",
        params:
            settings=settings("source", "preprocess"),
        log:
            "results/{run}/logs/scan_local.log",
        benchmark:
            "results/{run}/benchmarks/scan_local.tsv"
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            ENV
        shell:
            "python -m lvt.stages.scan_local --settings {params.settings:q}"
            " --manifest {output.manifest} > {log} 2>&1"
