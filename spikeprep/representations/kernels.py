"""Numba kernels: packed spike frames as they lie on disk -> per-window counts and traces.

Every kernel reads one window as ``(L, H*W/8)`` uint8 packed frames (the zero-copy view from
`SpikeStream.packed`), never unpacked to bits, and writes ``(C, H, W)`` in image orientation
(``flipud=True``: output row ``r`` is stored row ``H-1-r``) into a preallocated array. The
representations built on them are in `spikeprep.representations.catalog`; `spikeprep.voxel.voxelize`
is the stage's entry point.

Kernel design (SWAR, "SIMD within a register"): a frame is a flat run of ``H*W/8`` bytes. Each
thread owns a block of 512 bytes (4096 pixels) and, frame after frame, loads its bytes as
little-endian uint64 words; for bit ``k`` it adds ``(word >> k) & 0x0101010101010101`` into
accumulator ``k`` of that word, counting 8 pixels at once, one per byte lane. Lane ``b`` of
accumulator ``k`` of word ``w`` is byte ``j = j0 + 8w + b`` of the frame (``j0``: the block's
first byte), pixel ``8j + k`` in stored (bottom-up, row-major) order. A lane holds at most 255,
so accumulators are flushed into the
wide output every 255 frames and at the end of each counted range. Working on the flat frame
rather than on rows means rows need not be whole bytes: with ``W % 8 != 0`` a byte straddles
two rows, which only the flush (pixel -> row, column) has to know, and that runs once per 255
frames; a tail of ``H*W/8 % 8`` bytes is loaded as a zero-padded partial word.

Debug switch: ``SPIKEPREP_DISABLE_JIT=1`` in the environment (read once, at import) leaves
every kernel a plain Python function running the same code (slow: tiny inputs only; the one
difference is the 8-byte load, ``int.from_bytes`` instead of an unaligned machine load). Numba's
own ``NUMBA_DISABLE_JIT=1`` does the same for all of numba. Jitted kernels are ``cache=True``.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import UsageError, VoxelError

#: True when ``SPIKEPREP_DISABLE_JIT=1`` was set when this module was imported.
JIT_DISABLED = os.environ.get("SPIKEPREP_DISABLE_JIT", "0").strip() not in ("", "0")

if JIT_DISABLED:
    prange = range

    def _jit(parallel=False, inline="never"):
        def identity(func):
            func.py_func = func  # same attribute as a numba dispatcher, for uniform tests
            return func
        return identity
else:
    import numba
    from numba import prange

    def _jit(parallel=False, inline="never"):
        """numba.njit as every kernel here uses it; ``inline="always"`` for helpers whose loops
        must be optimised inside their caller's (LLVM does not inline them across the call)."""
        return numba.njit(cache=True, parallel=parallel, nogil=True, boundscheck=False, inline=inline)

_LANE_ONES = np.uint64(0x0101010101010101)
_BYTE = np.uint64(0xFF)
#: Bytes of a frame one thread counts at a time: 64 words, 512 uint64 accumulators = 4 KiB.
_BLOCK_BYTES = 512
#: A byte lane overflows past 255: flush at least this often.
_MAX_FLUSH_FRAMES = 255


def _load_word(flat, i):
    """Little-endian uint64 from bytes ``flat[i:i+8]`` (any alignment)."""
    return np.uint64(int.from_bytes(flat[i:i + 8].tobytes(), "little"))


def _load_partial_word(flat, i, n_bytes):
    """Little-endian uint64 from ``flat[i:i+n_bytes]`` (n_bytes <= 8), zero-padded."""
    word = np.uint64(0)
    for b in range(n_bytes):
        word |= np.uint64(flat[i + b]) << np.uint64(8 * b)
    return word


if not JIT_DISABLED:
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic, overload

    @intrinsic
    def _unaligned_u64(typingctx, arr, index):
        """One unaligned 8-byte load: frames of H*W/8 bytes put words at any byte offset."""
        if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and arr.ndim == 1):
            return None
        sig = types.uint64(arr, types.intp)

        def codegen(context, builder, signature, args):
            array = context.make_array(signature.args[0])(context, builder, args[0])
            byte_ptr = builder.gep(array.data, [args[1]])
            word_ptr = builder.bitcast(byte_ptr, ir.IntType(64).as_pointer())
            return builder.load(word_ptr, align=1)

        return sig, codegen

    @overload(_load_word, jit_options={"cache": True})
    def _load_word_jit(flat, i):
        return lambda flat, i: _unaligned_u64(flat, i)

    _load_partial_word = _jit()(_load_partial_word)


