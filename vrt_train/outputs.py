"""Where restored frames go: one writer for ``--infer`` pngs, ``--infer --video`` and
``--test --save-images``.

`SequenceSink` takes a sequence's frames one by one, as produced, and writes
``DIR/SEQ/<source frame name>.png`` (the cache's `frame_name`: the dataset's own file names,
``000000``-style when the manifest records none) and, optionally, ``DIR/SEQ.mp4`` through
OpenCV's own ``cv2.VideoWriter`` (fourcc ``mp4v``, ``fps`` frames per second); with
``side_by_side`` each video frame is the blurred input (left) beside the output (right).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from spikeprep import OutputError


@dataclass(frozen=True)
class OutputOptions:
    """png: write pngs; video: also ``SEQ.mp4``; fps: its frame rate; side_by_side: input | output."""

    png: bool = True
    video: bool = False
    fps: float = 25.0
    side_by_side: bool = False


class SequenceSink:
    """Writes one sequence's frames (``(H, W, 3)`` uint8 RGB) as they come; `close` finishes the mp4."""

    def __init__(self, out_dir, seq: str, options: OutputOptions = OutputOptions()):
        self.dir, self.seq, self.options = Path(out_dir), seq, options
        self.written: list[Path] = []
        self._video = None
        if options.png:
            (self.dir / seq).mkdir(parents=True, exist_ok=True)
        else:
            self.dir.mkdir(parents=True, exist_ok=True)

    def write(self, name: str, rgb: np.ndarray, input_rgb: np.ndarray | None = None) -> None:
        """Frame ``name`` (its png stem): output ``rgb`` ``(H, W, 3)`` or grayscale ``(H, W, 1)``
        (a one-channel png; three equal channels in the video); ``input_rgb`` the blurred frame
        (spike-only: the TFP guide; needed with ``side_by_side``; resized to the output's size)."""
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        if self.options.png:
            path = self.dir / self.seq / f"{name}.png"
            if not cv2.imwrite(os.fspath(path), bgr):
                raise OutputError("could not write a restored frame", path=path,
                                  fix="check that the output folder is writable and has space")
            self.written.append(path)
        if self.options.video:
            frame = bgr = _three(bgr)
            if self.options.side_by_side:
                left = _three(np.ascontiguousarray(np.asarray(input_rgb)[:, :, ::-1]))
                if left.shape != bgr.shape:
                    left = cv2.resize(left, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_CUBIC)
                frame = np.concatenate([left, bgr], axis=1)
            if self._video is None:
                path = self.dir / f"{self.seq}.mp4"
                self._video = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"mp4v"),
                                              float(self.options.fps), (frame.shape[1], frame.shape[0]))
                if not self._video.isOpened():
                    raise OutputError("could not open a video for writing", path=path,
                                      fix="check the folder, or that OpenCV was built with an mp4v encoder")
                self.written.append(path)
            self._video.write(frame)

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _three(img: np.ndarray) -> np.ndarray:
    """``(H, W, 1)`` gray -> ``(H, W, 3)`` (video frames are colour); other shapes unchanged."""
    return np.ascontiguousarray(np.repeat(img, 3, axis=2)) if img.ndim == 3 and img.shape[2] == 1 else img
