# What `snakemake --report report.html` shows: training curves, every score, the sample videos.
# Each figure or page is the output of a rule here, so the stages before need no change.


report: "../report/workflow.rst"


rule report_curves:
    """Loss, bits per code, reconstruction PSNR and codebook perplexity during training."""
    input:
        vqvae=f"results/{RUN}/vqvae/metrics.csv",
        transformer=f"results/{RUN}/transformer/metrics.csv",
    output:
        vqvae_loss=report(
            f"results/{RUN}/report/curves/vqvae_loss.svg",
            caption="../report/vqvae_loss.rst",
            category="Training curves",
            subcategory="VQ-VAE",
            labels={"curve": "loss"},
        ),
        vqvae_psnr=report(
            f"results/{RUN}/report/curves/vqvae_psnr.svg",
            caption="../report/vqvae_psnr.rst",
            category="Training curves",
            subcategory="VQ-VAE",
            labels={"curve": "reconstruction PSNR"},
        ),
        vqvae_perplexity=report(
            f"results/{RUN}/report/curves/vqvae_perplexity.svg",
            caption="../report/vqvae_perplexity.rst",
            category="Training curves",
            subcategory="VQ-VAE",
            labels={"curve": "codebook perplexity"},
        ),
        transformer_bits=report(
            f"results/{RUN}/report/curves/transformer_bits_per_code.svg",
            caption="../report/transformer_bits_per_code.rst",
            category="Training curves",
            subcategory="Transformer",
            labels={"curve": "bits per code"},
        ),
    log:
        f"results/{RUN}/logs/report_curves.log",
    benchmark:
        f"results/{RUN}/benchmarks/report_curves.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.vqvae_loss),
    shell:
        "python -m lvt.stages.report_curves --vqvae-metrics {input.vqvae:q}"
        " --transformer-metrics {input.transformer:q} --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule report_scores:
    """Every value of every score file, with the protocol it was measured under."""
    input:
        scores=score_files(),
    output:
        table=report(
            f"results/{RUN}/report/scores.html",
            caption="../report/scores.rst",
            category="Scores",
            labels={"result": "every score"},
        ),
    log:
        f"results/{RUN}/logs/report_scores.log",
    benchmark:
        f"results/{RUN}/benchmarks/report_scores.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "python -m lvt.stages.report_scores --scores {input.scores:q} --out {output.table:q}"
        " > {log:q} 2>&1"


rule report_frame_scores:
    """PSNR and SSIM per predicted frame of the samples beside copy-last-frame and the VQ-VAE
    reconstruction."""
    input:
        frame_scores=f"results/{RUN}/evaluation/frame_scores.json",
    output:
        per_step=report(
            f"results/{RUN}/report/frame_scores_per_step.svg",
            caption="../report/frame_scores_per_step.rst",
            category="Scores",
            labels={"result": "PSNR and SSIM per predicted frame"},
        ),
    log:
        f"results/{RUN}/logs/report_frame_scores.log",
    benchmark:
        f"results/{RUN}/benchmarks/report_frame_scores.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "python -m lvt.stages.report_frame_scores --frame-scores {input.frame_scores:q}"
        " --out {output.per_step:q} > {log:q} 2>&1"


rule report_samples:
    """A page per sampled test video, the real clip beside each sample as GIFs; the contact sheets
    (frames in rows: the real clip, then each sample) of each video and of the first ones.
    """
    input:
        samples=f"results/{RUN}/samples",
    output:
        pages=report(
            directory(f"results/{RUN}/report/samples"),
            patterns=["{video}.html"],
            caption="../report/samples.rst",
            category="Samples",
            subcategory="GIFs",
            labels={"video": "{video}"},
        ),
        sheets=report(
            directory(f"results/{RUN}/report/contact_sheets"),
            patterns=["{video}.png"],
            caption="../report/contact_sheet.rst",
            category="Samples",
            subcategory="Contact sheets",
            labels={"video": "{video}"},
        ),
        overview=report(
            f"results/{RUN}/report/contact_sheet.png",
            caption="../report/contact_sheet_overview.rst",
            category="Samples",
            subcategory="Contact sheets",
            labels={"video": "overview of the first videos"},
        ),
    log:
        f"results/{RUN}/logs/report_samples.log",
    benchmark:
        f"results/{RUN}/benchmarks/report_samples.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1000,
    shell:
        "python -m lvt.stages.report_samples --samples {input.samples:q}"
        " --out-dir {output.pages:q} --sheets-dir {output.sheets:q}"
        " --overview {output.overview:q} > {log:q} 2>&1"
