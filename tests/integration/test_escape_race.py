"""Exploit tests (issue 15, DESIGN.md invariant 0), part 2: a container
process racing, for many seconds, the processes that berth starts inside it
(`berth exec`, health checks) to grab their host fds, directories and the
berth binary itself (CVE-2024-21626 and CVE-2019-5736 classes). The probe's
scanners are in tests/probe/probe.c; see test_escape.py for the rest."""
import os
import queue
import re
import select
import subprocess
import threading
import time

from conftest import sha256_file
from test_escape import kv, marker, own_berth, own_host  # noqa: F401 (fixtures)

RACE_SECONDS = 12
# execs that must have raced the scanner: many more on a normal host, about
# one a second in the VM suites' guests under TCG (12 seen on 6.12)
MIN_EXECS = 10
CHECK = {"command": ["/bin/probe", "exit", "0"], "interval": "100ms", "timeout": "2s",
         "retries": 3}
# what the caller of berth exec passes: the options that take other paths
EXEC_VARIANTS = [[], ["-w", "/tmp"], ["-u", "app"], ["-e", "X=1"], ["-i"], ["-u", "0:10"]]


class Follow:
    """`berth logs -f NAME`, line by line: waiting on the service's own
    output instead of polling."""

    def __init__(self, berth, name):
        self.p = berth.popen("logs", "-f", name)
        self.q = queue.Queue()
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put(line)
        self.q.put(None)

    def until(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.q.get(timeout=max(left, 0.01))
            except queue.Empty:
                line = ""
            if line is None or (line == "" and left <= 0):
                raise AssertionError(f"no line matching {pattern!r} in time:\n" +
                                     "".join(self.lines))
            self.lines.append(line)
            if re.search(pattern, line):
                return line

    def close(self):
        self.p.kill()
        self.p.wait()


class ExecLoop:
    """`berth exec` into NAME over and over, each holding host directory
    fds, until stopped: the processes the scanner races."""

    def __init__(self, berth, name, fds):
        self.berth, self.name, self.fds = berth, name, fds
        self.stop = threading.Event()
        self.codes = []
        self.errors = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        i = 0
        while not self.stop.is_set():
            opts = EXEC_VARIANTS[i % len(EXEC_VARIANTS)]
            cmd = ["/bin/probe", "exit", "0"] if i % 2 else ["sleep", "0.05"]
            if i % 7 == 6:
                code, err = self._on_a_terminal(cmd)
            else:
                r = self.berth.run("exec", *opts, self.name, "--", *cmd, pass_fds=self.fds,
                                   timeout=30)
                code, err = r.returncode, r.stderr
            self.codes.append(code)
            if code:
                self.errors.append((opts, err))
            i += 1

    def _on_a_terminal(self, cmd):
        """berth exec -t from a terminal of the host (a pty of ours)."""
        master, slave = os.openpty()
        try:
            p = subprocess.Popen(self.berth.cmd("exec", "-t", self.name, "--", *cmd),
                                 stdin=slave, stdout=slave, stderr=slave, pass_fds=self.fds)
            os.close(slave)
            slave = -1
            out = b""
            while True:   # drain until the slave is closed by everyone
                r, _, _ = select.select([master], [], [], 30)
                if not r:
                    break
                try:
                    data = os.read(master, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
            return p.wait(timeout=30), out.decode(errors="replace")
        finally:
            if slave >= 0:
                os.close(slave)
            os.close(master)

    def join(self):
        self.stop.set()
        self.t.join(60)
        assert not self.t.is_alive()


def devino(*paths):
    return ",".join(f"{st.st_dev}:{st.st_ino}" for st in map(os.stat, paths))


def race(host, name, command, fds, seconds):
    """Start NAME with a 100ms health check, then exec into it until its
    command prints "scan-done"; returns its log lines and the exec loop."""
    host.write({name: host.svc(command, healthcheck=CHECK, restart="never")})
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    f = Follow(host.berth, name)
    try:
        f.until(r"^scan-start$", 20)
        loop = ExecLoop(host.berth, name, fds)
        try:
            f.until(r"^scan-done$", seconds + 30)
        finally:
            loop.join()
    finally:
        f.close()
    return "".join(f.lines), loop


def test_scanner_racing_exec_and_health_checks_never_reaches_a_host_path(own_host, marker,
                                                                        tmp_path):
    """Attack: for 12 seconds the service opens /proc/P/fd/*, cwd, root and
    exe of every other process it can see while health checks run every
    100ms and `berth exec` (with host directory fds held by its caller,
    some with -t from a host pty) starts again and again, so that it
    catches them between entering the container and exec; every directory
    it reaches is climbed out of ("../../..") to a host marker file.
    Promise: no open ever yields the marker, a host directory (by device
    and inode), a terminal of the host's devpts or the berth binary:
    processes berth starts are non-dumpable until they exec, with every
    host fd closed. Controls: the scanner does open the fds and directories
    of many processes of the container (the execs and health checks after
    their exec), every exec succeeds, and the health checks pass."""
    berth = own_host.berth
    svc_dir = os.path.join(berth.root, "services", "racer")
    pts = os.stat("/dev/pts/ptmx").st_dev   # the host's terminals (of exec -t's caller)
    host_ids = devino("/", marker.dir, marker.tmp, berth.root, str(tmp_path / "bin")) + \
        f",{pts}:0"
    bst = os.stat(berth.binary)
    cmd = ["/bin/sh", "-c",
           f"/bin/probe scan {RACE_SECONDS} {marker.rel} {host_ids} {bst.st_dev}:{bst.st_ino}; "
           "exec sleep 100000"]
    fds = [os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in
           (marker.dir, "/", berth.root, marker.tmp)]
    try:
        out, loop = race(own_host, "racer", cmd, fds, RACE_SECONDS)
    finally:
        for fd in fds:
            os.close(fd)
    st = own_host.status()["racer"]
    # the keeper runs our copy of the binary: the one whose inode is watched
    kst, bst = os.stat(f"/proc/{st['keeper_pid']}/exe"), os.stat(berth.binary)
    assert (kst.st_dev, kst.st_ino) == (bst.st_dev, bst.st_ino)
    assert os.path.isdir(os.path.join(svc_dir, "log"))
    hits = re.findall(r"^(?:ESCAPE|HOSTDIR|HOSTDEV|BERTHBIN) .*$", out, re.M)
    assert not hits, f"{len(hits)} hits, the first ones:\n" + "\n".join(hits[:30])
    assert marker.token not in out
    summary = kv(out)
    assert summary["hits"] == "0", out[-2000:]
    # controls
    assert len(loop.codes) >= MIN_EXECS and not loop.errors, (len(loop.codes), loop.errors[:3])
    assert int(summary["pids"]) >= 20, f"the scanner saw too few processes: {summary}"
    assert st["health"] == "healthy", st


def test_exe_of_exec_and_health_check_processes_cannot_be_written(own_host, marker):
    """Attack (CVE-2019-5736): for 12 seconds, during `berth exec`s and
    100ms health checks, container root opens /proc/P/exe of every other
    process for writing (O_WRONLY, O_RDWR), and O_RDONLY then reopens it
    through /proc/self/fd for writing, now and once the process is gone,
    writing to whatever opens. Promise: the berth binary on the host is
    unchanged (sha256 before and after) and the container gets no handle on
    it at all (berth's processes are non-dumpable until they exec, and
    pid 1 too). Control: the same attack on a program the container runs
    itself (a copy of busybox) gets a handle and overwrites it once it
    exits, which shows the attack works."""
    berth = own_host.berth
    before = sha256_file(berth.binary)
    bst = os.stat(berth.binary)
    cmd = ["/bin/sh", "-c",
           "cp /bin/busybox /tmp/sleep && { /tmp/sleep 2 & } && "
           f"/bin/probe exe-attack {RACE_SECONDS} {bst.st_dev}:{bst.st_ino} /tmp/sleep; "
           "exec sleep 100000"]
    out, loop = race(own_host, "writer", cmd, [], RACE_SECONDS)
    assert sha256_file(berth.binary) == before, "the berth binary was changed"
    summary = kv(out)
    bad = re.findall(r"^(?:OPENED-FOR-WRITE|REOPENED|WROTE the berth) .*$", out, re.M)
    assert summary["berth-writes"] == "0" and not bad, \
        f"{summary}; the first attempts that got through:\n" + "\n".join(bad[:30])
    # a read-only handle cannot be reopened for writing while a berth
    # process executes the file, but nothing else stands between it and
    # the binary once none does
    handles = re.findall(r"^BERTHBIN .*$", out, re.M)
    assert summary["berth-handles"] == "0", \
        f"{summary}: the container opened the berth binary:\n" + "\n".join(handles[:10])
    # controls
    assert int(summary["exe-opened"]) > 0 and int(summary["victim-handles"]) > 0, summary
    assert int(summary["victim-writes"]) > 0, f"the attack did not work on its victim: {summary}"
    assert len(loop.codes) >= MIN_EXECS and not loop.errors, (len(loop.codes), loop.errors[:3])
    st = own_host.status()["writer"]
    assert st["health"] == "healthy", st
