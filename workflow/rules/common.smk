# Configuration check and the helpers the Snakefile and the rule modules share. The config is
# validated with workflow/schemas/config.schema.yaml (through lvt.config, which the stage modules
# use too) before any job runs; schema defaults fill every missing key.

import snakemake.io
from snakemake.logging import logger

import lvt.config
import lvt.data.sources
import lvt.errors
import lvt.run_summary

config.update(lvt.config.validate(config))

RUN = config["run"]
SPLITS = ["train", "test"]
SHARDS = list(range(config["preprocess"]["shards"]))
FVD_SHARDS = list(range(config["fvd"]["shards"]))
ENV = "../../envs/lvt.yaml"
# What the sampling and scoring rules read (`input: **MODELS_AND_TEST_CODES`): both trained
# models, and the test split's codes, which prime the samples.
MODELS_AND_TEST_CODES = {
    "vqvae": f"results/{RUN}/vqvae/model.pt",
    "transformer": f"results/{RUN}/transformer/model.pt",
    "codes": f"results/{RUN}/codes/test.h5",
}
TEST_DATASET = f"results/{RUN}/data/test.h5"


wildcard_constraints:
    split="train|test",
    shard=r"\d+",


def settings(*sections):
    """The config sections a stage needs, as JSON: a change re-runs exactly the stages using it.

    A function of the wildcards, because Snakemake would fill `{...}` in a plain string (such as
    the `{youtube_id}` of source.kinetics600.url_template) as wildcards.
    """
    return lambda wildcards: lvt.config.settings_json(config, *sections)


def launcher(wildcards, resources):
    """How a training job starts Python: one process per GPU under torchrun when the job has
    several GPUs (`resources.gpu`), else plain `python`. The one place that knows the resource.
    """
    if resources.gpu > 1:
        return f"python -m torch.distributed.run --standalone --nproc-per-node {resources.gpu}"
    return "python"


def frame_shards(wildcards):
    """Every frames shard of one split."""
    return expand(
        f"results/{RUN}/frames/{{split}}/shard{{shard}}.h5",
        split=wildcards.split,
        shard=SHARDS,
    )


def every_shard(pattern):
    """`pattern` for every split and shard: what a sharded stage's target rule collects."""
    return expand(pattern, split=SPLITS, shard=SHARDS)


def every_split(pattern):
    """`pattern` for both splits."""
    return expand(pattern, split=SPLITS)


def fvd_sample_shards(wildcards):
    """Every shard of the evaluation protocol's samples."""
    return expand(f"results/{RUN}/evaluation/samples/shard{{shard}}.h5", shard=FVD_SHARDS)


def score_files():
    """Every score file the evaluation writes; the report's table shows them all."""
    return [f"results/{RUN}/evaluation/{name}.json" for name in ("metrics", "fvd", "frame_scores")]


def final_outputs():
    """What `all` builds: the scores and what `snakemake --report` shows, which need every stage."""
    return [
        *score_files(),
        *rules.report_curves.output,
        rules.report_scores.output.table,
        rules.report_frame_scores.output.per_step,
        *rules.report_samples.output,
    ]


def print_run_summary():
    """Show the run's warnings (skipped and failed videos, mixed frame rates) on the console at
    its end, where they are seen; the stages log them only into their job logs."""
    summary = lvt.run_summary.run_summary(f"results/{RUN}")
    if summary:
        logger.warning(summary)


def tracked_path(path):
    """`path`, or if Snakemake would read `{name}` in it as a wildcard, the nearest folder
    above it without one: that folder's time stamp changes when files are added or removed
    directly in it, though not when one of them is edited in place."""
    while snakemake.io.contains_wildcard(path):
        path = path.parent
    return str(path)


def local_videos(wildcards):
    """The files the scan of source.kind local considers, so that adding, removing or changing
    one re-runs it.

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
