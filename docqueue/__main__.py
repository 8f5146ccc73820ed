"""``python -m docqueue``: the ``docqueue`` command, for environments without the console script
on PATH (a container's ``python -m``, a virtualenv not activated)."""

from __future__ import annotations


def run() -> None:
    """The CLI's root group; imported here, not at the top, so importing the core loads no CLI."""
    from producer.cli import main

    main(prog_name="docqueue")


if __name__ == "__main__":
    run()
