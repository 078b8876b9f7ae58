"""Representations: spike windows turned into network inputs.

* `kernels`: numba kernels over packed ``.dat`` bytes (counts per range, TFI intervals, value counts)
* `catalog`: every ``--repr`` as a pure function with its parameters (`make_representation`)
* `raw`: bit-exact frames, stored bit-packed (raw, svrt-encoding25)
* `texture`: SpikeCV's TFI (tfi) and S-SDM's TFP pair (tfp-ls)
* `context`: `StreamWindow`, a window with the stream frames around it (tfi reads past the window)
* `hot_pixels`: firing rates of a whole stream, hot-pixel detection and 3x3 median repair
"""
