"""`python -m vrt_train` (and `torchrun -m vrt_train`): the `vrt-train` command."""

from .cli import main

main()
