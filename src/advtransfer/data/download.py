"""Download pinned files and unpack tar archives without trusting either.

Why this module exists instead of a bare ``urlretrieve`` + ``tarfile.extractall``:

* **Resume.** The kit's datasets and weights are up to a few GB and are often fetched over slow or flaky links.
  Bytes go into ``<dest>.part``; after an interruption the next run asks the server for the rest with
  ``Range: bytes=N-`` instead of starting over (and starts over cleanly when the server ignores ranges).
* **Pinned sha256.** A file is only moved to its final name once its size and sha256 match the values pinned in
  the kit, so a truncated, corrupted or silently replaced upstream file never reaches an experiment. The final
  ``os.replace`` is atomic: ``dest`` either does not exist or is complete and verified.
* **Path traversal.** ``tarfile`` will happily write ``../../.bashrc``, absolute paths, or files *through* a
  symlink that the same archive created earlier (CVE-2007-4559, unfixed by default before Python 3.14).
  :func:`safe_extract_tar` validates every member before writing a single byte, extracts with
  ``filter="data"`` as a second line of defence, and does so into a staging directory that only replaces the
  target on success, so a half-extracted tree never appears where experiments look for data.

Every failure a user can fix raises :class:`~advtransfer.errors.DataError` whose message says what happened and
what to do; the CLI prints it without a traceback.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import posixpath
import secrets
import shutil
import sys
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from advtransfer.errors import DataError

__all__ = ["download", "safe_extract_tar", "sha256_file"]

_USER_AGENT = "advtransfer-downloader"
# More symlink hops than this while resolving one path means a loop (Linux gives up at 40 too).
_MAX_SYMLINK_HOPS = 40
# filter="data" exists from Python 3.10.12 / 3.11.4 on; older interpreters still get our own validation.
_DATA_FILTER: dict[str, str] = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
_FILTER_ERRORS: tuple[type[Exception], ...] = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()

# What a broken archive raises from tarfile or its decompressors (as opposed to a bug or a full disk).
_CORRUPT_ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (
    tarfile.ReadError,
    tarfile.CompressionError,
    tarfile.HeaderError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
)
try:
    import lzma

    _CORRUPT_ARCHIVE_ERRORS += (lzma.LZMAError,)
except ImportError:  # Python built without lzma: tarfile cannot open .xz then either.
    pass


# --------------------------------------------------------------------------------------------------- checksums


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path``, read in ``chunk``-byte pieces (constant memory for multi-GB files)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _normalise_sha256(sha256: str) -> str:
    value = sha256.strip().lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        # The pinned value comes from the kit itself, so a malformed one is a bug, not a user error.
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    return value


# ---------------------------------------------------------------------------------------------------- download


def download(
    url: str,
    dest: Path,
    sha256: str,
    *,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    chunk: int = 1 << 20,
) -> Path:
    """Fetch ``url`` to ``dest`` unless a verified copy is already there; return ``dest``.

    Bytes are written to ``<dest>.part`` and resumed from there on the next call after an interruption. The file
    only becomes ``dest`` (atomically) once its size (when ``size`` is given) and sha256 match; a finished file
    that does not match is deleted, since resuming from untrusted bytes would only repeat the failure.
    """
    dest = Path(dest)
    _require_http(url, dest)
    expected = _normalise_sha256(sha256)
    if dest.is_file() and sha256_file(dest, chunk) == expected:
        return dest

    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if size is None or _file_size(part) != size:
        # A part file of exactly the pinned size needs no request: it is either complete or garbage.
        _fetch(url, part, dest, size=size, progress=progress, timeout=timeout, chunk=chunk)
    _verify(url, part, expected, size, chunk)
    os.replace(part, dest)
    return dest


def _require_http(url: str, dest: Path) -> None:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme not in ("http", "https"):
        raise DataError(
            f"Cannot download {url!r}: only http:// and https:// URLs are supported. "
            f"Fix the URL, or get the file yourself and place it at {dest}."
        )


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _fetch(
    url: str, part: Path, dest: Path, *, size: int | None, progress: bool, timeout: float, chunk: int
) -> None:
    """Bring ``part`` up to the full length of the remote file (not yet verified)."""
    offset = _file_size(part)
    if size is not None and offset > size:
        offset = 0  # Longer than the whole file, so it cannot be a prefix of it: start over.
    response = _open(url, offset, dest, timeout)
    if response is None:
        return  # 416 for "bytes=<our length>-": the part file already holds everything; verification decides.
    with response:
        if response.status == 206:
            if _range_start(response) != offset:
                part.unlink(missing_ok=True)
                raise DataError(
                    f"The server for {url} answered the resume request with an unexpected byte range, so the "
                    f"partial file {part} was removed. Re-run the same command to download it from the start."
                )
            mode = "ab" if offset else "wb"  # a 206 to a plain GET (offset 0) must not append to stale bytes
        else:
            offset, mode = 0, "wb"  # Plain 200: the server ignored Range, so overwrite rather than append.
        total = _remote_total(response, offset) or size
        _check_announced_size(url, part, total, size)
        failure: Exception | None = None
        with open(part, mode) as fh:
            try:
                _copy_body(response, fh, total, offset, desc=dest.name, progress=progress, chunk=chunk)
            except (http.client.HTTPException, OSError) as err:  # reset, timeout, bad chunking, disk full
                failure = err
        have = _file_size(part)  # after the close, so everything received is on disk and counted
        if failure is not None:
            raise _interrupted(url, part, have, total, str(failure) or repr(failure)) from failure
        # http.client returns b"" (no exception) when the peer closes before Content-Length bytes arrived.
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and have < offset + int(length):
            raise _interrupted(url, part, have, total, "the server closed the connection early")


def _open(url: str, offset: int, dest: Path, timeout: float) -> http.client.HTTPResponse | None:
    """Send the (ranged) GET; None means 416 for a resume, i.e. there is nothing left to fetch."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # scheme checked by _require_http
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and offset:
            return None
        raise DataError(
            f"Downloading {url} failed: HTTP {err.code} {err.reason}. Check that the URL is still valid and "
            f"re-run the same command, or get the file yourself and place it at {dest}."
        ) from err
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(
            f"Could not download {url}: {reason}. Check your network connection (and proxy settings) and "
            f"re-run the same command, or get the file yourself and place it at {dest}."
        ) from err


