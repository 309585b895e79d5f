"""Reading strace's lines into refused writes (``._writes``, pure) and the pipe they come
through (``._trace``): known answers from strace 6 itself, lines that are no refusal, the
program's private names hidden, hostile paths shown harmless, and bounds."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from securetf.runtime._trace import WriteTrace, strace_arguments
from securetf.runtime._writes import (
    MAX_LINE_BYTES,
    MAX_PATH_CHARS,
    MAX_REFUSALS,
    RELATIVE,
    WRITE_CALLS,
    Refusal,
    RefusedWrites,
    parse,
)

#: Lines as strace 6.1 printed them (-f -Z -y), with what each says.
KNOWN = {
    b'412  openat(AT_FDCWD</app>, "/etc/x", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666)'
    b" = -1 EROFS (Read-only file system)": Refusal("/etc/x", "EROFS"),
    b'412  openat(AT_FDCWD</app>, "y", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666)'
    b" = -1 EROFS (Read-only file system)": Refusal("/app/y", "EROFS"),
    b'7448  mkdir("/proc/q", 0777)            = -1 ENOENT (No such file or directory)': (
        Refusal("/proc/q", "ENOENT")
    ),
    b'9  openat(AT_FDCWD</tmp/stt/we\\76ir,d \\"x>, "f,\\"g>", O_WRONLY|O_CREAT|O_TRUNC, 0666)'
    b" = -1 EACCES (Permission denied)": Refusal('/tmp/stt/we>ir,d "x/f,"g>', "EACCES"),
    b'9  openat(AT_FDCWD</tmp/\\303\\251>, "\\303\\251", O_RDWR|O_CREAT, 0600)'
    b" = -1 ENOSPC (No space left on device)": Refusal("/tmp/\u00e9/\u00e9", "ENOSPC"),
    b'1 renameat2(AT_FDCWD</app>, "a", AT_FDCWD</app>, "../data/b", RENAME_NOREPLACE)'
    b" = -1 EROFS (Read-only file system)": Refusal("/data/b", "EROFS"),
    b'1 openat2(3</a>, "b", {flags=O_RDWR|O_CREAT|O_CLOEXEC, mode=0644, resolve=0}, 24)'
    b" = -1 EROFS (Read-only file system)": Refusal("/a/b", "EROFS"),
    b'1 symlinkat("/target", AT_FDCWD</app>, "link") = -1 EROFS (Read-only file system)': (
        Refusal("/app/link", "EROFS")
    ),
    b'1 mkdir("rel", 0777) = -1 EROFS (Read-only file system)': Refusal("rel", "EROFS"),
    b'1 creat("//usr/./z", 0644) = -1 EROFS (Read-only file system)': Refusal("/usr/z", "EROFS"),
}

#: Lines that report no refused write.
NOT_REFUSALS = [
    # reading, even when it fails
    b'5  openat(AT_FDCWD</app>, "/usr/lib/x.so", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file'
    b" or directory)",
    # the program's ordinary business
    b'5  mkdir("/tmp/a", 0777) = -1 EEXIST (File exists)',
    b'5  unlink("/tmp/gone") = -1 ENOENT (No such file or directory)',
    b'5  renameat2(AT_FDCWD</tmp>, "a", AT_FDCWD</data>, "b", 0) = -1 EXDEV (Invalid cross-device'
    b" link)",
    b'5  openat(AT_FDCWD</app>, "/dev/tty", O_RDWR|O_NONBLOCK) = -1 ENXIO (No such device or'
    b" address)",
    # not a write call, not a failure, not strace's
    b'5  stat("/etc/x", 0x7ffd) = -1 ENOENT (No such file or directory)',
    b'5  openat(AT_FDCWD</app>, "/tmp/x", O_WRONLY|O_CREAT, 0666) = 3</tmp/x>',
    b"--- SIGCHLD {si_signo=SIGCHLD} ---",
    b"+++ exited with 1 +++",
    b"5  utimensat(3</tmp/x>, NULL, NULL, 0) = -1 EROFS (Read-only file system)",
    b"",
]


def test_known_lines() -> None:
    for line, refusal in KNOWN.items():
        assert parse(line) == refusal, line


def test_lines_that_are_no_refusal() -> None:
    for line in NOT_REFUSALS:
        assert parse(line) is None, line


def test_a_longer_line_than_any_path_is_not_read() -> None:
    line = (
        b'5  mkdir("/etc/' + b"a" * MAX_LINE_BYTES + b'", 0777) = -1 EROFS (Read-only file system)'
    )
    assert parse(line) is None


def test_private_places_are_named_not_their_contents() -> None:
    refused = RefusedWrites(private=["/data", "/tmp", "/model/"])
    for path in ("/data/patients/alice.csv", "/tmp/cache-of-alice", "/model/w.bin", "/data"):
        refused.add(f'1 mkdir("{path}", 0777) = -1 EROFS (Read-only file system)'.encode())
    # A path that only looks elsewhere is judged where it leads.
    refused.add(b'1 mkdir("/etc/../data/bob", 0777) = -1 EROFS (Read-only file system)')
    refused.add(b'1 mkdir("/database", 0777) = -1 EROFS (Read-only file system)')
    refused.add(b'1 mkdir("rel", 0777) = -1 EROFS (Read-only file system)')
    summary = refused.summary()
    assert summary == (
        "writes refused: /data/... (EROFS), /tmp/... (EROFS), /model/... (EROFS), "
        f"/data (EROFS), /database (EROFS), {RELATIVE} (EROFS)"
    )


def test_hostile_paths_are_shown_harmless() -> None:
    escape = b"\\33[2J\\33]0;owned\\7"  # clear the screen, set the title
    refused = RefusedWrites(private=[])
    refused.add(b'1 mkdir("/etc/' + escape + b'\\n", 0777) = -1 EROFS (Read-only file system)')
    refused.add(b'1 mkdir("/etc/' + b"b" * 4000 + b'", 0777) = -1 EROFS (Read-only file system)')
    summary = refused.summary()
    assert summary.isprintable()
    assert "/etc/\\x1b[2J\\x1b]0;owned\\x07\\n (EROFS)" in summary
    assert f"/etc/{'b' * (MAX_PATH_CHARS - 5)}... (EROFS)" in summary


def test_refusals_are_deduplicated_and_bounded() -> None:
    refused = RefusedWrites(private=[])
    for _ in range(3):
        refused.add(b'1 mkdir("/etc/x", 0777) = -1 EROFS (Read-only file system)')
    for i in range(MAX_REFUSALS + 5):
        refused.add(f'1 mkdir("/etc/{i}", 0777) = -1 EROFS (Read-only file system)'.encode())
    assert len(refused.found) == MAX_REFUSALS
    assert refused.more == 6
    assert refused.summary().startswith("writes refused: /etc/x (EROFS), /etc/0 (EROFS)")
    assert refused.summary().endswith(", and 6 more")
    assert RefusedWrites(private=[]).summary() == "no write was refused"


@given(st.binary(max_size=512))
def test_any_line_parses_or_is_ignored(line: bytes) -> None:
    refused = RefusedWrites(private=["/data"])
    refused.add(line)
    assert refused.summary().isprintable()


NAMES = st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1).filter(
    lambda name: name not in (".", "..")
)


@given(NAMES, st.sampled_from(sorted(WRITE_CALLS)))
def test_any_path_of_a_refusal_reads_back(name: str, call: str) -> None:
    """strace's escaping of any file name, read back: the same name."""
    raw = ("/etc/" + name).encode()
    quoted = "".join(chr(b) if 32 <= b < 127 and b not in b'"\\' else f"\\{b:03o}" for b in raw)
    dirfd, at = WRITE_CALLS[call]
    args = ["AT_FDCWD</app>"] * (max(at, dirfd or 0) + 1)
    args[at] = f'"{quoted}"'
    if call in ("open", "openat", "openat2"):
        flags = "{flags=O_WRONLY, mode=0, resolve=0}" if call == "openat2" else "O_WRONLY"
        args.insert(at + 1, flags)
    line = f"7  {call}({', '.join(args)}) = -1 EROFS (Read-only file system)".encode()
    assert parse(line) == Refusal("/etc/" + name, "EROFS")


