# The first stage: a manifest of source videos (id, path, split, time window, status).

if config["source"]["kind"] == "synthetic":

    rule synthesize:
        """Write the built-in demo videos (seeded moving shapes, H.264) and their manifest."""
        output:
            videos=directory(f"results/{RUN}/sources/videos"),
            manifest=f"results/{RUN}/sources/manifest.tsv",
        params:
            settings=settings("source", "preprocess"),
        log:
            f"results/{RUN}/logs/synthesize.log",
        benchmark:
            f"results/{RUN}/benchmarks/synthesize.tsv"
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            ENV
        shell:
            "python -m lvt.stages.synthesize --settings {params.settings:q}"
            " --out-dir {output.videos:q} --manifest {output.manifest:q} > {log:q} 2>&1"

elif config["source"]["kind"] == "local":

    import snakemake.io

    import lvt.data.sources
    import lvt.errors

    def tracked_path(path):
        """`path`, or if Snakemake would read `{name}` in it as a wildcard, the nearest folder
        above it without one: that folder's time stamp changes when files are added or removed
        directly in it, though not when one of them is edited in place."""
        while snakemake.io.contains_wildcard(path):
            path = path.parent
        return str(path)

    def local_videos(wildcards):
        """The files the scan considers, so that adding, removing or changing one re-runs it.

        Snakemake re-runs a job whose set of input files changed, or one of whose inputs is newer
        than its output and (for small files, whose checksum it keeps) has other contents. An
        unset path lists nothing: the scan itself says that it is needed.
        """
        folder = config["source"]["local"]["path"]
        if not folder:
            return []
        try:
            videos = lvt.data.sources.video_files(folder)
        except lvt.errors.InputError as error:
            raise lvt.config.ConfigError(f"config key source.local.path: {error}") from error
        return sorted({tracked_path(path) for path in videos})

    rule scan_local:
        """List the user's videos, probe each one, and draw the seeded train/test split."""
        input:
            local_videos,
        output:
            manifest=f"results/{RUN}/sources/manifest.tsv",
        params:
            settings=settings("source", "preprocess"),
        log:
            f"results/{RUN}/logs/scan_local.log",
        benchmark:
            f"results/{RUN}/benchmarks/scan_local.tsv"
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            ENV
        shell:
            "python -m lvt.stages.scan_local --settings {params.settings:q}"
            " --manifest {output.manifest:q} > {log:q} 2>&1"
