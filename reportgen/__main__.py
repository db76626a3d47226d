"""``python -m reportgen``: the same command line as the ``reportgen`` script."""

from reportgen.cli.main import main

main(prog_name="reportgen")