@_jit(inline="always")
def add_frame_block(flat, base, acc, n_words, full_words, tail_bytes):
    """SWAR count of one frame's block: bit ``k`` of the 8 bytes of word ``w`` (bytes
    ``flat[base + 8*w : base + 8*w + 8]``, the last word ``tail_bytes`` long when non-zero) is
    added into the byte lanes of ``acc[k * n_words + w]`` (uint64). k-major, so the loop over
    words vectorizes. Lanes overflow past 255 frames: callers drain ``acc`` before that.
    """
    for k in range(8):
        shift = np.uint64(k)
        row = k * n_words
        for w in range(full_words):
            acc[row + w] += (_load_word(flat, base + 8 * w) >> shift) & _LANE_ONES
    if tail_bytes:
        # np.uint64(): called from plain Python (py_func), the jitted helper returns a Python
        # int, which NumPy 1.x promotes to float64 in `>>`
        word = np.uint64(_load_partial_word(flat, base + 8 * full_words, tail_bytes))
        for k in range(8):
            acc[k * n_words + full_words] += (word >> np.uint64(k)) & _LANE_ONES


@_jit()
def _flush(acc, n_words, out, channel, j0, j1, width, height, flipud, first):
    """Add (or, when ``first``, store) the byte-lane counts of bytes ``[j0, j1)`` into ``out``.

    ``acc[k * n_words + w]`` lane ``b`` counts bit ``k`` of byte ``j0 + 8*w + b``, which is
    pixel ``8*(j0 + 8*w + b) + k`` in stored (bottom-up, row-major) order.
    """
    for j in range(j0, j1):
        w, lane = divmod(j - j0, 8)
        shift = np.uint64(8 * lane)
        pixel = 8 * j
        row = pixel // width
        col = pixel - row * width
        for k in range(8):
            count = (acc[k * n_words + w] >> shift) & _BYTE
            out_row = height - 1 - row if flipud else row
            if first:
                out[channel, out_row, col] = count
            else:
                out[channel, out_row, col] += count
            col += 1
            if col == width:  # reached mid-byte only when W % 8 != 0
                col = 0
                row += 1


@_jit(parallel=True)
def count_ranges_kernel(flat, frame_bytes, starts, ends, height, width, flipud, out):
    """Spike counts of frame ranges, straight from packed bytes (the core kernel).

    flat: ``(L*H*W/8,)`` uint8, the window's packed frames back to back; starts, ends:
    ``(C,)`` int64 frame ranges (may overlap, may be empty); out: ``(C, H, W)`` integer,
    filled with ``out[c] = spikes in frames [starts[c], ends[c])`` (image orientation if
    flipud). Unchecked: callers validate (see `count_ranges`).
    """
    n_blocks = (frame_bytes + _BLOCK_BYTES - 1) // _BLOCK_BYTES
    for block in prange(n_blocks):
        j0 = block * _BLOCK_BYTES
        j1 = min(j0 + _BLOCK_BYTES, frame_bytes)
        full_words = (j1 - j0) // 8
        tail_bytes = (j1 - j0) - 8 * full_words
        n_words = full_words + (1 if tail_bytes else 0)
        acc = np.empty(8 * n_words, np.uint64)
        for channel in range(len(starts)):
            frame, stop = starts[channel], ends[channel]
            first = True
            while first or frame < stop:
                chunk_stop = min(frame + _MAX_FLUSH_FRAMES, stop)
                acc[:] = 0
                for f in range(frame, chunk_stop):
                    add_frame_block(flat, f * frame_bytes + j0, acc, n_words, full_words, tail_bytes)
                _flush(acc, n_words, out, channel, j0, j1, width, height, flipud, first)
                first = False
                frame = chunk_stop
    return out


