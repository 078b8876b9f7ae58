"""The SpikeCV `.dat` spike-stream format: the only module that knows its byte layout.

Layout (no header): the file is a sequence of frames of ``H*W/8`` bytes each. Inside a frame,
pixels are flattened row by row with rows stored **bottom-up**; bit ``k`` (least significant
first) of byte ``j`` is pixel ``8*j + k``. Reading with ``flipud=True`` (SpikeCV's default)
returns frames in image orientation (top row first).

`SpikeStream` is a drop-in for SpikeCV's offline ``SpikeStream``: ``get_block_spikes`` and
``get_spike_matrix`` return arrays equal to SpikeCV's (values, ``bool`` dtype, shape), but the
file is memory-mapped, so a window costs O(window) instead of O(file).

**Head columns (sps10).** SpikeCV's sps10 camera writes rows of ``spike_w`` = 416 pixels whose
columns 400..415 are not image (SpikeCV's ``get_row_index`` and ``with_head=True`` delete
them). With ``strip_head=True`` (config.yaml ``with_head: true``) a stream is the image part
only: ``width`` is ``spike_w - 16`` and `SpikeStream.packed` returns frames with those columns
removed, still packed. Rows of a whole number of bytes keep columns 400..415 in two whole bytes
of every row, so removing them leaves valid packed frames, bit for bit what SpikeCV's
``with_head=True`` reads.

The sps100/PCIe layout (SpikeCV's ``get_sps100_matrix``: 1024-bit rows found through line
markers of ``sps_parser``) is not read: SpikeCV's own reader cannot run it (its
``get_row_index`` calls ``np.hstack`` with two arrays, a TypeError on every numpy) and its
``begin_idx > 0`` branch starts one frame later than ``begin_idx == 0``, so there is no exact
behaviour to match, and no public sample file to check a reading against.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import DatError, UsageError, WindowError
from .files import output_error

#: Columns SpikeCV deletes with ``with_head=True`` (the sps10 camera's 16 header columns).
HEAD_COLUMNS = np.arange(400, 416)
HEAD_BYTES = slice(400 // 8, 416 // 8)  # the same columns as bytes of a packed row


def frame_nbytes(height: int, width: int, path: str | os.PathLike | None = None) -> int:
    """Bytes per packed spike frame, ``H*W/8``; H*W must be a positive multiple of 8."""
    if height <= 0 or width <= 0:
        raise DatError("spike frame size must be positive", path=path,
                       found=f"{height}x{width} (HxW)", expected="height > 0 and width > 0")
    if (height * width) % 8:
        raise DatError("spike frame has a pixel count that is not a multiple of 8", path=path,
                       found=f"{height}x{width} = {height * width} pixels",
                       expected="H*W divisible by 8 (frames are whole bytes)",
                       fix="check spike_h/spike_w; SpikeCV streams always have whole-byte frames")
    return height * width // 8


def count_frames(path: str | os.PathLike, height: int, width: int, allow_partial: bool = False) -> int:
    """Number of whole frames in a `.dat` file, checking its size against the geometry."""
    path = Path(path)
    if not path.is_file():
        raise DatError("spike file not found", path=path, found="no such file",
                       expected="a SpikeCV .dat file", fix="check the path and DATA_ROOT layout")
    nbytes = frame_nbytes(height, width, path)
    size = path.stat().st_size
    whole, leftover = divmod(size, nbytes)
    if leftover and not allow_partial:
        raise DatError(
            "spike file size is not a whole number of frames", path=path,
            found=f"{size} bytes = {whole} frames of {nbytes} bytes + {leftover} leftover bytes",
            expected=f"a multiple of {nbytes} bytes ({height}x{width} pixels / 8)",
            fix="the file is truncated, or spike_h/spike_w are wrong (likely cause: wrong H/W)")
    return whole


def check_head_geometry(height: int, width: int, path=None) -> None:
    """``with_head`` needs the sps10 layout: rows of at least 416 pixels (SpikeCV deletes
    columns 400..415) in whole bytes (so the head is two whole bytes of every row)."""
    if width <= HEAD_COLUMNS[-1] or width % 8:
        raise DatError("with_head needs rows of at least 416 pixels in whole bytes", path=path,
                       found=f"spike_w {width}", expected="spike_w >= 416 and a multiple of 8 (sps10: 416)",
                       fix="set spike_w to the file's row width (416 for sps10), or drop with_head")


def unpack_frames(packed: np.ndarray, height: int, width: int, flipud: bool = True) -> np.ndarray:
    """``(L, H*W/8)`` uint8 packed frames -> ``(L, H, W)`` bool spikes (image orientation if flipud)."""
    bits = np.unpackbits(packed, axis=1, bitorder="little").view(bool)
    frames = bits.reshape(len(packed), height, width)
    return np.ascontiguousarray(frames[:, ::-1]) if flipud else frames


def pack_frames(spikes: np.ndarray, flipud: bool = True) -> np.ndarray:
    """``(N, H, W)`` bool/0-1 spikes -> ``(N, H*W/8)`` uint8 packed frames as stored on disk."""
    spikes = np.asarray(spikes)
    if spikes.ndim != 3:
        raise UsageError("spikes must be a 3-D array", found=f"shape {spikes.shape}",
                         expected="(N, H, W)")
    n, height, width = spikes.shape
    frame_nbytes(height, width)
    if spikes.dtype != bool:
        if spikes.size and (spikes.min() < 0 or spikes.max() > 1):
            raise UsageError("spikes must be binary", found=f"values in [{spikes.min()}, {spikes.max()}]",
                             expected="0/1 or bool")
        spikes = spikes.astype(bool)
    if flipud:
        spikes = spikes[:, ::-1]
    return np.packbits(spikes.reshape(n, height * width), axis=1, bitorder="little")


class DatWriter:
    """Streams ``(N, H, W)`` spike chunks into a `.dat` file; the file appears atomically on close.

    Use as a context manager; on an exception the partial temp file is removed.
    """

    def __init__(self, path: str | os.PathLike, height: int, width: int, flipud: bool = True) -> None:
        self.path = Path(path)
        self.height, self.width, self.flipud = height, width, flipud
        frame_nbytes(height, width, self.path)
        self.n_frames = 0
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self._tmp, "wb")

    def write(self, spikes: np.ndarray) -> None:
        """Append ``(N, H, W)`` bool/0-1 frames."""
        spikes = np.asarray(spikes)
        if spikes.ndim != 3 or spikes.shape[1:] != (self.height, self.width):
            raise UsageError("spike chunk has the wrong shape", path=self.path,
                             found=f"shape {spikes.shape}", expected=f"(N, {self.height}, {self.width})")
        try:
            self._file.write(pack_frames(spikes, self.flipud).tobytes())
        except OSError as exc:  # disk full: the caller's abort() removes the .partial file
            raise output_error(exc, self.path) from exc
        self.n_frames += len(spikes)

    def close(self) -> None:
        try:
            self._file.close()
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self._tmp.unlink(missing_ok=True)
            raise output_error(exc, self.path) from exc

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "DatWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_dat(path: str | os.PathLike, spikes: np.ndarray | Iterable[np.ndarray], flipud: bool = True) -> int:
    """Write ``(N, H, W)`` bool/uint8 spikes (or an iterable of such chunks) as a `.dat` file.

    Returns the number of frames written. Round-trips with `SpikeStream` for the same ``flipud``.
    """
    chunks = [spikes] if isinstance(spikes, np.ndarray) else spikes
    writer = None
    try:
        for chunk in chunks:
            chunk = np.asarray(chunk)
            if writer is None:
                if chunk.ndim != 3:
                    raise UsageError("spikes must be a 3-D array", path=path,
                                     found=f"shape {chunk.shape}", expected="(N, H, W)")
                writer = DatWriter(path, chunk.shape[1], chunk.shape[2], flipud)
            writer.write(chunk)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is None:
        raise UsageError("no spike frames given", path=path, found="an empty iterable",
                         expected="at least one (N, H, W) chunk")
    writer.close()
    return writer.n_frames


class SpikeStream:
    """A memory-mapped SpikeCV `.dat` stream, API-compatible with SpikeCV's offline `SpikeStream`.

    ``SpikeStream(filepath=..., spike_h=H, spike_w=W, print_dat_detail=False)``. Unlike SpikeCV,
    a file whose size is not a whole number of frames is refused (``allow_partial=True`` ignores
    the trailing bytes, as SpikeCV silently does), and windows past the end raise `WindowError`
    (SpikeCV raises IndexError) unless ``pad=True`` asks for zero padding.
    """

    def __init__(self, offline: bool = True, camera_type: str | None = None, *, filepath=None,
                 spike_h: int | None = None, spike_w: int | None = None, print_dat_detail: bool = True,
                 allow_partial: bool = False, strip_head: bool = False, **_ignored) -> None:
        if not offline or camera_type is not None:
            raise UsageError("only offline .dat streams are supported", found=f"camera_type={camera_type!r}",
                             expected="offline=True, camera_type=None")
        if filepath is None or spike_h is None or spike_w is None:
            raise UsageError("SpikeStream needs filepath, spike_h and spike_w",
                             found=f"filepath={filepath!r}, spike_h={spike_h!r}, spike_w={spike_w!r}",
                             expected="all three given")
        path = Path(filepath)
        if path.suffix != ".dat":  # SpikeCV appends the extension when it is missing
            path = path.with_name(path.name + ".dat")
        self.filename = str(path)
        self.spike_height, self.spike_width = int(spike_h), int(spike_w)
        self.print_dat_detail = print_dat_detail
        self.frame_nbytes = frame_nbytes(self.spike_height, self.spike_width, path)
        self.n_frames = count_frames(path, self.spike_height, self.spike_width, allow_partial)
        self.strip_head = bool(strip_head)
        if self.strip_head:
            check_head_geometry(self.spike_height, self.spike_width, path)
        self._map: np.ndarray | None = None

    # -- geometry -------------------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.spike_height

    @property
    def width(self) -> int:
        """Image width: ``spike_w``, less the 16 head columns when ``strip_head``."""
        return self.spike_width - len(HEAD_COLUMNS) if self.strip_head else self.spike_width

    def __len__(self) -> int:
        return self.n_frames

    def __repr__(self) -> str:
        return f"SpikeStream({self.filename!r}, {self.spike_height}x{self.spike_width}, {self.n_frames} frames)"

    # -- raw access -----------------------------------------------------------------------
    def _frames(self) -> np.ndarray:
        """``(N, H*W/8)`` uint8 memory map of the whole file, opened on first use."""
        if self._map is None:
            if self.n_frames == 0:
                self._map = np.zeros((0, self.frame_nbytes), np.uint8)
            else:
                self._map = np.memmap(self.filename, np.uint8, "r", shape=(self.n_frames, self.frame_nbytes))
        return self._map

    def _check_window(self, begin: int, end: int) -> None:
        if begin < 0 or end < begin or end > self.n_frames:
            raise WindowError("spike window outside the stream", path=self.filename,
                              found=f"frames [{begin}, {end})",
                              expected=f"0 <= begin <= end <= {self.n_frames} (the stream length)",
                              fix="check the window or sync.json; pass pad=True to zero-pad past the end")

    def packed(self, begin: int, end: int) -> np.ndarray:
        """Zero-copy ``(end-begin, H*W/8)`` uint8 view of frames ``[begin, end)`` as stored on disk
        (``W`` = `width`: with ``strip_head`` a copy without the head columns' bytes)."""
        begin, end = int(begin), int(end)
        self._check_window(begin, end)
        frames = self._frames()[begin:end]
        if not self.strip_head:
            return frames
        rows = frames.reshape(len(frames), self.spike_height, self.spike_width // 8)
        image = np.concatenate([rows[:, :, :HEAD_BYTES.start], rows[:, :, HEAD_BYTES.stop:]], axis=2)
        return image.reshape(len(frames), -1)

    def read(self, begin: int, end: int, flipud: bool = True, pad: bool = False) -> np.ndarray:
        """Frames ``[begin, end)`` as ``(L, H, W)`` bool; with ``pad`` frames past the end are zero."""
        begin, end = int(begin), int(end)
        if pad and end > self.n_frames and 0 <= begin <= end:
            out = np.zeros((end - begin, self.spike_height, self.width), bool)
            inside = max(0, min(end, self.n_frames) - begin)
            if inside:
                out[:inside] = self.read(begin, begin + inside, flipud)
            return out
        return unpack_frames(self.packed(begin, end), self.spike_height, self.width, flipud)

    # -- SpikeCV API ----------------------------------------------------------------------
    def get_block_spikes(self, begin_idx: int, block_len: int = 1, flipud: bool = True,
                         with_head: bool = False, pad: bool = False) -> np.ndarray:
        """``(block_len, H, W)`` bool spikes of frames ``[begin_idx, begin_idx + block_len)``."""
        if block_len < 0:
            raise WindowError("negative block length", path=self.filename, found=block_len, expected=">= 0")
        if block_len == 0:  # SpikeCV answers an empty block for any start
            spikes = np.zeros((0, self.spike_height, self.width), bool)
        elif begin_idx < 0 and begin_idx + block_len < 0:
            # SpikeCV slices the file's bytes, so a negative start counts from the end
            spikes = self.read(self.n_frames + begin_idx, self.n_frames + begin_idx + block_len, flipud, pad)
        else:
            spikes = self.read(begin_idx, begin_idx + block_len, flipud, pad)
        if self.print_dat_detail:
            print(f"spikeprep: {self.filename}: {self.spike_width}x{self.spike_height} (WxH), "
                  f"frames [{begin_idx}, {begin_idx + block_len}) of {self.n_frames}")
        self.SpikeMatrix = self._strip_head(spikes) if with_head else spikes
        return self.SpikeMatrix

    def get_spike_matrix(self, flipud: bool = True, with_head: bool = False) -> np.ndarray:
        """All ``(N, H, W)`` bool spikes of the file (O(file) memory by nature)."""
        spikes = self.read(0, self.n_frames, flipud)
        if self.print_dat_detail:
            print(f"spikeprep: {self.filename}: {self.spike_width}x{self.spike_height} (WxH), "
                  f"{self.n_frames} frames")
        self.SpikeMatrix = self._strip_head(spikes) if with_head else spikes
        return self.SpikeMatrix

    def _strip_head(self, spikes: np.ndarray) -> np.ndarray:
        if self.strip_head:
            raise UsageError("the head columns are already stripped", path=self.filename,
                             found="with_head=True on a stream opened with strip_head=True",
                             expected="with_head=False (frames are image columns only)")
        if self.spike_width <= HEAD_COLUMNS[-1]:
            raise UsageError("with_head=True needs the sps10 camera's 416+ columns", path=self.filename,
                             found=f"width {self.spike_width}", expected="width > 415")
        return np.delete(spikes, HEAD_COLUMNS, axis=2)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self._map = None

    def __enter__(self) -> "SpikeStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # a memory map must not be pickled into DataLoader/multiprocessing workers
        state = self.__dict__.copy()
        state["_map"] = None
        state.pop("SpikeMatrix", None)
        return state
