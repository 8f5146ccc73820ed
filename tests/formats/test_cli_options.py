"""The source options exist on every ``submit`` subcommand, whoever adds the subcommand."""

from __future__ import annotations

import click

from producer.cli import submit

SOURCE_OPTIONS = {"include", "exclude", "hidden", "text_field", "id_field", "force"}


def test_every_submit_subcommand_has_the_source_options() -> None:
    assert submit.commands  # at least classify
    for name, command in submit.commands.items():
        options = {p.name: p for p in command.params if isinstance(p, click.Option)}
        assert set(options) >= SOURCE_OPTIONS, (name, SOURCE_OPTIONS - set(options))
        for option_name in SOURCE_OPTIONS:
            option = options[option_name]
            assert option.envvar and option.show_envvar and option.help, (name, option_name)