def _range_start(response: http.client.HTTPResponse) -> int | None:
    """First byte of a 206 body from ``Content-Range: bytes START-END/TOTAL``; None if unparsable."""
    value = response.headers.get("Content-Range", "")
    unit, _, spec = value.strip().partition(" ")
    start = spec.split("-", 1)[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def _remote_total(response: http.client.HTTPResponse, offset: int) -> int | None:
    """Full size of the remote file as announced by the server, if it says."""
    if response.status == 206:
        total = response.headers.get("Content-Range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length", "")
    return offset + int(length) if length.isdigit() else None


def _check_announced_size(url: str, part: Path, total: int | None, size: int | None) -> None:
    """Fail before transferring gigabytes when the server already says the size is not the pinned one."""
    if size is not None and total is not None and total != size:
        part.unlink(missing_ok=True)
        raise DataError(
            f"The server says {url} is {total} bytes, but the pinned size is {size} bytes: the file at that URL "
            f"has changed or the URL is wrong. Nothing was kept ({part} removed). Check the URL; if it is right, "
            "the upstream file was replaced and the kit's pinned size and sha256 need updating."
        )


def _copy_body(
    response: http.client.HTTPResponse,
    fh: BinaryIO,
    total: int | None,
    offset: int,
    *,
    desc: str,
    progress: bool,
    chunk: int,
) -> None:
    """Stream the body into ``fh`` with a progress bar that starts at the resumed offset."""
    bar = tqdm(
        total=total,
        initial=offset,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not progress,
    )
    with bar:
        while block := response.read(chunk):
            fh.write(block)
            bar.update(len(block))


def _interrupted(url: str, part: Path, have: int, total: int | None, reason: str) -> DataError:
    progress = f"{have} of {total} bytes" if total is not None else f"{have} bytes (total size unknown)"
    return DataError(
        f"Download of {url} was interrupted at {progress} ({reason}). The partial file is kept at {part}; "
        "re-run the same command to resume the download from there."
    )


def _verify(url: str, part: Path, expected: str, size: int | None, chunk: int) -> None:
    """Size and sha256 check; a file that fails is deleted because it cannot be trusted or resumed."""
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        part.unlink(missing_ok=True)
        raise DataError(
            f"Download of {url} has the wrong size: expected {size} bytes, got {actual_size} bytes. The file "
            f"cannot be trusted and was removed ({part}); re-run the same command to download it again."
        )
    actual = sha256_file(part, chunk)
    if actual != expected:
        part.unlink(missing_ok=True)
        raise DataError(
            f"Checksum mismatch for {url}: expected sha256 {expected}, got {actual}. The downloaded file cannot "
            f"be trusted and was removed ({part}); re-run the same command to download it again. If this keeps "
            "happening, the file at that URL has changed: check the URL or report it."
        )


# ------------------------------------------------------------------------------------------------- tar extraction


class _UnsafeMember(Exception):
    """Internal: why one archive member must not be extracted (turned into a DataError naming the archive)."""


def safe_extract_tar(archive: Path, target: Path) -> Path:
    """Extract the tar archive ``archive`` (any compression tarfile knows) into ``target``; return ``target``.

    All members are validated first; one unsafe member means nothing at all is written. Extraction happens in a
    staging directory next to ``target`` and is moved into place only on success. If ``target`` already exists,
    the archive's top-level entries are moved into it, refusing (before moving anything) if one already exists.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise DataError(f"Archive {archive} does not exist; download it first (re-run the same command).")
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _read_members(tar, archive)
            _validate_members(archive, target, members)
            _extract_via_staging(tar, members, archive, target)
    except _CORRUPT_ARCHIVE_ERRORS as err:  # from open(), or from data past the headers during extraction
        raise _corrupt(archive, err) from err
    return target


def _read_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    try:
        return tar.getmembers()  # reads every header (decompressing on the way), so most corruption shows here
    except OSError as err:  # e.g. bz2's "Invalid data stream"; here it can only mean unreadable archive data
        raise _corrupt(archive, err) from err


def _corrupt(archive: Path, err: BaseException) -> DataError:
    return DataError(
        f"Cannot extract {archive}: it is corrupt, truncated or not a tar archive ({_first_line(err)}). Nothing was "
        f"extracted. Delete {archive} and re-run the same command to download it again."
    )


def _first_line(err: BaseException) -> str:
    """tarfile's "could not be opened" lists every compression it tried, one per line; the first line suffices."""
    return (str(err).strip().splitlines() or [repr(err)])[0].rstrip(":")


def _unsafe(archive: Path, target: Path, member: str, why: str) -> DataError:
    return DataError(
        f"Refusing to extract {archive}: member {member!r} {why}. The archive is unsafe or corrupt, so nothing "
        f"was extracted to {target}. Delete {archive} and download it again; if this persists, the file at its "
        "source is broken or has been tampered with."
    )


def _validate_members(archive: Path, target: Path, members: list[tarfile.TarInfo]) -> None:
    symlinks = {_normalise_name(m.name): m.linkname for m in members if m.issym()}
    earlier: set[str] = set()  # a hard link can only copy a member extracted before it
    for member in members:
        try:
            _check_member(member, symlinks)
            if member.islnk() and _normalise_name(member.linkname) not in earlier:
                raise _UnsafeMember(f"is a hard link to {member.linkname!r}, which is not an earlier member of the "
                                    "archive (the link points nowhere)")
        except _UnsafeMember as err:
            raise _unsafe(archive, target, member.name, str(err)) from None
        earlier.add(_normalise_name(member.name))


def _normalise_name(name: str) -> str:
    """``./a//b/`` -> ``a/b`` (tar names always use ``/``)."""
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _check_member(member: tarfile.TarInfo, symlinks: dict[str, str]) -> None:
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise _UnsafeMember("is a device file, FIFO or other special file (only files, directories and links)")
    name = member.name
    if posixpath.isabs(name) or os.path.isabs(name):
        raise _UnsafeMember("has an absolute path")
    parts = _normalise_name(name).split("/")
    if ".." in parts:
        # Real datasets never need "..", and forbidding it keeps every name's location purely lexical.
        raise _UnsafeMember("contains '..', which would write outside the target directory")
    if parts == [""] and not member.isdir():
        raise _UnsafeMember("would replace the target directory itself")
    for i in range(1, len(parts)):
        # Writing *through* a symlink from the same archive is the classic escape; also, without this rule a
        # symlink's name would not be its real location, and resolving link targets below would be unsound.
        if "/".join(parts[:i]) in symlinks:
            raise _UnsafeMember(f"is placed under the symlink {'/'.join(parts[:i])!r}")
    if member.issym():
        _check_link_target(member.linkname, posixpath.dirname(_normalise_name(name)), symlinks, "symlink")
    elif member.islnk():
        _check_link_target(member.linkname, "", symlinks, "hard link")  # hard link targets are archive-relative


def _check_link_target(link: str, base: str, symlinks: dict[str, str], kind: str) -> None:
    if posixpath.isabs(link) or os.path.isabs(link):
        raise _UnsafeMember(f"is a {kind} to the absolute path {link!r}")
    try:
        _resolve(posixpath.join(base, link), symlinks)
    except _UnsafeMember as err:
        raise _UnsafeMember(f"is a {kind} to {link!r}, which {err}") from None


def _resolve(path: str, symlinks: dict[str, str]) -> list[str]:
    """Where ``path`` (relative to the target) lands once the archive's own symlinks exist, as path parts.

    Raises :class:`_UnsafeMember` if it climbs above the target or loops. Done virtually, component by
    component, because lexical normalisation alone is fooled by ``dir/link-to-parent/..``.
    """
    todo = list(reversed(path.split("/")))
    resolved: list[str] = []
    hops = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not resolved:
                raise _UnsafeMember("points outside the target directory")
            resolved.pop()
            continue
        resolved.append(part)
        link = symlinks.get("/".join(resolved))
        if link is None:
            continue
        hops += 1
        if hops > _MAX_SYMLINK_HOPS:
            raise _UnsafeMember("is part of a symlink loop")
        if posixpath.isabs(link) or os.path.isabs(link):
            raise _UnsafeMember(f"goes through a symlink to the absolute path {link!r}")
        resolved.pop()  # the link's target is relative to the directory holding it
        todo.extend(reversed(link.split("/")))
    return resolved


def _extract_via_staging(
    tar: tarfile.TarFile, members: list[tarfile.TarInfo], archive: Path, target: Path
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _make_staging_dir(target)
    try:
        try:
            tar.extractall(staging, members=members, **_DATA_FILTER)  # members validated above
        except _FILTER_ERRORS as err:  # the second line of defence caught something the validation did not
            raise _unsafe(
                archive, target, err.tarinfo.name, f"was refused by tarfile's data filter: {err}"
            ) from err
        _move_into_place(staging, target, archive)
    finally:
        if os.path.lexists(staging):
            shutil.rmtree(staging, ignore_errors=True)


def _make_staging_dir(target: Path) -> Path:
    """A fresh directory next to ``target`` (same filesystem, so the final ``os.replace`` is a cheap rename).

    Not ``tempfile.mkdtemp``: its 0700 mode would become the mode of ``target`` itself.
    """
    while True:
        staging = target.parent / f".{target.name}.extracting-{secrets.token_hex(4)}"
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


def _move_into_place(staging: Path, target: Path, archive: Path) -> None:
    if not os.path.lexists(target):
        os.replace(staging, target)
        return
    if not target.is_dir():
        raise DataError(
            f"Cannot extract {archive}: {target} exists and is not a directory. Nothing was extracted. "
            "Remove it and re-run the same command."
        )
    entries = sorted(staging.iterdir())
    clashes = [target / e.name for e in entries if os.path.lexists(target / e.name)]
    if clashes:  # checked for all entries before moving any, so a refusal leaves target untouched
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise DataError(
            f"Cannot extract {archive} into {target}: {clashes[0]} already exists{more}. Nothing was "
            f"extracted. Remove it (or all of {target}) and re-run the same command."
        )
    for entry in entries:
        os.replace(entry, target / entry.name)
