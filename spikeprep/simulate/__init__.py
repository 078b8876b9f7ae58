"""`spikeprep simulate`: synthetic (or high-frame-rate-video-derived) datasets in the input layout.

```
OUT/blur/SEQ/000000.png ...   RGB blurred inputs: mean of the scene over frame i's exposure window
OUT/sharp/SEQ/000000.png ...  RGB ground truth: the scene at mid-exposure
OUT/spike/SEQ/spikes.dat      one continuous spike stream (SpikeCV layout, flipud=True)
OUT/spike/SEQ/config.yaml     spike_h, spike_w, flipud, spike_rate, frame_rate, exposure, offset=0
```

Two entry points: `simulate_dataset` (synthetic scenes, `synthetic`) and `simulate_from_frames`
(source video frames, `from_frames`); both render through `spikes.write_sequence`
(integrate-and-fire) into OUT as `output` prepares it.
"""

from .from_frames import find_source_sequences, simulate_from_frames
from .spikes import DEFAULT_THRESHOLD, SimulationSummary, SpikeParams, write_sequence
from .synthetic import sequence_rng, simulate_dataset, synthetic_scene

__all__ = ["simulate_dataset", "simulate_from_frames", "find_source_sequences", "SimulationSummary",
           "SpikeParams", "DEFAULT_THRESHOLD", "write_sequence", "sequence_rng", "synthetic_scene"]
