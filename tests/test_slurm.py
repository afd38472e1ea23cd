"""The workflow on a real one-node SLURM cluster, submitted through workflow/profiles/slurm.

Debian's SLURM (`apt-get install slurmctld slurmd slurm-client munge`; .ci/run installs it) runs
here as a cluster on 127.0.0.1: munged, slurmctld and slurmd as root, every file in a temporary
folder, free ports, two count-only GPUs, no accounting database. The daemons are stopped by PID.
Training on "GPUs" runs on the CPU (gloo): the GPUs are only counted.
"""

from __future__ import annotations

import copy
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import RUN, TINY, copy_workflow, snakemake, write_config

ROOT = Path(__file__).resolve().parents[1]
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
COMMANDS = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "scontrol",
            "sinfo")
TARGET = f"results/{TINY['run']}/vqvae/model.pt"
EXPECTED_JOBS = {
    # rule: (CPUs, memory, time limit, GPUs): the rules' threads and mem_mb, the profile's
    # runtime, and for training its set-threads and `gpu: 1` (sbatch --gpus=1)
    "synthesize": (1, "1000M", "01:00:00", None),
    "trim_shard": (1, "1000M", "04:00:00", None),
    "frames_shard": (1, "2000M", "04:00:00", None),
    "crop_split": (1, "2000M", "08:00:00", None),
    "train_vqvae": (8, "8000M", "1-00:00:00", "gres:gpu:1"),
}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(shutil.which(name, path=f"{os.environ['PATH']}:/usr/sbin") is None
            for name in COMMANDS) or os.geteuid() != 0,
        reason="needs Debian's SLURM and root: apt-get install slurmctld slurmd slurm-client "
               "munge (as .ci/run does)",
    ),
]


