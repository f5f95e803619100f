"""`python -m bmad` runs the command line."""

from bmad.cli.main import run

run()
