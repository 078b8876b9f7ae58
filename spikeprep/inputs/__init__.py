"""Inputs: every byte of DATA_ROOT, read (and, for the simulator and importers, written) here.

* `dat`: the SpikeCV ``.dat`` layout; `SpikeStream` (memory-mapped reader), `DatWriter`
* `images`: RGB frames: decoding with conversion notes, listing, sizes from headers
* `layout`: DATA_ROOT's folders (``blur/``, ``sharp/``, ``spike/``) and its sequences
* `sequence_config`: a sequence's ``config.yaml`` (geometry, orientation, timing)
* `files`: atomic writes, UTF-8 checks, output errors
* `fingerprint`: content hashes of source files
"""