def test_the_reader_takes_lines_from_the_pipe_and_skips_overlong_ones() -> None:
    trace = WriteTrace(private=[])
    writer = os.dup(trace.write_fd)
    trace.handed_over()  # the runtime's copy is closed: only ``writer`` remains
    forged = b'1 mkdir("/etc/forged", 0777) = -1 EROFS (Read-only file system)\n'
    with os.fdopen(writer, "wb") as out:
        out.write(b'1 mkdir("/etc/a", 0777) = -1 EROFS (Read-only file syst')
        out.flush()
        out.write(b"em)\n")
        # An over-long line whose end looks like a refusal: skipped to its end.
        out.write(b'1 mkdir("' + b"x" * (MAX_LINE_BYTES + 10) + b"\\n" + forged)
        out.write(b'1 mkdir("/etc/b", 0777) = -1 EROFS (Read-only file system)')
    assert list(trace.finish().found) == [("/etc/a", "EROFS"), ("/etc/b", "EROFS")]


def test_strace_traces_each_write_call_and_only_failures() -> None:
    args = strace_arguments("/usr/bin/strace", "/proc/1/fd/7")
    assert args[0] == "/usr/bin/strace"
    assert args[-1] == "--"
    assert {"-f", "-Z", "-y", "-DD", "--seccomp-bpf"} <= set(args)
    assert args[args.index("-o") + 1] == "/proc/1/fd/7"
    traced = args[args.index("-e", args.index("-e") + 1) + 1]
    assert traced == "trace=" + ",".join(f"?{call}" for call in WRITE_CALLS)
