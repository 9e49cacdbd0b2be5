"""Shared fixtures for berth's integration tests (run as root).

Images are built at test time from Debian's busybox-static plus a small
static probe program (tests/probe/probe.c); every test gets its own
temporary --root.
"""
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUSYBOX = "/bin/busybox"


def _find_berth():
    path = os.environ.get("BERTH_BIN") or os.path.join(TOP, "build", "berth")
    if not os.access(path, os.X_OK):
        pytest.fail(f"berth binary not found at {path}: build it or set BERTH_BIN")
    return path


@pytest.fixture(scope="session")
def berth_bin():
    if os.geteuid() != 0:
        pytest.fail("the integration tests run as root")
    return _find_berth()


def static_probe(tmp_path_factory, name):
    """tests/probe/NAME.c as a static binary: built here with gcc, or the
    one prebuilt in $BERTH_PROBES (the VM suites' guests have no compiler)."""
    prebuilt = os.environ.get("BERTH_PROBES")
    if prebuilt:
        path = os.path.join(prebuilt, name)
        if not os.access(path, os.X_OK):
            pytest.fail(f"BERTH_PROBES={prebuilt} has no {name}")
        return path
    out = tmp_path_factory.mktemp(name) / name
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out),
                    os.path.join(TOP, "tests", "probe", name + ".c")], check=True)
    return str(out)


@pytest.fixture(scope="session")
def probe_bin(tmp_path_factory):
    return static_probe(tmp_path_factory, "probe")


