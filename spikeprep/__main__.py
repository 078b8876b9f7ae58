"""``python -m spikeprep``: the same as the ``spikeprep`` command."""

from .cli import main

main(prog_name="spikeprep")
