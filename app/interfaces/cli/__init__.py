"""``cloudops``: the one console script. Each module here holds the commands of one concern; importing
them registers them on the group."""

from app.interfaces.cli import accounts, estate, planning, serving, tools  # noqa: F401 - registers the commands
from app.interfaces.cli.base import main
from app.interfaces.cli.index import index

main.add_command(index)

__all__ = ["main"]
