"""The command line builds only the command its first argument names, and says the same as the whole app."""

from __future__ import annotations

from typing import Any

import pytest
import typer.core
import typer.main
import typer.testing

import cli


def names() -> list[str]:
    """Every top-level command and group of the app, by the name a user types."""
    commands = [
        info.name or typer.main.get_command_name(info.callback.__name__)
        for info in cli.app.registered_commands
        if info.callback is not None
    ]
    return [*commands, *(str(group.name) for group in cli.app.registered_groups)]


def said(command: Any, args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `command` (a click command) run on `args` as `pain-sdm`."""
    monkeypatch.setattr(typer.testing, "_get_command", lambda given: given)
    result = typer.testing.CliRunner().invoke(command, args, prog_name="pain-sdm")
    return result.exit_code, result.stdout, result.stderr


def test_every_command_and_group_is_found_by_its_name() -> None:
    everything = typer.main.get_command(cli.app)
    assert isinstance(everything, typer.core.TyperGroup)
    assert sorted(names()) == sorted(everything.commands)
    for name in names():
        chosen = cli.command_for([name, "--help"])
        assert isinstance(chosen, typer.core.TyperGroup)
        assert list(chosen.commands) == [name]


@pytest.mark.parametrize("args", [[], ["--help"], ["evaluat"], ["no-such-command", "x"]])
def test_anything_but_a_command_name_first_gets_the_whole_app(args: list[str]) -> None:
    assert cli.command_for(args) is cli.app


def cases() -> list[list[str]]:
    """Help and a bad option for every command and group; for a group, also nothing and an unknown command."""
    groups = {str(group.name) for group in cli.app.registered_groups}
    out = []
    for name in names():
        out += [[name, "--help"], [name, "--no-such-option"]]
        if name in groups:  # a command run with nothing else would run (serve would serve)
            out += [[name], [name, "no-such-command"]]
    return out


@pytest.mark.parametrize("args", cases(), ids=" ".join)
def test_the_command_alone_says_what_the_whole_app_says(args: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    whole = said(typer.main.get_command(cli.app), args, monkeypatch)
    alone = said(cli.command_for(args), args, monkeypatch)
    assert alone == whole
    assert (whole[0] == 0) == (args[1:] == ["--help"]), whole
    assert whole[1] or whole[2]
