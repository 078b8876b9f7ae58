"""Which sequences validate (and so select ``best.pt``), and whether they are a test split.

A cache has two splits, ``train`` and ``val``; ``spikeprep import`` puts a dataset's ``test``
half (Spk-GoPro's ``test``) into ``val``, and the manifest's optional ``import`` key records the
dataset's own split per sequence. Selecting ``best.pt`` on such a split is model selection on
the test set: training warns once, and every result card made from that ``best.pt`` says
``"selected_on_test_split": true``. ``data.val_from_train: N`` validates on the LAST ``N``
training sequences by sorted name instead (held out from training; deterministic).
"""

from __future__ import annotations

from spikeprep import ConfigError

TEST_SPLIT_NAMES = ("test",)


def is_test_split(manifest, seqs) -> bool:
    """True when any of ``seqs`` is a dataset's test sequence: the manifest's ``import`` key
    records split ``test`` for it (any preset, e.g. spk-gopro's ``test``)."""
    record = (getattr(manifest, "import_record", None) or {}).get("sequences", {})
    return any(str(record.get(s, {}).get("split", "")).lower() in TEST_SPLIT_NAMES for s in seqs)


def held_out(train_seqs, n: int) -> list[str]:
    """The last ``n`` of the sorted training sequences (``data.val_from_train``)."""
    train_seqs = sorted(train_seqs)
    if n and n >= len(train_seqs):
        raise ConfigError("data.val_from_train holds out every training sequence",
                          found=f"{n} of {len(train_seqs)} training sequences",
                          expected=f"< {len(train_seqs)}", fix="lower data.val_from_train")
    return train_seqs[len(train_seqs) - n:] if n else []


def validation_plan(cache, n: int) -> tuple[list[str] | None, list[str], bool]:
    """``(validation sequences or None for the cache's val split, training sequences to leave
    out, validation is a test split)`` for ``data.val_from_train = n`` and an opened cache."""
    if n:
        train = [s for s in cache.sequences if cache.split(s) == "train"]
        seqs = held_out(train, n)
        return seqs, seqs, False
    val = [s for s in cache.sequences if cache.split(s) == "val"]
    return None, [], is_test_split(cache.manifest, val)


TEST_SPLIT_WARNING = ("warning: the validation split is the dataset's test split ({seqs}): best.pt is "
                      "selected on test data; set data.val_from_train: N to validate on held-out "
                      "training sequences instead")
