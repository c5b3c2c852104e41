"""`hs train`: the trainers package's commands. Kept light: heavy imports happen inside commands."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import typer

app = typer.Typer(
    name="train",
    help="Reward-model training (regression, Bradley-Terry) with FSDP2.",
    no_args_is_help=True,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@app.command("rm")
def rm(
    config: Path = typer.Argument(..., help="Training config (TOML); see examples/train_*.toml."),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a config key, e.g. --set optim.lr=2e-5 (repeatable)."
    ),
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="Processes per node; >1 launches torchrun with FSDP2."
    ),
    nnodes: int = typer.Option(
        1, "--nnodes", min=1, help="Nodes; run the same command on each (SLURM: detected)."
    ),
    node_rank: int = typer.Option(0, "--node-rank", min=0, help="This node's rank, 0..N-1."),
    master_addr: str | None = typer.Option(
        None, "--master-addr", help="Host of node 0, the same on every node."
    ),
    master_port: int = typer.Option(29500, "--master-port", help="Rendezvous port on node 0."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
) -> None:
    """Train a reward model (regression, Bradley-Terry or the HelpSteer2-Preference recipe)."""
    from trainers.config import ConfigError, load_config
    from trainers.launch import LaunchError, Nodes, nodes_from, torchrun_command

    try:
        load_config(config, overrides)  # fail fast, before starting any process
        given = Nodes(nnodes, node_rank, master_addr, master_port)
        launcher = torchrun_command(nproc, nodes_from(given, os.environ))
    except (ConfigError, LaunchError) as exc:
        _fail(str(exc))
    args = [str(config), *(a for o in overrides for a in ("--set", o))]
    if quiet:
        args.append("--quiet")
    if launcher is None or "WORLD_SIZE" in os.environ:
        from trainers.train_rm import main

        code = main(args)
    else:
        code = subprocess.call([*launcher, "-m", "trainers.train_rm", *args])
    if code:
        raise typer.Exit(code)


@app.command("expo")
def expo_command(
    init: Path = typer.Option(..., "--init", help="Checkpoint the run started from."),
    new: Path = typer.Option(..., "--new", help="Trained checkpoint."),
    alpha: float = typer.Option(..., "--alpha", help="Extrapolation strength (e.g. 0.3)."),
    out: Path = typer.Option(..., "--out", help="Folder for the extrapolated checkpoint."),
) -> None:
    """ExPO: write theta_new + alpha * (theta_new - theta_init) as a new HF checkpoint."""
    from trainers.expo import ExpoError, expo

    try:
        expo(init, new, alpha, out)
    except ExpoError as exc:
        _fail(str(exc))
    typer.echo(str(out))


@app.command("tiny-model")
def tiny_model(
    out: Path = typer.Argument(..., help="Folder for the model and tokenizer."),
    arch: str = typer.Option("llama", help="llama (decoder) or bert (encoder)."),
    hidden: int = typer.Option(32, min=8, help="Hidden size."),
    layers: int = typer.Option(2, min=1, help="Number of layers."),
    causal_lm: bool = typer.Option(
        False,
        "--causal-lm",
        help="llama with its LM head (LlamaForCausalLM), e.g. for TRL's DPOTrainer on a "
        "`dpo` export.",
    ),
) -> None:
    """Write a tiny random-weight base model with an offline tokenizer (smoke runs, tests).

    Prints the folder on stdout.
    """
    from trainers.tiny import build_model

    if arch not in ("llama", "bert"):
        _fail(f"--arch must be llama or bert, got {arch!r}")
    if causal_lm and arch != "llama":
        _fail("--causal-lm needs --arch llama")
    build_model(out, arch=arch, hidden=hidden, layers=layers, causal_lm=causal_lm)
    typer.echo(str(out))