def make_rootfs(dest, probe=None):
    """A busybox rootfs with every applet linked, users root/app/nobody."""
    if not os.path.exists(BUSYBOX):
        pytest.fail("busybox-static is not installed (apt-get install busybox-static)")
    for d in ("bin", "etc", "tmp", "root", "home/app", "proc", "sys", "dev"):
        os.makedirs(os.path.join(dest, d), exist_ok=True)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    shutil.copy2(BUSYBOX, os.path.join(dest, "bin", "busybox"))
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for a in applets:
        link = os.path.join(dest, "bin", a)
        if a != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    if probe:
        shutil.copy2(probe, os.path.join(dest, "bin", "probe"))
    with open(os.path.join(dest, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n"
                "app:x:1000:1000:app:/home/app:/bin/sh\n"
                "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    with open(os.path.join(dest, "etc", "group"), "w") as f:
        f.write("root:x:0:\napp:x:1000:\nwheel:x:10:app\nnogroup:x:65534:\n")
    for name in ("resolv.conf", "hosts"):
        open(os.path.join(dest, "etc", name), "a").close()
    os.chown(os.path.join(dest, "home/app"), 1000, 1000)
    return dest


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory, probe_bin):
    return make_rootfs(str(tmp_path_factory.mktemp("image") / "rootfs"), probe_bin)


@pytest.fixture
def root(tmp_path):
    d = tmp_path / "state"
    d.mkdir()
    return str(d)


class Berth:
    def __init__(self, binary, root):
        self.binary = binary
        self.root = root

    def cmd(self, *args):
        return [self.binary, "--root", self.root, *args]

    def run(self, *args, timeout=60, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self.cmd(*args), timeout=timeout, **kw)

    def popen(self, *args, **kw):
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        return subprocess.Popen(self.cmd(*args), **kw)


@pytest.fixture
def berth(berth_bin, root):
    return Berth(berth_bin, root)


def wait_for(pred, timeout=10, what="condition"):
    """Poll a condition the test cannot get an event for (another process's
    state), with a deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def berth_cgroups():
    """Every cgroup berth created, on v1 and v2 hierarchies."""
    found = []
    for base in glob.glob("/sys/fs/cgroup/*/berth") + glob.glob("/sys/fs/cgroup/berth"):
        for dirpath, dirnames, _ in os.walk(base):
            found += [os.path.join(dirpath, d) for d in dirnames]
    return sorted(found)


def root_hash(root):
    """The suffix of a service's cgroup under a root other than
    /var/lib/berth: FNV-1a of its real path (keeper.c)."""
    h = 2166136261
    for b in os.path.realpath(root).encode():
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return f"{h:08x}"


def root_cgroups(root):
    """berth's cgroups of the services of this root only (other tests, other
    roots may run at the same time)."""
    tag = "@" + root_hash(root)
    return [c for c in berth_cgroups() if tag in c]


def empty_berth_cgroups(root=None):
    """berth's leaf cgroups without a process: leftovers. A service's cgroup
    has two leaves, its keeper's and its container's, both always occupied."""
    empty = []
    for c in (root_cgroups(root) if root else berth_cgroups()):
        if any(os.path.isdir(os.path.join(c, d)) for d in os.listdir(c)):
            continue
        with open(os.path.join(c, "cgroup.procs")) as f:
            if not f.read().strip():
                empty.append(c)
    return empty


def berth_processes(binary):
    """pids of processes running the given berth binary (besides us); by
    inode: berth runs from a read-only mount of itself, whose exe link
    reads "/" (agent/lib/selfexe.h)."""
    want = os.stat(binary)
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{p}/exe")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            pids.append(int(p))
    return pids


def describe_processes(pids):
    """pid, parent, state and command line of each, for a failure message:
    which test left a process behind is told by what it runs."""
    out = []
    for pid in pids:
        try:
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip()
        except OSError:
            continue
        out.append(f"{pid} (parent {stat[1]}, state {stat[0]}): {cmd[:200]}")
    return "; ".join(out) or "gone by now"


def mountinfo():
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split(" ", 4)[4] for line in f)


# --- apply / keepers ---------------------------------------------------------

import hashlib
import http.server
import json
import socketserver
import threading


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def http_dir(tmp_path_factory):
    """A directory served over HTTP on 127.0.0.1: (path, base_url)."""
    d = tmp_path_factory.mktemp("www")
    handler = lambda *a, **kw: _QuietHandler(*a, directory=str(d), **kw)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield str(d), f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="session")
def image(rootfs, http_dir):
    """The busybox rootfs as a served tar.gz: {"url", "digest"}."""
    d, base = http_dir
    path = os.path.join(d, "busybox.tar.gz")
    subprocess.run(["tar", "-C", rootfs, "-czf", path, "."], check=True)
    return {"url": f"{base}/busybox.tar.gz", "digest": "sha256:" + sha256_file(path)}


def services_yaml(services):
    """YAML text for {name: dict} (JSON is YAML; one service per line)."""
    lines = ["version: 1", "services:"]
    if not services:
        lines[-1] = "services: {}"
    for name, svc in services.items():
        lines.append(f"  {name}: {json.dumps(svc)}")
    return "\n".join(lines) + "\n"


def is_keeper_cmdline(cmd, root):
    """A keeper of `root` by its command line (split at NULs): the name it
    gives itself, "berth-keeper NAME --root ROOT" (agent/lib/proctitle.h),
    or the one it was started with, "berth keeper --root ROOT ... NAME"
    (until it has renamed itself)."""
    return len(cmd) > 3 and cmd[3] == root.encode() and (
        cmd[0] == b"berth-keeper" and cmd[2] == b"--root" or cmd[1] == b"keeper")


def keeper_pids(root):
    """pids of keeper processes serving this root (not their containers'
    inits, forked from them: named berth-init, in a pid namespace of their
    own)."""
    pids = []
    ours = os.readlink("/proc/self/ns/pid")
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            cmd = open(f"/proc/{p}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if is_keeper_cmdline(cmd, root):
            try:
                if os.readlink(f"/proc/{p}/ns/pid") == ours:
                    pids.append(int(p))
            except OSError:
                pass
    return pids


class Host:
    """A berth root plus its desired-state file, torn down after the test."""

    def __init__(self, berth, image, tmp_path):
        self.berth = berth
        self.image = image
        self.file = str(tmp_path / "services.yaml")

    def svc(self, command, **extra):
        s = {"image": dict(self.image), "command": command}
        s.update(extra)
        return s

    def write(self, services):
        with open(self.file, "w") as f:
            f.write(services_yaml(services))

    def apply(self, *args, timeout=120):
        return self.berth.run("apply", "-f", self.file, *args, timeout=timeout)

    def diff(self, *args):
        return self.berth.run("diff", "-f", self.file, *args)

    # DESIGN.md's contract for `berth status --json`
    STATES = {"running", "starting", "backoff", "stopped", "failed", "rolled-back"}
    FIELDS = {"name", "state", "pid", "restarts", "started_at", "image", "health", "last_exit"}

    def status(self):
        r = self.berth.run("status", "--json")
        assert r.returncode == 0, r.stderr
        services = json.loads(r.stdout)["services"]
        for s in services:
            assert s["state"] in self.STATES, s
            assert self.FIELDS <= set(s), s
        return {s["name"]: s for s in services}

    def pids(self):
        return {n: s["pid"] for n, s in self.status().items()}

    def teardown(self):
        # An agent's converge runs in a child that outlives an agent killed
        # with SIGKILL (agent.c, in_child) and may start keepers after the
        # services were stopped: such children go first, and whatever is
        # left under this root last, so that nothing lives on into later
        # tests that count berth processes.
        self.kill_root_processes(keepers=False)
        services = os.path.join(self.berth.root, "services")
        if os.path.isdir(services):
            for name in os.listdir(services):
                self.berth.run("stop", name, timeout=60)
        for pid in keeper_pids(self.berth.root):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        self.kill_root_processes(keepers=True)

    def kill_root_processes(self, keepers):
        """SIGKILL every process of this berth binary whose command line
        names this root (keepers only when asked), until none is seen for
        0.2 s."""
        root = self.berth.root.encode()
        deadline = time.monotonic() + 20
        quiet = 0
        while quiet < 10 and time.monotonic() < deadline:
            left = []
            for pid in berth_processes(self.berth.binary):
                try:
                    cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                except OSError:
                    continue
                if root in cmd and (keepers or not is_keeper_cmdline(cmd, self.berth.root)):
                    left.append(pid)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            quiet = 0 if left else quiet + 1
            time.sleep(0.02)


@pytest.fixture
def host(berth, image, tmp_path):
    h = Host(berth, image, tmp_path)
    yield h
    h.teardown()
