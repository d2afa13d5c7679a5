"""`fleet dlq ...`: placeholder replaced below."""

import typer

dlq_cli = typer.Typer()
