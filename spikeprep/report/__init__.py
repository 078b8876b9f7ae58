"""Report: what the CLI shows people: rich tables, progress bars and preview sheets.

With `spikeprep.commands`, the only place that draws: the library returns data and takes
progress callbacks.

* `tables`: result tables of every command
* `import_table`: the table of an import plan
* `progress`: the voxelize progress bar fed by `voxelize_dataset(progress=...)`
* `previews`: check-sync and cache preview sheets (matplotlib)
"""