@_jit(parallel=True)
def ema_kernel(flat, frame_bytes, sample_ends, decays, height, width, flipud, out):
    """Exponentially decayed spike integrals, sampled after given frames.

    ``v_t = v_{t-1} * decays[d] + s_t`` with ``v_{-1} = 0`` per pixel, in float64, for each of
    the ``D`` decays; ``out[d*M + m] = v`` after frame ``sample_ends[m] - 1`` (``M`` samples,
    increasing ends). flat as in `count_ranges_kernel`; out: ``(D*M, H, W)`` float.
    """
    n_blocks = (frame_bytes + _BLOCK_BYTES - 1) // _BLOCK_BYTES
    n_decays, n_samples = len(decays), len(sample_ends)
    for block in prange(n_blocks):
        j0 = block * _BLOCK_BYTES
        j1 = min(j0 + _BLOCK_BYTES, frame_bytes)
        n_bytes = j1 - j0
        # trace[d, k, j - j0]: pixel 8*j + k; k-major so the loop over bytes vectorizes
        trace = np.zeros((n_decays, 8, n_bytes), np.float64)
        frame = 0
        for m in range(n_samples):
            for f in range(frame, sample_ends[m]):
                base = f * frame_bytes + j0
                for d in range(n_decays):
                    decay = decays[d]
                    for k in range(8):
                        for i in range(n_bytes):
                            trace[d, k, i] = trace[d, k, i] * decay + ((flat[base + i] >> k) & 1)
            frame = sample_ends[m]
            for j in range(j0, j1):
                pixel = 8 * j
                row = pixel // width
                col = pixel - row * width
                for k in range(8):
                    out_row = height - 1 - row if flipud else row
                    for d in range(n_decays):
                        out[d * n_samples + m, out_row, col] = trace[d, k, j - j0]
                    col += 1
                    if col == width:
                        col = 0
                        row += 1
    return out


@_jit(inline="always")
def _first_spikes(flat, base, n_bytes, frame, done, found):
    """For bits not yet ``done`` (a mask per byte), record ``frame`` in ``found[k, i]`` where bit
    ``k`` of byte ``flat[base + i]`` fires, and mark them done."""
    for i in range(n_bytes):
        new = flat[base + i] & (0xFF ^ done[i])
        if new:
            for k in range(8):
                if (new >> k) & 1:
                    found[k, i] = frame
            done[i] |= new


@_jit(parallel=True)
def tfi_kernel(flat, frame_bytes, lo, keys, half, height, width, flipud, out):
    """SpikeCV's TFI per pixel, straight from packed bytes.

    flat: ``(n*H*W/8,)`` uint8, stream frames ``[lo, lo + n)`` back to back; keys: ``(S,)``
    int64 stream frames. ``out[c]`` (float32 ``(S, H, W)``) = ``255 / (latter - former)`` with
    former the last spike frame in ``[max(key - half + 1, 1), key]``, latter the first in
    ``[key + 1, key + half]``, ``255 / (2 * half)`` when either is missing. Unchecked: the
    caller makes sure the frames searched lie in ``[lo, lo + n)`` (`spikeprep.representations.texture`).
    """
    n_blocks = (frame_bytes + _BLOCK_BYTES - 1) // _BLOCK_BYTES
    for block in prange(n_blocks):
        j0 = block * _BLOCK_BYTES
        n_bytes = min(j0 + _BLOCK_BYTES, frame_bytes) - j0
        # frame by frame over the block's bytes (sequential loads); one byte serves 8 pixels
        former = np.zeros((8, n_bytes), np.int64)
        latter = np.zeros((8, n_bytes), np.int64)
        done = np.zeros(n_bytes, np.int64)
        for c in range(len(keys)):
            key = keys[c]
            former[:] = 0
            latter[:] = 0
            done[:] = 0
            for f in range(key, max(key - half + 1, 1) - 1, -1):
                _first_spikes(flat, (f - lo) * frame_bytes + j0, n_bytes, f, done, former)
            for i in range(n_bytes):
                done[i] = 0xFF ^ done[i]  # no former: the interval is 2 * half whatever follows
            for f in range(key + 1, key + half + 1):
                _first_spikes(flat, (f - lo) * frame_bytes + j0, n_bytes, f, done, latter)
            for i in range(n_bytes):
                pixel = 8 * (j0 + i)
                row = pixel // width
                col = pixel - row * width
                for k in range(8):
                    interval = latter[k, i] - former[k, i] if latter[k, i] > 0 else 2 * half
                    out[c, height - 1 - row if flipud else row, col] = np.float32(255) / np.float32(interval)
                    col += 1
                    if col == width:
                        col = 0
                        row += 1
    return out


# -- validated entry points -----------------------------------------------------------------

@_jit()
def value_counts_kernel(flat, lo, out):
    """Per-row histogram: ``out[c, flat[c, i] - lo] += 1`` for ``flat`` ``(C, N)`` integers and
    ``out`` ``(C, span)`` int64 (zeroed by the caller; ``span`` covers every value)."""
    for c in range(flat.shape[0]):
        row = flat[c]
        counts = out[c]
        for i in range(row.shape[0]):
            counts[np.int64(row[i]) - lo] += 1
    return out