@dataclass
class Cluster:
    """A running one-node cluster: its configuration file and the folder of the `srun` shim,
    which appends each call (the job's id, then its arguments) to `srun_calls`."""

    conf: Path
    shims: Path
    srun_calls: Path

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def jobs(self) -> list[dict[str, str]]:
        """slurmctld's record of every job (kept MinJobAge seconds after it ends)."""
        out = subprocess.run(["scontrol", "--oneliner", "show", "job"], env=self.env(),
                             capture_output=True, text=True, check=True).stdout
        return [dict(field.split("=", 1) for field in line.split() if "=" in field)
                for line in out.splitlines() if line.startswith("JobId=")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def slurm_conf(folder: Path, munge_socket: Path) -> str:
    """A one-node cluster: linuxproc/none plugins (no cgroups in a container), no accounting.

    `config_overrides` makes slurmd take the node's CPUs and memory from here, so that the
    profile's requests (8 CPUs for training) fit on a 2-core machine.
    """
    return f"""\
ClusterName=lvtci
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
MailProg=/bin/true
GresTypes=gpu
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=16 RealMemory=64000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


# A GPU needs a device file, or slurmd counts none and drains the node; these two are stand-ins.
GRES_CONF = """\
AutoDetect=off
NodeName=localhost Name=gpu Count=1 File=/dev/null
NodeName=localhost Name=gpu Count=1 File=/dev/zero
"""


def stop(daemon: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it is still there after 10 s (slurmd can ignore SIGTERM)."""
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    conf = folder / "slurm.conf"
    munge_socket = folder / "munge.socket"
    conf.write_text(slurm_conf(folder, munge_socket))
    (folder / "gres.conf").write_text(GRES_CONF)
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": f"{os.environ['PATH']}:/usr/sbin"}
    subprocess.run(["mungekey", "--create", f"--keyfile={folder / 'munge.key'}"], env=env,
                   check=True)
    commands = {
        "munged": ["munged", "--foreground", "--force", f"--socket={munge_socket}",
                   f"--key-file={folder / 'munge.key'}", f"--pid-file={folder / 'munged.pid'}",
                   f"--log-file={folder / 'munged.log'}", f"--seed-file={folder / 'munged.seed'}"],
        "slurmctld": ["slurmctld", "-D", "-i"],
        "slurmd": ["slurmd", "-D", "-N", "localhost"],
    }
    daemons: list[subprocess.Popen] = []
    try:
        for name, command in commands.items():
            with open(folder / f"{name}.out", "w") as out:
                daemons.append(subprocess.Popen(command, env=env, stdout=out,
                                                stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL))
            if name == "munged":
                wait_for(munge_socket.exists, "munged never opened its socket", folder)
        cluster = Cluster(conf, srun_shim(folder, conf), folder / "srun.calls")
        wait_for(lambda: node_state(cluster) == "idle", "the node never became idle", folder)
        yield cluster
    finally:
        for daemon in reversed(daemons):
            stop(daemon)


def srun_shim(folder: Path, conf: Path) -> Path:
    """A folder with an `srun` that knows this cluster's configuration file and records its
    calls in `srun.calls`.

    The plugin's job step removes SLURM_CONF before it runs `srun` inside the job, so only a
    configuration in the default place (/etc/slurm/slurm.conf, as on a real cluster) reaches it.
    """
    shims = folder / "bin"
    shims.mkdir()
    srun = shims / "srun"
    srun.write_text(f"""#!/bin/sh
printf '%s\\t%s\\n' "${{SLURM_JOB_ID:-}}" "$*" >> {shlex.quote(str(folder / "srun.calls"))}
SLURM_CONF={shlex.quote(str(conf))} exec {shlex.quote(shutil.which("srun"))} "$@"
""")
    srun.chmod(0o755)
    return shims


def python_shim(folder: Path, calls: Path) -> Path:
    """A folder with a `python` that appends, per call, the SLURM job, step and task count it
    runs in and its arguments to `calls`, then runs this interpreter: what the rules' shell
    commands start (the launcher among them) shows there."""
    folder.mkdir()
    python = folder / "python"
    python.write_text(f"""#!/bin/sh
printf '%s\\t%s\\t%s\\t%s\\n' "${{SLURM_JOB_ID:-}}" "${{SLURM_STEP_ID:-}}" \\
    "${{SLURM_STEP_NUM_TASKS:-}}" "$*" >> {shlex.quote(str(calls))}
exec {shlex.quote(sys.executable)} "$@"
""")
    python.chmod(0o755)
    return folder


def node_state(cluster: Cluster) -> str:
    result = subprocess.run(["sinfo", "--noheader", "--format=%T"], env=cluster.env(),
                            capture_output=True, text=True, timeout=10)
    return result.stdout.strip()


def wait_for(condition: Callable[[], bool], failure: str, logs: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            found = "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}"
                              for log in sorted(logs.glob("*.out")))
            raise AssertionError(f"{failure}\n{found}")
        time.sleep(0.5)


def run_through_profile(cluster: Cluster, workdir: Path, profile: Path, config: dict,
                        shims: Sequence[Path] = ()) -> list[dict[str, str]]:
    """Build TARGET in `workdir` through `profile`; return SLURM's records of its jobs."""
    # as a user would run it (no --cores: that would cap every job's threads), plus what this
    # cluster needs: it has no accounting database, so poll with squeue (sacct would hang the
    # run), and from 3 s after submission on (then 13 s later, 23 s later, ...)
    command = [sys.executable, "-m", "snakemake", TARGET, "--profile", str(profile),
               "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks",
               "3", "--slurm-no-account", "--slurm-keep-successful-logs",
               "--configfile", write_config(workdir / "tiny.yaml", config)]
    path = os.pathsep.join([*map(str, shims), str(cluster.shims),
                            str(Path(sys.executable).parent), os.environ["PATH"]])
    result = subprocess.run(command, cwd=workdir, env={**cluster.env(), "PATH": path},
                            capture_output=True, text=True)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert (workdir / TARGET).exists()
    return [job for job in cluster.jobs() if job["WorkDir"] == str(workdir)]


def job_logs(workdir: Path, rule: str) -> list[Path]:
    """The SLURM output of a rule's jobs, where the plugin files it: rule folder, job id."""
    return list((workdir / ".snakemake" / "slurm_logs" / f"rule_{rule}").rglob("*.log"))


def test_profile_runs_preprocessing_and_training_as_slurm_jobs(
    cluster: Cluster, tmp_path: Path
) -> None:
    workdir = copy_workflow(tmp_path / "workflow")
    config = copy.deepcopy(TINY)
    config["preprocess"] = {"shards": 1}
    config["vqvae"]["train"].update(steps=4, checkpoint_every=4, log_every=2)
    records = run_through_profile(cluster, workdir, PROFILE, config)

    jobs = {job["Comment"].removeprefix("rule_").split("_wildcards_")[0]: job for job in records}
    assert set(jobs) == set(EXPECTED_JOBS) and len(records) == len(jobs), records
    for rule, (cpus, memory, time_limit, gpus) in EXPECTED_JOBS.items():
        job = jobs[rule]
        assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), job
        assert job["BatchFlag"] == "1" and job["WorkDir"] == str(workdir), job
        assert int(job["NumCPUs"]) == cpus and job["MinMemoryNode"] == memory, job
        assert job["TimeLimit"] == time_limit, job
        assert job.get("TresPerJob") == gpus, job
        logs = job_logs(workdir, rule)
        assert [log.stem for log in logs] == [job["JobId"]], (rule, logs)
        assert f"rule {rule}:" in logs[0].read_text()


