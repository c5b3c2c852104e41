"""The `hs` command: core commands plus every package's sub-commands.

Packages plug in through the `helpsteer.commands` entry-point group (name -> a
`typer.Typer` for a command group, or a plain function for a single top-level command
such as `hs report`), so this module assembles them without importing them by name.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from helpsteer import __version__
from helpsteer.build import build_dataset_command

app = typer.Typer(
    name="hs",
    help="helpsteer-workbench: build, judge, train on and benchmark reward-model data.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.command("build-dataset")(build_dataset_command)


@app.command("version")
def version() -> None:
    """Print the workbench version."""
    typer.echo(__version__)


def _add_plugins() -> None:
    for ep in sorted(entry_points(group="helpsteer.commands"), key=lambda e: e.name):
        try:
            sub = ep.load()
        except ImportError as exc:  # an optional extra that is not installed
            print(f"hs: sub-command {ep.name!r} unavailable: {exc}", file=sys.stderr)
            continue
        if not isinstance(sub, typer.Typer):
            app.command(ep.name)(sub)
        elif sub.registered_commands or sub.registered_groups:
            app.add_typer(sub, name=ep.name)


_add_plugins()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
