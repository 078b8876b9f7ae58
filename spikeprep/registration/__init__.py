"""Registration: where the spike camera's view lies in the RGB frame (a rig's beam splitter).

A per-sequence 3x3 matrix maps spike pixel coordinates ``(x, y, 1)`` (x right, y down, pixel
centres at integers, the spike frame in image orientation as `SpikeStream.read` returns it with
the sequence's flipud) to pixel coordinates of the full-size RGB frame, measured from the data.

* `geometry`: matrices between pixel grids, degeneracy checks, the overlap box
* `search`: coarse scale x rotation grid with template matching for the shift
* `refine`: ECC refinement per frame, NCC scoring, frame disagreement (``rms_px``)
* `estimate`: one sequence's frames -> `Estimate` (matrix, scores, verdict)
* `sequence`: ``spikeprep register``: sync.json + frames read, every sequence (`register`)
* `record`: `Registration`, the validated record the later ``register --fix`` will store
* `rig`: a synthetic rig with a known matrix (tests, benchmark, docs)
"""

from .record import Registration
from .sequence import RegisterOptions, SequenceRegistration, register, register_sequence

__all__ = ["Registration", "RegisterOptions", "SequenceRegistration", "register", "register_sequence"]
