"""The `hs` command: core commands plus every package's sub-commands.

Packages plug in through the `helpsteer.commands` entry-point group (name -> a
`typer.Typer` for a command group, or a plain function for a single top-level command
such as `hs report`), so this module assembles them without importing them by name.
"""

from __future__ import annotations

import gc
import sys
from importlib.metadata import entry_points
from typing import Annotated

import click
import typer
from typer.core import TyperGroup

import helpsteer.allocator  # noqa: F401  (before anything imports polars)
from helpsteer import __version__
from helpsteer.build import build_dataset_command
from helpsteer.extras import missing_extra_message

EXIT_CODES = (
    "Exit status, for every command: 0 done; 1 the run failed (it ran and produced "
    "nothing usable, or a check it ran did not pass); 2 usage, config or setup error "
    "(a bad option, an invalid config, a missing optional extra); 130 interrupted."
)

SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


class HsGroup(TyperGroup):
    """The root group: a missing optional extra anywhere below ends with one line."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ImportError as exc:
            line = missing_extra_message(exc, ctx.invoked_subcommand or "")
            if line is None:
                raise
            click.echo(f"error: {line}", err=True)
            raise typer.Exit(2) from None


def _show_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


app = typer.Typer(
    name="hs",
    cls=HsGroup,
    help="helpsteer-workbench: build, judge, train on and benchmark reward-model data.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.command("build-dataset", epilog=EXIT_CODES)(build_dataset_command)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """helpsteer-workbench: build, judge, train on and benchmark reward-model data."""


@app.command("version")
def version() -> None:
    """Print the workbench version."""
    typer.echo(__version__)


@app.command("completion")
def completion(
    shell: Annotated[str, typer.Argument(help="bash, zsh, fish or powershell.")],
) -> None:
    """Print the completion script for SHELL.

    bash: `hs completion bash > ~/.local/share/bash-completion/completions/hs`;
    zsh: `hs completion zsh > "${fpath[1]}/_hs"`;
    fish: `hs completion fish > ~/.config/fish/completions/hs.fish`.
    """
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        raise typer.BadParameter(f"{shell!r}: expected one of {', '.join(SHELLS)}")
    typer.echo(get_completion_script(prog_name="hs", complete_var="_HS_COMPLETE", shell=shell))


def _add_plugins() -> None:
    for ep in sorted(entry_points(group="helpsteer.commands"), key=lambda e: e.name):
        try:
            sub = ep.load()
        except ImportError as exc:  # an optional extra that is not installed
            why = missing_extra_message(exc) or str(exc)
            print(f"hs: sub-command {ep.name!r} unavailable: {why}", file=sys.stderr)
            continue
        if not isinstance(sub, typer.Typer):
            app.command(ep.name, epilog=EXIT_CODES)(sub)
        elif sub.registered_commands or sub.registered_groups:
            app.add_typer(sub, name=ep.name, epilog=EXIT_CODES)


_add_plugins()


def main() -> None:
    try:
        app()
    finally:
        # Nothing the command made needs a collection once it is done, yet Python's own
        # at exit walked every object still alive: 0.3 s after a million-row build.
        gc.freeze()


if __name__ == "__main__":
    main()