def check_packed(packed, height: int, width: int) -> np.ndarray:
    """Validate a ``(L, H*W/8)`` uint8 window; return it as a flat C-contiguous uint8 array."""
    if height <= 0 or width <= 0 or (height * width) % 8:
        raise VoxelError("spike frame geometry is not whole bytes",
                         found=f"{height}x{width} (HxW) = {height * width} pixels",
                         expected="H, W > 0 and H*W divisible by 8", fix="check spike_h/spike_w")
    frame_bytes = height * width // 8
    if not isinstance(packed, np.ndarray) or packed.ndim != 2 or packed.dtype != np.uint8:
        found = (f"{type(packed).__name__}" if not isinstance(packed, np.ndarray)
                 else f"{packed.dtype} array of shape {packed.shape}")
        raise VoxelError("packed spike window must be a 2-D uint8 array", found=found,
                         expected=f"uint8 array of shape (L, {frame_bytes})",
                         fix="pass SpikeStream.packed(begin, end), not unpacked frames")
    if packed.shape[1] != frame_bytes:
        raise VoxelError("packed spike window has the wrong number of bytes per frame",
                         found=f"shape {packed.shape}",
                         expected=f"(L, {frame_bytes}) for {height}x{width} (HxW) frames",
                         fix="check spike_h/spike_w against the stream")
    return np.ascontiguousarray(packed).reshape(-1)


def uint_dtype_for(max_count: int) -> np.dtype:
    """Narrowest unsigned dtype holding counts up to ``max_count`` exactly."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_count <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


def check_out(out, shape: tuple, dtype: np.dtype, *, max_value: int | None = None,
              min_value: int = 0, kind: str = "integer") -> np.ndarray:
    """Allocate ``(shape, dtype)`` or check a caller's ``out``: shape, C order, range of values."""
    if out is None:
        return np.empty(shape, dtype)
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape) or not out.flags.c_contiguous \
            or not out.flags.writeable:
        raise UsageError("out= has the wrong shape or layout",
                         found=(f"shape {out.shape}, {out.dtype}" if isinstance(out, np.ndarray)
                                else type(out).__name__),
                         expected=f"a writable C-contiguous array of shape {tuple(shape)}")
    if kind == "float":
        if out.dtype.kind != "f":
            raise UsageError("out= must be a float array for this representation",
                             found=str(out.dtype), expected="float32 or float64")
        return out
    if out.dtype.kind not in "iu" or np.iinfo(out.dtype).max < max_value \
            or np.iinfo(out.dtype).min > min_value:
        raise UsageError("out= dtype cannot hold the counts losslessly", found=str(out.dtype),
                         expected=f"an integer dtype holding [{min_value}, {max_value}] "
                                  f"(e.g. {dtype})")
    return out


def count_ranges(packed, height: int, width: int, starts, ends, flipud: bool = True,
                 out=None) -> np.ndarray:
    """``(C, H, W)`` spike counts of frame ranges ``[starts[c], ends[c])`` of a packed window.

    packed: ``(L, H*W/8)`` uint8; ranges must lie in ``[0, L]``. The dtype is the narrowest
    unsigned type for the longest range unless ``out`` (an integer array wide enough) is given.
    """
    flat = check_packed(packed, height, width)
    n_frames = len(packed)
    starts = np.asarray(starts, np.int64)
    ends = np.asarray(ends, np.int64)
    if starts.shape != ends.shape or starts.ndim != 1 or len(starts) == 0 \
            or (starts < 0).any() or (ends < starts).any() or (ends > n_frames).any():
        raise VoxelError("frame ranges do not fit the window", found=f"starts {starts}, ends {ends}",
                         expected=f"1-D ranges with 0 <= start <= end <= {n_frames} (L)")
    longest = int((ends - starts).max())
    out = check_out(out, (len(starts), height, width), uint_dtype_for(longest), max_value=longest)
    return count_ranges_kernel(flat, height * width // 8, starts, ends, height, width,
                               bool(flipud), out)


def bin_edges(n_frames: int, n_bins: int) -> np.ndarray:
    """``(S+1,)`` int64 frame edges: bin ``k`` is ``[k*L//S, (k+1)*L//S)``."""
    return np.arange(n_bins + 1, dtype=np.int64) * n_frames // n_bins
