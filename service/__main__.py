"""`python -m service` is the `fleet` CLI."""

from service.cli import main

main()
