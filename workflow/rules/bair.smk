# BAIR robot pushing: download -> unpack the TFRecords (checkpoint) -> one convert job per TFRecord
# file -> one packed dataset per split. Its frames are 64×64 already, so trim/frames/crop do not
# apply; `snakemake bair_pack` builds both splits. The tarball and TFRecords live in
# source.bair.folder, outside results/, so that every run shares them.

if config["source"]["kind"] == "bair":
    import json

    from lvt.data.bair import tfrecord_stems

    BAIR = config["source"]["bair"]["folder"]
    BAIR_SETTINGS = json.dumps(
        {"source": {"kind": "bair", "bair": config["source"]["bair"]}}, sort_keys=True
    )

    rule bair_pack:
        """Target: both packed splits."""
        input:
            every_split(f"results/{RUN}/data/{{split}}.h5"),
        localrule: True

    rule bair_download:
        """Fetch the tarball on the submit host (compute nodes often lack internet); resumable."""
        output:
            tar=f"{BAIR}/bair_robot_pushing_dataset_v0.tar",
        log:
            f"results/{RUN}/logs/bair/download.log",
        benchmark:
            f"results/{RUN}/benchmarks/bair/download.tsv"
        retries: 3
        localrule: True
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=500,
        params:
            # a function, so that braces in the URL are not taken for wildcards
            settings=lambda wildcards: BAIR_SETTINGS,
        shell:
            "python -m lvt.stages.bair_download --settings {params.settings:q}"
            " --out {output.tar:q} > {log:q} 2>&1"

    checkpoint bair_extract:
        """Unpack only softmotion30_44k/{train,test}/*.tfrecords; their number is known only now."""
        input:
            tar=f"{BAIR}/bair_robot_pushing_dataset_v0.tar",
        output:
            tfrecords=directory(f"{BAIR}/softmotion30_44k"),
        log:
            f"results/{RUN}/logs/bair/extract.log",
        benchmark:
            f"results/{RUN}/benchmarks/bair/extract.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=500,
        shell:
            "python -m lvt.stages.bair_extract --tar {input.tar:q}"
            " --out-dir {output.tfrecords:q} > {log:q} 2>&1"

    rule bair_convert:
        """Read one TFRecord file (own reader, CRC-checked) into a temporary shard."""
        input:
            tfrecord=f"{BAIR}/softmotion30_44k/{{split}}/{{record}}.tfrecords",
        output:
            shard=temp(f"results/{RUN}/bair/{{split}}/{{record}}.h5"),
        log:
            f"results/{RUN}/logs/bair/convert/{{split}}/{{record}}.log",
        benchmark:
            f"results/{RUN}/benchmarks/bair/convert/{{split}}/{{record}}.tsv"
        wildcard_constraints:
            record="[^/]+",
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=1000,
        shell:
            "python -m lvt.stages.bair_convert --tfrecord {input.tfrecord:q}"
            " --out {output.shard:q} > {log:q} 2>&1"

    rule bair_pack_split:
        """Merge a split's shards (TFRecord name, then record order) into its dataset and report."""
        input:
            # one aggregation per split, so both splits' shards are in the DAG once unpacked
            shards=lambda wildcards: expand(
                f"results/{RUN}/bair/{wildcards.split}/{{record}}.h5",
                record=tfrecord_stems(
                    checkpoints.bair_extract.get().output.tfrecords, wildcards.split
                ),
            ),
        output:
            dataset=f"results/{RUN}/data/{{split}}.h5",
            manifest=f"results/{RUN}/data/{{split}}.tsv",
        log:
            f"results/{RUN}/logs/bair/pack/{{split}}.log",
        benchmark:
            f"results/{RUN}/benchmarks/bair/pack/{{split}}.tsv"
        conda:
            ENV
        threads: 1
        resources:
            mem_mb=1000,
        shell:
            "python -m lvt.stages.bair_pack --shards {input.shards:q} --split {wildcards.split:q}"
            " --out {output.dataset:q} --manifest {output.manifest:q} > {log:q} 2>&1"
