"""`python -m latentsight` runs the command line."""

from latentsight.cli import app

app(prog_name="latentsight")