def test_a_two_gpu_training_job_runs_one_launcher_with_two_ranks(
    cluster: Cluster, tmp_path: Path
) -> None:
    """`gpu: 2` for training in a copy of the profile (as a site adapts it): one SLURM job with
    one task and 2 GPUs runs one torchrun, whose 2 processes train together. (Some versions of
    the executor plugin add --ntasks-per-gpu, which would start one torchrun per GPU.)"""
    workdir = copy_workflow(tmp_path / "workflow")
    config = copy.deepcopy(TINY)
    config["preprocess"] = {"shards": 1}
    config["vqvae"]["train"].update(steps=2, checkpoint_every=2, log_every=1)  # batch 8: 2 x 4
    snakemake(workdir, f"results/{RUN}/data/train.h5", "--configfile",
              write_config(workdir / "tiny.yaml", config))  # the data here; training on SLURM
    settings = yaml.safe_load((PROFILE / "config.yaml").read_text())
    settings["set-resources"]["train_vqvae"]["gpu"] = 2
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(yaml.safe_dump(settings))
    calls = tmp_path / "python.calls"
    records = run_through_profile(cluster, workdir, profile, config,
                                  [python_shim(tmp_path / "bin", calls)])

    (job,) = records  # only the training went to SLURM
    assert job["Comment"].startswith("rule_train_vqvae"), job
    assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), job
    assert job["TresPerJob"] == "gres:gpu:2" and job["NumTasks"] == "1", job
    # inside the job: one srun step of one task with both GPUs, and in it one launcher
    steps = [line.split("\t")[1] for line in cluster.srun_calls.read_text().splitlines()
             if line.split("\t")[0] == job["JobId"]]
    assert len(steps) == 1 and steps[0].startswith("-n1 ") and "--gpus=2" in steps[0], steps
    launches = [line.split("\t") for line in calls.read_text().splitlines()
                if "torch.distributed.run" in line]
    assert len(launches) == 1, launches
    job_id, step_id, tasks, arguments = launches[0]
    assert (job_id, tasks) == (job["JobId"], "1") and step_id != "", launches
    assert "--nproc-per-node 2 -m lvt.stages.train_vqvae" in arguments
    # the job's log: the job ran once in the allocation, with its 2 GPUs
    (log,) = job_logs(workdir, "train_vqvae")
    text = log.read_text()
    assert log.stem == job["JobId"] and text.count("localrule train_vqvae:") == 1, text
    assert text.count(", gpu=2\n") == 2, text  # the submitted job and the job in the allocation
    # the launcher's 2 processes formed one group: its rank 0 logged it, once
    stage_log = (workdir / "results" / RUN / "logs" / "train_vqvae.log").read_text()
    assert stage_log.count(", 2 process(es)") == 1 and "finished 2 steps" in stage_log
