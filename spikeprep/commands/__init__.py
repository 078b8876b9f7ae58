"""The `spikeprep` subcommands, grouped by what they work on; `spikeprep.cli` assembles them.

``common`` holds what every command shares (consoles, error reporting); ``data`` the commands
that make or check a DATA_ROOT (build-sync, check-sync, import, simulate); ``cache`` those that
build, check and show a CACHE (voxelize, verify, info) and the demo.
"""
