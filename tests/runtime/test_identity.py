"""The program's identity: an unprivileged uid and gid, no capability, its own files.

It runs as the policy's ``user`` (default 65532), owns its memory, its volumes' files and
its secret files, and cannot trace, read or signal its init, the one root process in its
PID namespace (the runtime itself is outside it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .support import Job, fast_job_args, markers

NewJob = Callable[..., Job]

PROBE = r"""
import ctypes, errno, getpass, json, os, signal, tempfile

def attempt(action):
    try:
        action()
        return "done"
    except OSError as exc:
        return errno.errorcode[exc.errno]

def round_trip(path):
    with open(path, "w") as f:
        f.write("mine")
    with open(path) as f:
        back = f.read()
    st = os.stat(path)
    return {"read": back, "uid": st.st_uid, "gid": st.st_gid}

def read(path):
    with open(path, "rb") as f:
        f.read(1)

status = dict(
    line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line
)
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
traced = libc.ptrace(16, 1, None, None)  # PTRACE_ATTACH to the init
volume = os.environ["MODEL_DIR"]
KEY = os.environ["SECURETF_TLS_KEY"]
home = os.path.expanduser("~")
out = {
    "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "egid": os.getegid(),
    "groups": os.getgroups(),
    "caps": {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")},
    "no_new_privs": status["NoNewPrivs"].strip(),
    "user": getpass.getuser(),
    "volume": round_trip(os.path.join(volume, "mine.txt")),
    "volume_dir": [os.stat(volume).st_uid, os.stat(volume).st_gid],
    "volume_tempdir": os.path.isdir(tempfile.mkdtemp(dir=volume)),
    "tmp": round_trip("/tmp/mine.txt"),
    "home": round_trip(os.path.join(home, "mine.txt")),
    "home_owner": os.stat(home).st_uid,
    "app": [os.stat("probe.py").st_uid, oct(os.stat("probe.py").st_mode & 0o777)],
    "tempdir": tempfile.gettempdir(),
    "secret": [os.stat(KEY).st_uid, oct(os.stat(KEY).st_mode & 0o777)],
    "secret_read": attempt(lambda: read(KEY)),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "pid": os.getpid(),
    # Positive controls: the same reads of itself work.
    "own_environ": attempt(lambda: read("/proc/self/environ")),
    "own_mem": attempt(lambda: read(f"/proc/{os.getpid()}/maps")),
    # Attacks on the init (root, PID 1): trace it, read its memory and environment, kill it.
    "init_environ": attempt(lambda: read("/proc/1/environ")),
    "init_mem": attempt(lambda: read("/proc/1/mem")),
    "init_ptrace": errno.errorcode.get(ctypes.get_errno(), "done") if traced != 0 else "done",
    "init_kill": attempt(lambda: os.kill(1, signal.SIGKILL)),
    "setuid_0": attempt(lambda: os.setuid(0)),
    "init_caps": {
        k: v.strip() for k, v in (
            line.split(":", 1) for line in open("/proc/1/status").read().splitlines()
        ) if k in ("CapEff", "CapPrm", "CapBnd", "CapAmb")
    },
}
print("@marker identity " + json.dumps(out), flush=True)
"""

NO_CAPABILITIES = "0000000000000000"
#: The init's: CAP_KILL, to forward signals to the program.
INIT_CAPABILITIES = "0000000000000020"
#: What a process the init starts may hold: CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP
#: (setpriv's needs, before it drops them all for the program).
START_CAPABILITIES = "00000000000001e0"


def _probe(new_job: NewJob, user: str = "") -> dict[str, Any]:
    job = new_job(
        **{**fast_job_args(), "app_files": {"probe.py": PROBE}, "services": {"probe": []}},
        user=user,
        apply=False,
    )
    # The operator's app is for its owner alone: the program reads it all the same.
    (job.app / "probe.py").chmod(0o600)
    job.app.chmod(0o700)
    job.services = {"probe": ["python", "probe.py"]}
    job.apply()
    proc = job.run("probe")
    assert proc.returncode == 0, proc.stderr
    found = markers(proc.stdout)["identity"]
    assert isinstance(found, dict)
    return found


def test_the_program_is_an_unprivileged_user_that_owns_its_files(new_job: NewJob) -> None:
    found = _probe(new_job)
    uid = gid = 65532
    assert (found["uid"], found["euid"], found["gid"], found["egid"]) == (uid, uid, gid, gid)
    assert found["groups"] == []  # none of root's supplementary groups
    assert found["caps"] == dict.fromkeys(found["caps"], NO_CAPABILITIES), found["caps"]
    assert set(found["caps"]) == {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}
    assert found["no_new_privs"] == "1"
    assert found["user"] == "app"
    mine = {"read": "mine", "uid": uid, "gid": gid}
    # The read-write volume: writable, and its files (and itself) are the program's.
    assert found["volume"] == mine
    assert found["volume_dir"] == [uid, gid]
    assert found["volume_tempdir"] is True
    # Memory: /tmp and HOME (which it owns).
    assert found["tmp"] == mine
    assert found["home"] == mine
    assert found["home_owner"] == uid
    assert found["tempdir"] == "/tmp"
    # Its app, even what only the operator could read: its own, with the measured mode.
    assert found["app"] == [uid, "0o600"]
    # Its secret files: its own, for no one else.
    assert found["secret"] == [uid, "0o600"]
    assert found["secret_read"] == "done"


def test_the_program_cannot_reach_its_init_or_become_root(new_job: NewJob) -> None:
    found = _probe(new_job)
    # The controls: the program reads its own environment and maps.
    assert (found["own_environ"], found["own_mem"]) == ("done", "done")
    # Its PID namespace holds its init and itself: the runtime is not in it.
    assert found["pids"] == [1, found["pid"]], found["pids"]
    assert found["init_environ"] == "EACCES"
    assert found["init_mem"] == "EACCES"
    assert found["init_ptrace"] == "EPERM"
    assert found["init_kill"] == "EPERM"
    assert found["setuid_0"] == "EPERM"
    # Even a process that took over the init would hold nothing that reaches outside the
    # program's namespaces: no CAP_SYS_ADMIN, CAP_DAC_*, CAP_NET_*, ...
    assert found["init_caps"] == {
        "CapEff": INIT_CAPABILITIES,
        "CapPrm": INIT_CAPABILITIES,
        "CapBnd": START_CAPABILITIES,
        "CapAmb": NO_CAPABILITIES,
    }


def test_the_policy_names_the_program_s_uid_and_gid(new_job: NewJob) -> None:
    found = _probe(new_job, "{uid: 1234, gid: 2345}")
    assert (found["uid"], found["gid"]) == (1234, 2345)
    assert found["volume"] == {"read": "mine", "uid": 1234, "gid": 2345}
    assert found["secret"] == [1234, "0o600"]
    assert found["caps"]["CapEff"] == NO_CAPABILITIES
