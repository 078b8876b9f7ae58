"""Representations: spike windows turned into network inputs.

* `kernels`: numba kernels over packed ``.dat`` bytes (counts per range, value counts)
* `catalog`: every ``--repr`` as a pure function with its parameters (`make_representation`)
* `hot_pixels`: firing rates of a whole stream, hot-pixel detection and 3x3 median repair
"""
