"""Alignment: which spike frames belong to each RGB frame's exposure, and proof from the data.

* `windows`: window sources (timestamps files, per-frame ``.dat`` files, centred windows)
* `build`: ``spikeprep build-sync``: every sequence's ``sync.json`` (`build_sync`)
* `scores`: one window against one image: orientation and correlation scores
* `check`: ``spikeprep check-sync``: offset and orientation measured per sequence (`check_sync`)
* `verdict`: a sequence's measurements judged ok / shifted / weak
* `fix`: ``check-sync --fix``: the measured shift written back
"""
