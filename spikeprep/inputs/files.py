"""Small file helpers shared by every stage."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import OutputError, SpikeprepError

_WRITE_FIXES = {
    errno.ENOSPC: "free disk space (or choose a disk with more), then re-run the same command",
    errno.EDQUOT: "free space in your quota, then re-run the same command",
    errno.EROFS: "the folder is on a read-only filesystem: choose a writable location, or remount it "
                 "read-write, then re-run",
    errno.EACCES: "make the folder writable for this user, or choose another location, then re-run",
    errno.EPERM: "make the folder writable for this user, or choose another location, then re-run",
}


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one, never a
    half-written one: temp file in the same folder, fsync, then rename over ``path``.
    Raises `OutputError` (and leaves no ``.partial`` file) when the folder is read-only or full."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes, fsync: bool = True) -> None:
    """`write_text_atomic` for bytes (``fsync=False`` skips the flush to disk)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise output_error(exc, path) from exc


def remove_stale_partial(path: str | os.PathLike) -> None:
    """Remove ``path``'s ``.partial`` file left by a killed writer (if any; errors ignored)."""
    path = Path(path)
    _remove_quietly(path.with_name(path.name + ".partial"))


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # a read-only folder never got the file in the first place
        pass


def is_write_failure(exc: BaseException) -> bool:
    """True for the OSErrors a full disk, a quota or a read-only/forbidden folder raise."""
    return isinstance(exc, OSError) and exc.errno in _WRITE_FIXES


def output_error(exc: OSError, path: str | os.PathLike | None, what: str | None = None) -> SpikeprepError:
    """An `OutputError` for a failed write of ``path`` (file, errno found, what is needed, fix);
    ``path`` None when the failing call did not say which file."""
    code = errno.errorcode.get(exc.errno or 0, "error")
    name = "an output file" if path is None else (Path(path).name or str(path))
    return OutputError(what or f"cannot write {name}", path=path,
                       found=f"{code}: {exc.strerror or exc}",
                       expected="a writable folder with free space",
                       fix=_WRITE_FIXES.get(exc.errno, "check the folder and disk, then re-run"))


def read_text_utf8(path: str | os.PathLike, error: type[SpikeprepError] = SpikeprepError,
                   what: str | None = None) -> str:
    """A text file's contents as UTF-8 (a UTF-8 byte-order mark is dropped); ``error`` naming the
    encoding found when it is not UTF-8 (e.g. UTF-16 from a Windows editor)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        found, source = _not_utf8(data, exc.start)
    else:
        if "\x00" not in text:
            return text
        found, source = "NUL bytes (UTF-16 without a byte-order mark?)", "UTF-16BE"
    raise error(f"{what or path.name} is not UTF-8 text", path=path, found=found,
                expected="UTF-8 text",
                fix=f"re-save it as UTF-8, e.g. 'iconv -f {source} -t UTF-8 {path.name} > "
                    f"{path.name}.utf8 && mv {path.name}.utf8 {path.name}'")


def _not_utf8(data: bytes, offset: int) -> tuple[str, str]:
    """What a non-UTF-8 text looks like, and the likely encoding to convert from (for iconv)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return f"UTF-16 text (byte-order mark {data[:2].hex(' ')})", "UTF-16"
    return f"byte 0x{data[offset]:02x} at offset {offset}, not UTF-8", "LATIN1"


def require_utf8_name(path: str | os.PathLike, error: type[SpikeprepError], what: str) -> str:
    """``path``'s last component as text; ``error`` when the name is not valid UTF-8 (a name read
    from disk with undecodable bytes, e.g. Latin-1 from an old archive)."""
    name = Path(path).name
    if not is_utf8(name):
        raw = os.fsencode(name)
        raise error(f"{what} name is not valid UTF-8", path=os.fsencode(path).decode("utf-8", "replace"),
                    found=repr(raw), expected="a UTF-8 folder/file name",
                    fix="rename it to a UTF-8 name (e.g. 'convmv -f latin1 -t utf8 --notest -r' on "
                        "its parent folder)") from None
    return name


def printable(text: str) -> str:
    """``text`` with undecodable filename bytes (surrogate escapes) shown as ``\\xNN``, for
    output that must be valid Unicode (plot titles)."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(text: str) -> bool:
    """False for a str holding undecodable filename bytes (surrogate escapes, e.g. ``\\udcff``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def ensure_real_dir(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """Make ``root/relative`` a real directory owned by ``root``, creating it if needed.

    A component that is a symlink to a directory (a sequence folder linked into a download)
    is replaced by a real directory holding one symlink per entry of the link's target, so
    files written there afterwards land in ``root``, never inside the linked source. Only the
    link itself is removed; nothing is written to the target.
    """
    current = Path(root)
    for part in Path(relative).parts:
        current = current / part
        if current.is_symlink():
            target = current.resolve()
            entries = sorted(target.iterdir()) if target.is_dir() else []
            staging = current.with_name(current.name + ".linking")
            staging.mkdir(exist_ok=True)
            for entry in entries:
                link = staging / entry.name
                if not link.is_symlink():
                    link.symlink_to(entry)
            current.unlink()
            staging.rename(current)
        else:
            current.mkdir(exist_ok=True)
    return current
