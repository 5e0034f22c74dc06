"""`python -m emovlm` runs the command line."""

from emovlm.cli import main

main()
