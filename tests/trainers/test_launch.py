"""`hs train rm` across nodes: the torchrun command it builds from flags or SLURM."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from trainers.cli import app
from trainers.launch import LaunchError, Nodes, nodes_from, torchrun_command

runner = CliRunner()
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def test_single_process_needs_no_launcher():
    assert torchrun_command(1, Nodes()) is None
    assert torchrun_command(4, Nodes()) == [*TORCHRUN, "--standalone", "--nproc_per_node=4"]


def test_two_nodes_use_a_static_rendezvous():
    command = torchrun_command(8, Nodes(2, 1, "gpu01", 29400))
    assert command == [
        *TORCHRUN,
        "--nnodes=2",
        "--node_rank=1",
        "--nproc_per_node=8",
        "--master_addr=gpu01",
        "--master_port=29400",
    ]


@pytest.mark.parametrize(
    ("nodes", "message"),
    [(Nodes(2, 0, None), "--master-addr"), (Nodes(2, 2, "h"), "expected 0..1")],
)
def test_bad_node_flags(nodes, message):
    with pytest.raises(LaunchError, match=message):
        torchrun_command(1, nodes)


def test_slurm_environment_fills_the_flags():
    env = {
        "SLURM_NNODES": "4",
        "SLURM_NODEID": "3",
        "SLURM_JOB_NODELIST": "node-a,node-b,node-c,node-d",
        "MASTER_PORT": "29555",
    }
    assert nodes_from(Nodes(), env) == Nodes(4, 3, "node-a", 29555)
    # Flags given on the command line win over SLURM's.
    assert nodes_from(Nodes(2, 1, "x"), env) == Nodes(2, 1, "x")
    assert nodes_from(Nodes(), {"SLURM_NNODES": "1"}) == Nodes()


def test_cli_passes_node_flags_to_torchrun(tmp_path, monkeypatch):
    config = tmp_path / "c.toml"
    config.write_text('output_dir = "o"\n[model]\nname_or_path = "m"\n[data]\ntrain = "t.jsonl"\n')
    seen = {}

    def fake_call(command):
        seen["command"] = command
        return 0

    monkeypatch.setattr("trainers.cli.subprocess.call", fake_call)
    args = ["rm", str(config), "--nproc", "2", "--nnodes", "2", "--node-rank", "1"]
    result = runner.invoke(app, [*args, "--master-addr", "head", "--master-port", "29501"])
    assert result.exit_code == 0, result.output
    assert seen["command"][:8] == [
        *TORCHRUN,
        "--nnodes=2",
        "--node_rank=1",
        "--nproc_per_node=2",
        "--master_addr=head",
        "--master_port=29501",
    ]
    assert seen["command"][8:11] == ["-m", "trainers.train_rm", str(config)]
    result = runner.invoke(app, ["rm", str(config), "--nnodes", "2"])
    assert result.exit_code == 2 and "--master-addr" in result.output
