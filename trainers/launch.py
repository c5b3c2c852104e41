"""The torchrun command line for `hs train rm`: one machine, several, or a SLURM job.

Training across nodes runs on torchrun (FSDP2 over NCCL): `hs train rm` only builds its
command. With `--nnodes N` (N > 1) every node runs the same `hs train rm` with its own
`--node-rank`, and all name the same `--master-addr`/`--master-port` (torchrun's static
rendezvous). Inside a SLURM allocation of several nodes the values come from SLURM's
environment when not given: SLURM_NNODES, SLURM_NODEID, and the first host of
SLURM_JOB_NODELIST (expanded with `scontrol show hostnames`) or MASTER_ADDR.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_PORT = 29500


class LaunchError(Exception):
    """Flags that do not make a torchrun command (shown without a traceback)."""


@dataclass(frozen=True)
class Nodes:
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int = DEFAULT_PORT


def first_slurm_host(nodelist: str) -> str | None:
    """The first host of a SLURM node list ("gpu[01-04]" -> "gpu01")."""
    scontrol = shutil.which("scontrol")
    if scontrol:
        done = subprocess.run(
            [scontrol, "show", "hostnames", nodelist], capture_output=True, text=True
        )
        hosts = done.stdout.split()
        if done.returncode == 0 and hosts:
            return hosts[0]
    if "[" not in nodelist:
        return nodelist.split(",")[0] or None
    return None


def nodes_from(given: Nodes, env: Mapping[str, str]) -> Nodes:
    """The given flags, filled in from a multi-node SLURM job when they were left out."""
    slurm_nodes = int(env.get("SLURM_NNODES", "1") or 1)
    if given.nnodes > 1 or slurm_nodes <= 1:
        return given
    addr = given.master_addr or env.get("MASTER_ADDR")
    if not addr and env.get("SLURM_JOB_NODELIST"):
        addr = first_slurm_host(env["SLURM_JOB_NODELIST"])
    port = int(env.get("MASTER_PORT", given.master_port))
    return Nodes(slurm_nodes, int(env.get("SLURM_NODEID", "0")), addr, port)


def torchrun_command(nproc: int, nodes: Nodes) -> list[str] | None:
    """`python -m torch.distributed.run ...`, or None for a plain single process."""
    launcher = [sys.executable, "-m", "torch.distributed.run"]
    if nodes.nnodes <= 1:
        if nproc == 1:
            return None
        # --standalone: a free rendezvous port on this machine.
        return [*launcher, "--standalone", f"--nproc_per_node={nproc}"]
    if not nodes.master_addr:
        raise LaunchError(
            f"--nnodes {nodes.nnodes}: give --master-addr HOST (the rank-0 node), the same "
            "on every node"
        )
    if not 0 <= nodes.node_rank < nodes.nnodes:
        raise LaunchError(f"--node-rank {nodes.node_rank}: expected 0..{nodes.nnodes - 1}")
    return [
        *launcher,
        f"--nnodes={nodes.nnodes}",
        f"--node_rank={nodes.node_rank}",
        f"--nproc_per_node={nproc}",
        f"--master_addr={nodes.master_addr}",
        f"--master_port={nodes.master_port}",
    ]
