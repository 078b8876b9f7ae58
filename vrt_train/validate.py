"""VRT-style chunked/tiled inference, validation metrics and png export.

`infer_video` follows KAIR's ``main_test_vrt.test_video`` / ``test_clip``: temporal chunks of
``num_frame_testing`` frames overlapping by ``num_frame_overlapping`` (outputs averaged where
chunks overlap), each chunk cut into ``size_patch_testing`` tiles overlapping by
``tile_overlap`` pixels, where each tile keeps only its inner part (``tile_overlap // 2``
pixels of every inner border are dropped) and overlaps are averaged. Each piece fed to the model
is padded (flip padding, as KAIR) to the sizes the model accepts and the output cropped back.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import torch

from .augment import assemble
from .metrics import to_uint8, video_metrics


def model_multiples(model) -> tuple[int, int, int]:
    """(frames multiple, H/W multiple, H/W minimum) an input to ``model`` needs."""
    model = getattr(model, "module", model)
    window = getattr(model, "window_size", None)
    if window is None or not hasattr(model, "check_input_shape"):
        return 1, 1, 1
    from .model.network import DOWNSCALE
    t = int(window[0])
    minimum = max(model.minimum_size()) if hasattr(model, "minimum_size") else DOWNSCALE * max(window[1:])
    return t, DOWNSCALE, int(minimum)


def _flip_pad(x: torch.Tensor, dim: int, pad: int) -> torch.Tensor:
    """Append ``pad`` entries along ``dim``: the last ones mirrored (repeated if needed)."""
    while pad > 0:
        take = min(pad, x.shape[dim])
        x = torch.cat([x, x.narrow(dim, x.shape[dim] - take, take).flip(dim)], dim)
        pad -= take
    return x


@torch.no_grad()
def _run_padded(model, lq: torch.Tensor, device) -> torch.Tensor:
    """Model output for ``lq (1, T, C, h, w)`` after flip padding to legal sizes; on CPU."""
    t_mult, mult, min_hw = model_multiples(model)
    _, d, _, h, w = lq.shape
    dp = max(-(-d // t_mult) * t_mult, 2 if t_mult > 1 else d) - d
    hp = max(-(-h // mult) * mult, min_hw) - h
    wp = max(-(-w // mult) * mult, min_hw) - w
    x = _flip_pad(_flip_pad(_flip_pad(lq, 1, dp), 3, hp), 4, wp)
    out = model(x.to(device)).float().cpu()
    scale = out.shape[-1] // x.shape[-1]
    return out[:, :d, :, :h * scale, :w * scale]


def _starts(size: int, tile: int, stride: int) -> list[int]:
    return list(range(0, size - tile, stride)) + [max(0, size - tile)]


def infer_clip(model, lq: torch.Tensor, size_patch: int, overlap: int, device) -> torch.Tensor:
    """KAIR ``test_clip``: ``(B, T, C, h, w)`` -> output on CPU, tiled when ``size_patch``."""
    if not size_patch:
        return torch.cat([_run_padded(model, lq[i:i + 1], device) for i in range(lq.shape[0])])
    b, d, _, h, w = lq.shape
    stride = size_patch - overlap
    E = W = None
    hs, ws = _starts(h, size_patch, stride), _starts(w, size_patch, stride)
    for top in hs:
        for left in ws:
            patch = lq[..., top:top + size_patch, left:left + size_patch]
            out = torch.cat([_run_padded(model, patch[i:i + 1], device) for i in range(b)])
            sf = out.shape[-1] // patch.shape[-1]
            if E is None:
                E = torch.zeros(b, d, out.shape[2], h * sf, w * sf)
                W = torch.zeros_like(E)
            mask = torch.ones_like(out)
            o = overlap // 2 * sf
            if o:
                if top < hs[-1]:
                    out[..., -o:, :] = 0
                    mask[..., -o:, :] = 0
                if left < ws[-1]:
                    out[..., :, -o:] = 0
                    mask[..., :, -o:] = 0
                if top > hs[0]:
                    out[..., :o, :] = 0
                    mask[..., :o, :] = 0
                if left > ws[0]:
                    out[..., :, :o] = 0
                    mask[..., :, :o] = 0
            ph, pw = out.shape[-2:]
            E[..., top * sf:top * sf + ph, left * sf:left * sf + pw] += out
            W[..., top * sf:top * sf + ph, left * sf:left * sf + pw] += mask
    return E / W


def infer_video(model, lq: torch.Tensor, val_cfg, device) -> torch.Tensor:
    """KAIR ``test_video``: ``(B, T, C, h, w)`` -> ``(B, T, 3, h*sf, w*sf)`` float on CPU."""
    if val_cfg.size_patch_testing == "auto":
        from .tiles import resolve_tiles
        val_cfg = resolve_tiles(model, val_cfg, lq.shape, device, _run_padded, model_multiples(model)[2])
    n_test, n_over = val_cfg.num_frame_testing, val_cfg.num_frame_overlapping
    patch, overlap = val_cfg.size_patch_testing, val_cfg.tile_overlap
    d = lq.shape[1]
    if not n_test or n_test >= d:
        return infer_clip(model, lq, patch, overlap, device)
    E = W = None
    for start in _starts(d, n_test, n_test - n_over):
        out = infer_clip(model, lq[:, start:start + n_test], patch, overlap, device)
        if E is None:
            E = torch.zeros(out.shape[0], d, *out.shape[2:])
            W = torch.zeros(1, d, 1, 1, 1)
        E[:, start:start + n_test] += out
        W[:, start:start + n_test] += 1
    return E / W


def _batched(item: dict) -> dict:
    return {k: (v.unsqueeze(0) if torch.is_tensor(v) else [v]) for k, v in item.items()}


class _Abandoned(Exception):
    pass


class _StopCheck:
    """The model, called through a check of ``stop()`` before every forward (chunk or tile)."""

    def __init__(self, model, stop):
        self._model, self.stop = weakref.ref(model), stop  # weak: cached per model below

    @property
    def module(self):
        return self._model()

    def __call__(self, x):
        if self.stop():
            raise _Abandoned
        return self.module(x)


_STOP_CHECKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _stop_check(model, stop) -> _StopCheck:
    """One wrapper per (model, stop), so code that caches by ``id(model)`` sees the same one."""
    check = _STOP_CHECKS.get(model)
    if check is None or check.stop is not stop:
        check = _STOP_CHECKS[model] = _StopCheck(model, stop)
    return check


@torch.no_grad()
def validate(model, dataset, val_cfg, norm, device, use_spike: bool, stop=None) -> dict | None:
    """Mean over sequences of per-frame PSNR/SSIM (output vs sharp, and blurred input vs sharp).

    stop: an optional callable checked before every forward (each temporal chunk and tile);
    when it returns a true value the validation is abandoned and None returned (a stop signal
    must not wait for a long validation)."""
    was_training = model.training
    model.eval()
    try:
        return _validate(_stop_check(model, stop) if stop else model, dataset, val_cfg, norm, device, use_spike)
    except _Abandoned:
        return None
    finally:
        model.train(was_training)


def _validate(model, dataset, val_cfg, norm, device, use_spike: bool) -> dict:
    rows = []
    for i in range(len(dataset)):
        L, H = assemble(_batched(dataset[i]), "cpu", norm, None, use_spike=use_spike)
        out = infer_video(model, L, val_cfg, device)[0]
        p, s = video_metrics(out, H[0])
        pi, si = video_metrics(L[0, :, :H.shape[2]], H[0])  # spike-only: the guide (1 or 3 channels)
        rows.append((p, s, pi, si))
    mean = [sum(col) / len(col) for col in zip(*rows)]
    return dict(zip(("psnr", "ssim", "psnr_input", "ssim_input"), mean))


@torch.no_grad()
def restore_sequence(model, dataset, index: int, val_cfg, norm, device, use_spike: bool):
    """``(item, output, target)`` of sequence ``index`` of ``dataset`` (a `ValDataset`):
    output and target ``(T, C, H, W)`` float64 in [0, 255] with uint8 values (KAIR ``tensor2uint``;
    C = 3, or 1 for a grayscale spike-only target, whose ``item["L_rgb"]`` is then the guide image)."""
    item = dataset[index]
    L, H = assemble(_batched(item), "cpu", norm, None, use_spike=use_spike)
    if item["L_rgb"].shape[-1] == 0:  # spike-only: the input shown (--side-by-side) is the TFP guide
        item = {**item, "L_rgb": to_uint8(L[0, :, :H.shape[2]]).permute(0, 2, 3, 1).to(torch.uint8)}
    return item, to_uint8(infer_video(model, L, val_cfg, device)[0]), to_uint8(H[0])


@torch.no_grad()
def infer_to_png(model, dataset, val_cfg, norm, device, out_dir, use_spike: bool, options=None) -> list[Path]:
    """Restore every sequence of ``dataset`` (a `ValDataset`); write ``OUT/SEQ/<name>.png`` under
    each frame's source name from the cache manifest (``000000``-style when it has none), and
    ``OUT/SEQ.mp4`` when ``options`` (`vrt_train.outputs.OutputOptions`) asks for video."""
    from .outputs import OutputOptions, SequenceSink

    model.eval()
    written = []
    for i in range(len(dataset)):
        item, out, _ = restore_sequence(model, dataset, i, val_cfg, norm, device, use_spike)
        with SequenceSink(out_dir, item["seq"], options or OutputOptions()) as sink:
            for frame, img, blurred in zip(item["frames"].tolist(), out, item["L_rgb"]):
                sink.write(dataset.items.cache.frame_name(item["seq"], frame),
                           img.permute(1, 2, 0).numpy().astype(np.uint8), blurred.numpy())
        written += sink.written
    return written
