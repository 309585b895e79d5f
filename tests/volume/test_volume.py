"""The volume API: random access, random writes, commits, hidden metadata."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from securetf.errors import NotFoundError, UsageError
from securetf.volume import Volume, VolumeKey
from securetf.volume._writer import VolumeFileWriter

from .conftest import SMALL_CHUNK, object_of

FIXTURE_OK = [HealthCheck.function_scoped_fixture]


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(offset=st.integers(0, 6 * SMALL_CHUNK), length=st.integers(0, 3 * SMALL_CHUNK))
def test_random_access_reads(
    sealed: Path, key: VolumeKey, tree: Path, offset: int, length: int
) -> None:
    plain = (tree / "a/big.bin").read_bytes()
    with Volume.open(sealed, key) as vol, vol.open_file("a/big.bin") as f:
        assert f.seek(offset) == offset
        assert f.read(length) == plain[offset : offset + length]
        assert f.tell() == min(offset + length, len(plain)) if offset <= len(plain) else offset


def test_random_read_decrypts_only_the_chunks_needed(sealed: Path, key: VolumeKey) -> None:
    with Volume.open(sealed, key) as vol, vol.open_file("a/big.bin") as f:
        calls: list[int] = []
        original = f._src.read_into

        def counting(index: int, out: memoryview) -> bytes:
            calls.append(index)
            return original(index, out)

        f._src.read_into = counting  # type: ignore[method-assign]
        f.seek(3 * SMALL_CHUNK + 10)
        f.read(100)
        assert calls == [3]


_op = st.one_of(
    st.tuples(
        st.just("write"), st.integers(0, 12 * SMALL_CHUNK), st.binary(max_size=3 * SMALL_CHUNK)
    ),
    st.tuples(st.just("truncate"), st.integers(0, 12 * SMALL_CHUNK), st.just(b"")),
    st.tuples(st.just("read"), st.integers(0, 12 * SMALL_CHUNK), st.just(b"")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(ops=st.lists(_op, max_size=12), cache=st.sampled_from([1, 3, 64]))
def test_random_writes_match_a_plain_file(
    sealed: Path, key: VolumeKey, tree: Path, ops: list[tuple[str, int, bytes]], cache: int
) -> None:
    """A writable file behaves like a bytearray under any sequence of writes, truncations
    and reads, whatever the cache size (small caches force stored chunks and re-keying)."""
    with Volume.open(sealed, key, writable=True) as vol:
        model = bytearray(vol.open_file("a/big.bin").read())  # examples share the volume
        f = vol.open_file("a/big.bin", "r+b")
        assert isinstance(f, VolumeFileWriter)
        f._budget = cache
        for op, pos, payload in ops:
            if op == "write":
                if pos > len(model):
                    model.extend(bytes(pos - len(model)))
                model[pos : pos + len(payload)] = payload
                f.seek(pos)
                f.write(payload)
            elif op == "truncate":
                if pos > len(model):
                    model.extend(bytes(pos - len(model)))
                del model[pos:]
                f.truncate(pos)
            else:
                f.seek(pos)
                assert f.read(SMALL_CHUNK) == bytes(model[pos : pos + SMALL_CHUNK])
        f.close()
        vol.commit()
        assert vol.open_file("a/big.bin").read() == bytes(model)
        vol.verify()


def test_rewrite_uses_a_fresh_object_and_key(sealed: Path, key: VolumeKey) -> None:
    with Volume.open(sealed, key) as vol:
        before = vol._files["a/big.bin"]
    with Volume.open(sealed, key, writable=True) as vol:
        with vol.open_file("a/big.bin", "r+b") as f:
            f.write(b"x")
        vol.commit()
        after = vol._files["a/big.bin"]
    assert before.object_id != after.object_id
    assert before.salt != after.salt


def test_storage_shows_no_names_structure_or_exact_sizes(
    sealed: Path, key: VolumeKey, tree: Path
) -> None:
    stored = [p for p in sealed.rglob("*")]
    names = {p.name for p in tree.rglob("*")}
    assert not names & {p.name for p in stored}
    blob = b"".join(p.read_bytes() for p in stored if p.is_file())
    for name in (n for n in names if len(n) >= 4):
        assert name.encode() not in blob
    assert b"hello" not in blob
    # Objects sit in a flat, random fan-out whatever the tree's depth.
    assert {len(p.relative_to(sealed).parts) for p in stored if p.is_file()} <= {1, 3}
    # "hello.txt" (6 bytes) and "zero" (0 bytes) occupy the same padded size class.
    hello = object_of(sealed, key, "a/b/hello.txt").stat().st_size
    assert hello == object_of(sealed, key, "zero").stat().st_size


def test_commit_bumps_version_and_changes_tag(sealed: Path, key: VolumeKey) -> None:
    with Volume.open(sealed, key, writable=True) as vol:
        tag1 = vol.tag
        assert vol.commit() == tag1  # nothing changed: no new version
        vol.mkdir("new/dir")
        tag2 = vol.commit()
        assert tag2 != tag1
        assert vol.version == 2
    with Volume.open(sealed, key) as vol:
        assert vol.tag == tag2
        assert "new/dir" in vol.directories()


def test_uncommitted_changes_are_dropped_and_leave_no_objects(sealed: Path, key: VolumeKey) -> None:
    before = sorted(sealed.rglob("*"))
    with Volume.open(sealed, key, writable=True) as vol, vol.open_file("new.bin", "wb") as f:
        f.write(os.urandom(3 * SMALL_CHUNK))
    assert sorted(sealed.rglob("*")) == before
    with Volume.open(sealed, key) as vol:
        assert not vol.exists("new.bin")


def test_orphans_from_a_crash_are_collected(sealed: Path, key: VolumeKey) -> None:
    orphan = sealed / "objects" / "ab" / ("cd" * 15)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"left by a crash")
    with Volume.open(sealed, key, writable=True):
        pass
    assert not orphan.exists()


def test_single_writer(sealed: Path, key: VolumeKey) -> None:
    with Volume.open(sealed, key, writable=True):
        with pytest.raises(UsageError, match="open for writing by another"):
            Volume.open(sealed, key, writable=True)
        Volume.open(sealed, key).close()  # readers are not blocked


def test_misuse_is_refused_clearly(sealed: Path, key: VolumeKey) -> None:
    with Volume.open(sealed, key) as vol:
        with pytest.raises(UsageError, match="read-only"):
            vol.open_file("x", "wb")
        with pytest.raises(NotFoundError):
            vol.open_file("missing")
        with pytest.raises(UsageError):
            vol.open_file("a/big.bin", "w")  # type: ignore[call-overload]
    with Volume.open(sealed, key, writable=True) as vol:
        f = vol.open_file("x", "wb")
        with pytest.raises(UsageError, match="close every file"):
            vol.commit()
        f.close()
    with pytest.raises(NotFoundError, match="not a sealed volume"):
        Volume.open(sealed / "objects", key)
    with pytest.raises(NotFoundError):
        Volume.open(sealed / "nope", key)


def test_rename_chmod_remove(sealed: Path, key: VolumeKey, tree: Path) -> None:
    with Volume.open(sealed, key, writable=True) as vol:
        vol.rename("a/b/hello.txt", "moved.txt")
        vol.chmod("moved.txt", 0o755)
        vol.remove("zero")
        vol.commit()
    with Volume.open(sealed, key) as vol:
        assert vol.stat("moved.txt").mode == 0o755
        assert vol.open_file("moved.txt").read() == b"hello\n"
        assert not vol.exists("zero")
        assert not vol.exists("a/b/hello.txt")
        vol.verify()


def test_streaming_write_larger_than_the_cache(tmp_path: Path, key: VolumeKey) -> None:
    """Memory stays bounded: at most the cache budget of chunks is held at any time."""
    with Volume.create(tmp_path / "v", key, chunk_size=SMALL_CHUNK) as vol:
        f = vol.open_file("stream.bin", "wb")
        assert isinstance(f, VolumeFileWriter)
        f._budget = 8
        block = os.urandom(SMALL_CHUNK)
        peak = 0
        for _ in range(200):
            f.write(block)
            peak = max(peak, len(f._dirty))
        f.close()
        vol.commit()
        assert peak <= 9
        assert vol.open_file("stream.bin").read() == block * 200


def test_special_mode_bits_are_never_recorded(sealed: Path, key: VolumeKey) -> None:
    with Volume.open(sealed, key, writable=True) as vol:
        vol.chmod("zero", 0o4755)
        with vol.open_file("new", "wb", file_mode=0o6750) as f:
            f.write(b"x")
        vol.commit()
    with Volume.open(sealed, key) as vol:
        assert vol.stat("zero").mode == 0o755
        assert vol.stat("new").mode == 0o750


def test_commit_refuses_a_tree_no_directory_could_hold(sealed: Path, key: VolumeKey) -> None:
    with Volume.open(sealed, key, writable=True) as vol:
        tag = vol.tag
        with vol.open_file("zero/inside", "wb") as f:  # "zero" is a file
            f.write(b"x")
        with pytest.raises(UsageError, match="zero"):
            vol.commit()
    with Volume.open(sealed, key) as vol:
        assert vol.tag == tag
        vol.verify()


def test_revert_keeps_only_the_named_files(sealed: Path, key: VolumeKey) -> None:
    """What a failed run commits: the log appended, every other change dropped."""
    with Volume.open(sealed, key, writable=True) as vol:
        tag = vol.tag
        with vol.open_file("logs/run.log", "ab") as f:
            f.write(b"first\n")
        vol.commit()
        with vol.open_file("logs/run.log", "ab") as f:
            f.write(b"second\n")
        with vol.open_file("a/b/hello.txt", "wb") as f:
            f.write(b"half-written")
        vol.remove("zero")
        vol.mkdir("new-dir")
        with vol.open_file("new.bin", "wb") as f:
            f.write(os.urandom(3 * SMALL_CHUNK))
        assert vol.revert(keep=["logs/run.log"]) is True
        kept = vol.commit()
        assert kept != tag
    with Volume.open(sealed, key, expect_tag=kept) as vol:
        vol.verify()
        assert vol.open_file("logs/run.log").read() == b"first\nsecond\n"
        assert vol.open_file("a/b/hello.txt").read() == b"hello\n"
        assert vol.exists("zero")
        assert not vol.exists("new.bin")
        assert "new-dir" not in vol.directories()
    # The dropped file's objects went with the commit.
    with Volume.open(sealed, key) as vol:
        live = {vol._store.object_path(e.object_id) for e in vol._files.values()}
    assert {p for p in (sealed / "objects").rglob("*") if p.is_file()} == live


def test_revert_with_nothing_kept_changed_leaves_nothing_to_commit(
    sealed: Path, key: VolumeKey
) -> None:
    with Volume.open(sealed, key, writable=True) as vol:
        tag = vol.tag
        with vol.open_file("zero", "wb") as f:
            f.write(b"changed")
        assert vol.revert(keep=["logs/run.log"]) is False  # never written: stays absent
        assert vol.commit() == tag
        assert vol.open_file("zero").read() == b""


def test_revert_never_keeps_a_file_the_committed_tree_cannot_hold(
    sealed: Path, key: VolumeKey
) -> None:
    """A program that fails can have put anything at the kept path: content it renamed
    there (whose object a committed file shares), or a file below what was a file."""
    with Volume.open(sealed, key, writable=True) as vol:
        tag = vol.tag
        vol.rename("a/big.bin", "run.log")  # same object as the committed a/big.bin
        vol.remove("zero")
        with vol.open_file("zero/run.log", "wb") as f:  # "zero" is a committed file
            f.write(b"x")
        assert vol.revert(keep=["run.log", "zero/run.log"]) is False
        assert vol.commit() == tag
    with Volume.open(sealed, key, expect_tag=tag) as vol:
        vol.verify()


def test_revert_refuses_open_files_and_read_only_volumes(sealed: Path, key: VolumeKey) -> None:
    with Volume.open(sealed, key) as vol, pytest.raises(UsageError, match="read-only"):
        vol.revert()
    with Volume.open(sealed, key, writable=True) as vol:
        f = vol.open_file("x", "wb")
        with pytest.raises(UsageError, match="close every file"):
            vol.revert(keep=["x"])
        f.close()
