"""Exploit tests for DESIGN.md's invariant 0, "the container cannot reach the
host" (issue 15): each attack is run for real, as root, against containers
started by the real berth binary, next to a positive control that shows the
same path working with benign input.

This file: host directory fds reached through a working directory
(/proc/self/fd/N from the spec, an image config, `berth run -w` and `berth
exec -w`), device nodes, the container's pid 1, and the syscalls a default
container must not make. test_escape_race.py has the racing /proc scanners
(leaked fds, CVE-2019-5736), test_escape_tty.py the terminal and the
environment. The image server's attacks are in test_escape_images.py.

The attacker's tools are in tests/probe/probe.c; every test reads the
probe's "key=value" lines.
"""
import dataclasses
import errno
import gzip
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tarfile

import pytest

from conftest import Berth, Host, berth_processes, sha256_file, wait_for
from faultserver import FaultServer

# every fd number a keeper, an init, berth run or berth exec might hold
FD_RANGE = range(3, 21)
SLEEP = ["/bin/sh", "-c", "exec sleep 100000"]


def wait_all_ended(host, count):
    """Until all `count` services have run to their end (restart: never)."""
    wait_for(lambda: (lambda st: len(st) == count and all(
        s["state"] not in ("starting", "running") for s in st.values()))(host.status()),
        60, "every service to run to its end")


def kv(text):
    """The probe's "key=value" lines as a dict (the last one wins); a line of
    several space-separated "key=value" words gives each."""
    out = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) > 1 and all("=" in w for w in words):
            out.update(w.split("=", 1) for w in words)
            continue
        k, sep, v = line.partition("=")
        if sep and " " not in k:
            out[k.strip()] = v.strip()
    return out


@dataclasses.dataclass
class Marker:
    path: str    # a file on the host, outside any container
    rel: str     # the same without its leading "/": what "../../.." reaches
    token: str   # its content
    dir: str     # its directory
    tmp: str     # the test's tmp dir: no host path under it exists in a container


@pytest.fixture
def marker(tmp_path, probe_bin):
    """A secret file on the host. Control: the probe's climb out of a host
    directory does read it, so a container whose cwd (or a directory it
    opens) is on the host would print the token."""
    token = "host-secret-" + secrets.token_hex(8)
    d = tmp_path / "host-only"
    d.mkdir()
    (d / "marker").write_text(token + "\n")
    m = Marker(str(d / "marker"), str(d / "marker")[1:], token, str(d), str(tmp_path))
    r = subprocess.run([probe_bin, "escape-cwd", m.rel], cwd=m.dir, capture_output=True,
                       text=True, timeout=10)
    assert kv(r.stdout)["read"] == token, r.stdout
    return m


def stayed_inside(out, m):
    """What is wrong with the probe's escape-cwd output from inside a
    container (None: it ran, its cwd is in the container, the climb found
    nothing of the host)."""
    got = kv(out)
    if m.token in out:
        return f"read the host's marker: {out!r}"
    if got.get("read") != "ENOENT" or "cwd" not in got:
        return f"unexpected output: {out!r}"
    if got["cwd"].startswith((m.tmp, "/tmp/pytest")):
        return f"its cwd is on the host: {out!r}"
    return None


def workdir_outcome(out, err, m, n, started):
    """Either the container never started and the error names the working
    directory, or it started with its cwd inside its own root; returns
    what is wrong, or None."""
    if m.token in out + err:
        return f"read the host's marker: {out + err!r}"
    if started:
        return stayed_inside(out, m)
    if f"'/proc/self/fd/{n}'" not in err:
        return f"no error naming the working directory: {err!r}"
    return None


def assert_none(problems):
    bad = {k: v for k, v in problems.items() if v}
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())


@pytest.fixture
def own_berth(berth_bin, root, tmp_path):
    """berth from a copy of the binary: the attacks that write to the berth
    binary never damage the build that other tests use."""
    d = tmp_path / "bin"
    d.mkdir()
    shutil.copy2(berth_bin, d / "berth")
    return Berth(str(d / "berth"), root)


@pytest.fixture
def own_host(own_berth, image, tmp_path):
    h = Host(own_berth, image, tmp_path)
    yield h
    h.teardown()


def host_dir_fds(*dirs):
    """Directory fds of the host, open in this process: what a caller of
    berth run / berth exec holds (a shell's, a supervisor's)."""
    return [os.open(d, os.O_RDONLY | os.O_DIRECTORY) for d in dirs]


def close_all(fds):
    for fd in fds:
        os.close(fd)


# --- 1. working directory /proc/self/fd/N --------------------------------------

def test_spec_workdir_proc_self_fd_never_reaches_the_host(host, marker):
    """Attack: a service whose spec says `workdir: /proc/self/fd/N` (the
    CVE-2024-21626 class) for every N a keeper or an init might hold, then
    climbs "../../.." from its cwd to read a host file. Promise: apply fails
    that service with an error naming the working directory, or the service
    starts with its cwd inside its own root and reads nothing of the host.
    Control: a normal workdir (created on demand) works."""
    cmd = ["/bin/probe", "escape-cwd", marker.rel]
    svcs = {f"fd{n}": host.svc(cmd, workdir=f"/proc/self/fd/{n}", restart="never")
            for n in FD_RANGE}
    svcs["control"] = host.svc(cmd, workdir="/srv/app", restart="never")
    host.write(svcs)
    r = host.apply(timeout=180)
    assert marker.token not in r.stdout + r.stderr
    wait_all_ended(host, len(svcs))
    st = host.status()
    problems, failed = {}, []
    for n in FD_RANGE:
        name = f"fd{n}"
        logs = host.berth.run("logs", name).stdout
        started = "cwd=" in logs
        if not started:
            failed.append(name)
        problems[name] = workdir_outcome(logs if started else "",
                                         (st[name]["start_error"] or "") + logs, marker, n, started)
    assert_none(problems)
    # the services that did not start are reported as failed by apply
    assert all(name in r.stdout for name in failed), r.stdout
    if failed:
        assert r.returncode == 1, r.stdout
    logs = host.berth.run("logs", "control").stdout
    assert kv(logs)["cwd"] == "/srv/app" and kv(logs)["read"] == "ENOENT", logs
    assert st["control"]["last_exit"]["code"] == 0


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def oci_layer(tmp_path_factory, rootfs):
    """The busybox + probe rootfs as one gzip'ed layer: (bytes, diff_id)."""
    d = tmp_path_factory.mktemp("esc-layer")
    subprocess.run(["tar", "--numeric-owner", "-C", rootfs, "-cf", str(d / "l.tar"), "."],
                   check=True)
    raw = (d / "l.tar").read_bytes()
    return gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()


def oci_archive(out, layer, config):
    """An OCI image layout packed as a tar (an oci-archive) with one layer and
    this image config ("config" object of the OCI image config)."""
    gz, diff_id = layer
    blobs = {}

    def blob(data):
        h = hashlib.sha256(data).hexdigest()
        blobs[h] = data
        return {"digest": "sha256:" + h, "size": len(data)}

    cfg = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": config,
                           "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode())
    lay = blob(gz)
    man = blob(json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": dict(cfg, mediaType="application/vnd.oci.image.config.v1+json"),
        "layers": [dict(lay, mediaType="application/vnd.oci.image.layer.v1.tar+gzip")],
    }).encode())
    index = {"schemaVersion": 2, "manifests": [dict(
        man, mediaType=OCI_MANIFEST,
        annotations={"org.opencontainers.image.ref.name": "latest"})]}
    files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
             ("index.json", json.dumps(index).encode())]
    files += [(f"blobs/sha256/{h}", data) for h, data in blobs.items()]
    with tarfile.open(out, "w") as t:
        for d in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            t.addfile(info)
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))
    return out


def test_image_config_workdir_proc_self_fd_never_reaches_the_host(berth, host, marker,
                                                                  oci_layer, tmp_path):
    """Attack: a hostile OCI image whose config says `WorkingDir:
    /proc/self/fd/N` and whose entrypoint climbs out of its cwd to a host
    file, run by `berth run sha256:DIGEST` (with and without directory fds
    held by the caller) and as a service (the keeper's path). Promise: it
    fails with an error naming the working directory, or runs inside its
    root and reads nothing of the host. Control: the same image with
    `WorkingDir: /srv` runs in /srv."""
    def build(workdir, name):
        config = {"WorkingDir": workdir, "Entrypoint": ["/bin/probe"],
                  "Cmd": ["escape-cwd", marker.rel]}
        return oci_archive(str(tmp_path / f"{name}.oci.tar"), oci_layer, config)

    digests = {}
    fds = host_dir_fds(marker.dir, "/", host.berth.root, marker.tmp)
    with FaultServer() as srv:
        for n in [*FD_RANGE, "control"]:
            wd = "/srv" if n == "control" else f"/proc/self/fd/{n}"
            digest = srv.add(f"/{n}.tar", file=build(wd, n))
            r = berth.run("fetch", srv.url(f"/{n}.tar"), "--digest", f"sha256:{digest}")
            assert r.returncode == 0, r.stderr
            digests[n] = (digest, srv.url(f"/{n}.tar"))
        problems = {}
        try:
            for n in FD_RANGE:
                for pass_fds in ((), fds):
                    r = berth.run("run", f"sha256:{digests[n][0]}", pass_fds=pass_fds)
                    problems[f"berth run, WorkingDir /proc/self/fd/{n}, caller fds {pass_fds}"] = \
                        workdir_outcome(r.stdout, r.stderr, marker, n, "cwd=" in r.stdout)
            r = berth.run("run", f"sha256:{digests['control'][0]}", pass_fds=fds)
        finally:
            close_all(fds)
        assert r.returncode == 0, r.stderr
        assert kv(r.stdout)["cwd"] == "/srv" and kv(r.stdout)["read"] == "ENOENT", r.stdout

        # the same images as services: the keeper resolves the image's workdir
        svcs = {f"img{n}": {"image": {"url": url, "digest": f"sha256:{d}", "format": "oci"},
                            "restart": "never"} for n, (d, url) in digests.items()}
        host.write(svcs)
        r = host.apply(timeout=180)
    assert marker.token not in r.stdout + r.stderr
    wait_all_ended(host, len(svcs))
    st = host.status()
    for n in FD_RANGE:
        name = f"img{n}"
        logs = host.berth.run("logs", name).stdout
        started = "cwd=" in logs
        problems[f"service {name}"] = workdir_outcome(
            logs if started else "", (st[name]["start_error"] or "") + logs, marker, n, started)
    assert_none(problems)
    logs = host.berth.run("logs", "imgcontrol").stdout
    assert kv(logs)["cwd"] == "/srv" and kv(logs)["read"] == "ENOENT", logs


def test_run_workdir_proc_self_fd_with_the_callers_directory_fds(berth, rootfs, marker):
    """Attack: `berth run -w /proc/self/fd/N` while the caller holds open
    directory fds of the host (passed to berth like a shell or a supervisor
    would), for N = 3..20 and every fd the caller holds. Promise: refused
    with an error naming the working directory, or the container's cwd is
    inside its root. Control: `-w /srv/app` works with the same fds held."""
    fds = host_dir_fds(*[marker.dir, "/", berth.root, marker.tmp, "/etc", "/root"] * 2)
    problems = {}
    try:
        for n in sorted(set(FD_RANGE) | set(fds)):
            r = berth.run("run", "-w", f"/proc/self/fd/{n}", rootfs, "/bin/probe",
                          "escape-cwd", marker.rel, pass_fds=fds)
            problems[f"berth run -w /proc/self/fd/{n}"] = workdir_outcome(
                r.stdout, r.stderr, marker, n, "cwd=" in r.stdout)
        r = berth.run("run", "-w", "/srv/app", rootfs, "/bin/probe", "escape-cwd", marker.rel,
                      pass_fds=fds)
    finally:
        close_all(fds)
    assert_none(problems)
    assert r.returncode == 0, r.stderr
    assert kv(r.stdout)["cwd"] == "/srv/app" and kv(r.stdout)["read"] == "ENOENT", r.stdout


def test_exec_workdir_proc_self_fd_with_the_callers_directory_fds(host, marker):
    """Attack: `berth exec -w /proc/self/fd/N` into a running service, for
    every N, while the caller holds host directory fds. Promise: refused
    with an error naming the working directory, or the command's cwd is
    inside the container. Control: `berth exec -w /tmp` runs in /tmp."""
    host.write({"web": host.svc(SLEEP)})
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    fds = host_dir_fds(*[marker.dir, "/", host.berth.root, marker.tmp, "/etc"] * 2)
    problems = {}
    try:
        for n in sorted(set(FD_RANGE) | set(fds)):
            r = host.berth.run("exec", "-w", f"/proc/self/fd/{n}", "web", "--", "/bin/probe",
                               "escape-cwd", marker.rel, pass_fds=fds)
            problems[f"berth exec -w /proc/self/fd/{n}"] = workdir_outcome(
                r.stdout, r.stderr, marker, n, "cwd=" in r.stdout)
        r = host.berth.run("exec", "-w", "/tmp", "web", "--", "/bin/probe", "escape-cwd",
                           marker.rel, pass_fds=fds)
    finally:
        close_all(fds)
    assert_none(problems)
    assert r.returncode == 0, r.stderr
    assert kv(r.stdout)["cwd"] == "/tmp" and kv(r.stdout)["read"] == "ENOENT", r.stdout
    assert host.status()["web"]["state"] == "running"


# --- 3. device nodes --------------------------------------------------------------

def host_disk():
    """The host's first block device from /proc/partitions: (major, minor)."""
    for line in open("/proc/partitions").read().splitlines()[2:]:
        major, minor, _, name = line.split()
        return int(major), int(minor), name
    raise AssertionError("no block device in /proc/partitions")


def sections(out):
    """Split "@WHERE" headed sections of a shell loop's output."""
    got, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = line[1:]
            got[cur] = ""
        elif cur:
            got[cur] += line + "\n"
    return got


MKNOD_PLACES = ["/tmp", "/scratch", "/dev/shm", "/dev", "/"]
CONTROL_DEVS = ("/dev/null", "/dev/zero", "/dev/full", "/dev/urandom")


def mknod_devices(tmp_path, probe_bin):
    """loop0, the host's disk, loop-control and kvm; checked to open on the
    host (so that the attack would get something)."""
    major, minor, _ = host_disk()
    devices = [("b", 7, 0), ("b", major, minor), ("c", 10, 237), ("c", 10, 232)]
    openable = []
    for kind, ma, mi in devices:
        r = subprocess.run([probe_bin, "mknod", str(tmp_path / f"n{ma}-{mi}"), kind, str(ma),
                            str(mi)], capture_output=True, text=True, timeout=10)
        if kv(r.stdout).get("open") == "ok":
            openable.append((kind, ma, mi))
    # loop0 and loop-control open on this host (its own disk may be hidden
    # by a device cgroup of the machine: it is tried anyway)
    assert ("b", 7, 0) in openable and ("c", 10, 237) in openable, openable
    return devices


def mknod_script(devices):
    script = "".join(f"echo @{p.rstrip('/')}/n-{k}{ma}-{mi}; "
                     f"/bin/probe mknod {p.rstrip('/')}/n-{k}{ma}-{mi} {k} {ma} {mi}; "
                     for p in MKNOD_PLACES for k, ma, mi in devices)
    return script + "".join(f"echo @{d}; /bin/probe read {d}; " for d in CONTROL_DEVS)


def mknod_problems(out, devices, what, with_mknod):
    """What the mknod script's output shows wrong."""
    got = sections(out)
    assert len(got) == len(MKNOD_PLACES) * len(devices) + 4, out
    problems = {}
    for where, text in got.items():
        if where in CONTROL_DEVS:
            want = "read=0" if where == "/dev/null" else "read=16"
            assert f"open=ok {want}" in text, (what, where, text)   # the controls
            continue
        if "open=ok" in text:
            problems[f"{what} {where}"] = "opened the device node: " + text.replace("\n", " ")
        elif not with_mknod and "mknod=EPERM" not in text:
            problems[f"{what} {where}"] = "made a node without CAP_MKNOD: " + \
                text.replace("\n", " ")
    return problems


def test_mknod_block_and_char_devices_cannot_be_opened(berth, rootfs, tmp_path, probe_bin):
    """Attack: container root runs `mknod X b 7 0` (loop0), the same for
    the host's disk, `c 10 237` (loop-control) and `c 10 232` (kvm), then
    opens and reads X, in the writable layer, a tmpfs mount, /dev/shm, /dev
    and /, with the default capabilities and with `--cap-add MKNOD`.
    Promise: no such node can be opened (nodev mounts or a device cgroup),
    and without MKNOD it cannot even be made (the default capability set
    has no CAP_MKNOD). Controls: the same nodes made on the host do open
    (so the attack would read something), and the container's own
    /dev/null, /dev/zero, /dev/full and /dev/urandom work."""
    devices = mknod_devices(tmp_path, probe_bin)
    script = mknod_script(devices)
    problems = {}
    for caps in ([], ["--cap-add", "MKNOD"]):
        r = berth.run("run", *caps, "--tmpfs", "/scratch", rootfs, "/bin/sh", "-c", script)
        assert r.returncode == 0, r.stderr
        problems.update(mknod_problems(r.stdout, devices, f"berth run {caps}", bool(caps)))
    assert_none(problems)


def test_mknod_in_a_service_and_its_exec(host, tmp_path, probe_bin):
    """Attack: the same mknod-and-open from services (the keeper's path),
    one with `capabilities: {add: [MKNOD]}`, and from `berth exec` into
    each. Promise and controls as for `berth run`."""
    devices = mknod_devices(tmp_path, probe_bin)
    script = mknod_script(devices)
    cmd = ["/bin/sh", "-c", script + "echo @end; exec sleep 100000"]
    tmpfs = [{"type": "tmpfs", "target": "/scratch"}]
    host.write({"plain": host.svc(cmd, mounts=tmpfs),
                "mknod": host.svc(cmd, mounts=tmpfs, capabilities={"add": ["MKNOD"]})})
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    problems = {}
    for name in ("plain", "mknod"):
        logs = wait_for(lambda: (lambda t: t if "@end" in t else None)(
            host.berth.run("logs", name).stdout), 10, f"{name}'s script")
        logs = logs.split("@end")[0]
        problems.update(mknod_problems(logs, devices, f"service {name}", name == "mknod"))
        r = host.berth.run("exec", name, "--", "/bin/sh", "-c", script.replace("n-", "x-"))
        assert r.returncode == 0, r.stderr
        problems.update(mknod_problems(r.stdout, devices, f"exec {name}", name == "mknod"))
    assert_none(problems)


# --- 4. the container's pid 1 ----------------------------------------------------------

CAP_SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def status_of(text, prefix=""):
    out = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            k, _, v = line[len(prefix):].partition(":")
            out[k.strip()] = v.strip()
    return out


def assert_holds_no_more(init, svc, what):
    for k in CAP_SETS:
        extra = int(init[k], 16) & ~int(svc[k], 16)
        assert not extra, f"{what}: pid 1's {k} {init[k]} has {extra:#x} beyond the service's {svc[k]}"
    assert init["NoNewPrivs"] == svc["NoNewPrivs"] == "1", (what, init, svc)
    assert init["Seccomp"] == svc["Seccomp"], (what, init["Seccomp"], svc["Seccomp"])


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                kids = open(f"/proc/{p}/task/{t}/children").read().split()
                out += map(int, kids)
                todo += map(int, kids)
        except OSError:
            pass
    return out


def in_ns_pid(pid):
    return status_of(open(f"/proc/{pid}/status").read())["NSpid"].split()[-1]


def test_pid1_holds_no_more_than_the_service_with_sys_ptrace(own_berth, rootfs, marker):
    """Attack: with `--cap-add SYS_PTRACE` (a common debugging request),
    container root attaches to pid 1 (berth's init) to own a more privileged
    process, and opens its fds, cwd, root and exe. Promise: pid 1 gains the
    attacker nothing: its CapInh/Prm/Eff/Bnd/Amb are within the service's,
    NoNewPrivs 1 as the service, the same seccomp mode, seen from inside and
    on the host; none of its fds or directories is the host's; its exe
    cannot be opened for writing. Control: the attach itself works (the
    capability was granted) and the service's own status reads fine."""
    hostids = ",".join(f"{st.st_dev}:{st.st_ino}" for st in map(os.stat, [
        "/", marker.dir, marker.tmp, own_berth.root]))
    bst = os.stat(own_berth.binary)
    script = ("/bin/probe status 1; /bin/probe ptrace 1; "
              f"/bin/probe scan 0.3 {marker.rel} {hostids} {bst.st_dev}:{bst.st_ino}; "
              f"/bin/probe exe-attack 0.3 {bst.st_dev}:{bst.st_ino} /nonexistent")
    before = sha256_file(own_berth.binary)
    r = own_berth.run("run", "--cap-add", "SYS_PTRACE", rootfs, "/bin/sh", "-c", script)
    assert r.returncode == 0, r.stderr
    init, svc = status_of(r.stdout, "other "), status_of(r.stdout, "self ")
    assert set(CAP_SETS) <= set(svc) and set(CAP_SETS) <= set(init), r.stdout
    assert int(svc["CapEff"], 16) & (1 << 19), "control: SYS_PTRACE (19) was not granted"
    assert_holds_no_more(init, svc, "inside")
    got = kv(r.stdout)
    assert got["ptrace"] == "ok", r.stdout  # control: SYS_PTRACE lets it attach
    assert marker.token not in r.stdout
    assert not re.search(r"^(ESCAPE|HOSTDIR) ", r.stdout, re.M), r.stdout
    assert not re.search(r"^(OPENED-FOR-WRITE|REOPENED|WROTE) ", r.stdout, re.M), r.stdout
    assert got["berth-writes"] == "0", r.stdout
    assert sha256_file(own_berth.binary) == before

    # the same seen from the host
    p = own_berth.popen("run", "--cap-add", "SYS_PTRACE", rootfs, "/bin/sh", "-c",
                    "echo ready; exec sleep 100000")
    try:
        assert p.stdout.readline() == "ready\n"
        inside = {in_ns_pid(d): d for d in descendants(p.pid)}
        assert "1" in inside and "2" in inside, inside
        init = status_of(open(f"/proc/{inside['1']}/status").read())
        svc = status_of(open(f"/proc/{inside['2']}/status").read())
        assert_holds_no_more(init, svc, "on the host")
    finally:
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)


def test_service_pid1_holds_no_more_than_the_service(own_host, marker):
    """Attack: the same on a service (the keeper starts its init) with
    `capabilities: {add: [SYS_PTRACE]}`, and from `berth exec` into it.
    Promise: pid 1's capability sets are within the service's, with the
    same NoNewPrivs and seccomp mode, on the host and from inside; its fds
    and directories are none of the host's. Control: the attach works."""
    berth = own_host.berth
    own_host.write({"dbg": own_host.svc(SLEEP, capabilities={"add": ["SYS_PTRACE"]})})
    r = own_host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    init = own_host.status()["dbg"]["pid"]
    service = int(open(f"/proc/{init}/task/{init}/children").read().split()[0])
    assert_holds_no_more(status_of(open(f"/proc/{init}/status").read()),
                         status_of(open(f"/proc/{service}/status").read()), "on the host")
    hostids = ",".join(f"{st.st_dev}:{st.st_ino}" for st in map(os.stat, [
        "/", marker.dir, marker.tmp, berth.root]))
    bst = os.stat(berth.binary)
    r = berth.run("exec", "dbg", "--", "/bin/sh", "-c",
                  "/bin/probe status 1; /bin/probe ptrace 1; "
                  f"/bin/probe scan 0.3 {marker.rel} {hostids} {bst.st_dev}:{bst.st_ino}")
    assert r.returncode == 0, r.stderr
    assert_holds_no_more(status_of(r.stdout, "other "), status_of(r.stdout, "self "), "inside")
    assert kv(r.stdout)["ptrace"] == "ok", r.stdout   # control
    assert marker.token not in r.stdout
    assert not re.search(r"^(ESCAPE|HOSTDIR) ", r.stdout, re.M), r.stdout


def test_pid1_is_not_dumpable(berth, rootfs):
    """Attack: container root without SYS_PTRACE (the default set) attaches
    to pid 1 or opens its /proc/1/fd, cwd, root and exe. Promise: refused:
    pid 1 is non-dumpable (with its capabilities within the service's, shown
    above, nothing else refuses a same-uid tracer). Control: the same root
    attaches to a sibling process of its own and opens its cwd."""
    links = ("cwd", "root", "exe", "fd")
    script = "".join(
        f"echo @{who}; /bin/probe ptrace {pid}; for l in cwd root exe; do "
        f"readlink /proc/{pid}/$l >/dev/null 2>&1 && echo $l=ok || echo $l=refused; done; "
        f"r=refused; for f in /proc/{pid}/fd/*; do readlink $f >/dev/null 2>&1 && r=ok; done; "
        "echo fd=$r; "
        for who, pid in (("sibling", "$s"), ("init", "1")))
    r = berth.run("run", rootfs, "/bin/sh", "-c",
                  f"sleep 30 & s=$!; {script} kill $s; echo @status; /bin/probe status 1")
    assert r.returncode == 0, r.stderr
    got = {k: kv(v) for k, v in sections(r.stdout).items()}
    # the refusals below show non-dumpability only if nothing else refuses:
    # a pid 1 with capabilities beyond the tracer's is refused for those
    status = sections(r.stdout)["status"]
    init, svc = status_of(status, "other "), status_of(status, "self ")
    extra = int(init["CapPrm"], 16) & ~int(svc["CapPrm"], 16)
    assert not extra, f"pid 1 holds capabilities {extra:#x} beyond the service's: {status}"
    # controls: its own sibling is open to it
    assert got["sibling"] == dict(ptrace="ok", **{l: "ok" for l in links}), r.stdout
    assert got["init"] == dict(ptrace=got["init"]["ptrace"], **{l: "refused" for l in links}), \
        r.stdout
    assert got["init"]["ptrace"] in ("EPERM", "EACCES"), r.stdout


# --- 4b. berth's own binary (CVE-2019-5736) --------------------------------------------

def mapped_by(path):
    """The processes that map `path`, for a diagnostic."""
    who = []
    for d in os.listdir("/proc"):
        try:
            with open(f"/proc/{d}/maps") as f:
                if str(path) in f.read():
                    with open(f"/proc/{d}/cmdline", "rb") as c:
                        who.append(d + " " + c.read().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return who or "none"


def reopen_for_write(fd):
    """The attack's last step: open a held exe handle for writing."""
    try:
        os.close(os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_CLOEXEC))
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]


def test_a_handle_on_berths_binary_never_becomes_writable(own_host, rootfs, tmp_path):
    """Attack (CVE-2019-5736): what container root with SYS_PTRACE can do
    to the processes berth starts in its container: open /proc/PID/exe of
    the init of `berth run` and of a service (forks of berth), and of the
    keeper and `berth run` (the same binary), keep the handle until nothing
    runs berth any more (no ETXTBSY then), reopen it for writing. Done here
    from the host, with the same handles. Promise: they point into a
    read-only mount of the binary: EROFS, the binary unchanged. Control: the
    same steps on a copy of busybox run as a plain program do reopen it for
    writing once it has exited."""
    berth = own_host.berth
    before = sha256_file(berth.binary)
    own_host.write({"svc": own_host.svc(SLEEP)})
    r = own_host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    st = own_host.status()["svc"]
    # (berth run goes through its read-only mount only when the container
    # gets SYS_PTRACE, the one way to these exe links: test_pid1_is_not_dumpable)
    p = berth.popen("run", "--cap-add", "SYS_PTRACE", rootfs, "/bin/sh", "-c",
                    "echo ready; exec sleep 100000")
    assert p.stdout.readline() == "ready\n"
    inside = {in_ns_pid(d): d for d in descendants(p.pid)}
    victims = {"berth run": p.pid, "berth run's init": inside["1"],
               "the service's init": st["pid"], "the keeper": st["keeper_pid"]}
    handles = {who: os.open(f"/proc/{pid}/exe", os.O_PATH | os.O_CLOEXEC)
               for who, pid in victims.items()}
    victim = tmp_path / "sleep"  # busybox runs the applet its name says
    shutil.copy2("/bin/busybox", victim)
    v = subprocess.Popen([str(victim), "100000"])
    vfd = os.open(f"/proc/{v.pid}/exe", os.O_PATH | os.O_CLOEXEC)
    assert v.poll() is None and reopen_for_write(vfd) == "ETXTBSY"  # control: it runs
    try:
        # while they run, the kernel refuses writes to a running binary
        running = {who: reopen_for_write(fd) for who, fd in handles.items()}
        assert set(running.values()) <= {"ETXTBSY", "EROFS"}, running
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
        own_host.teardown()
        v.kill()
        v.wait()
        wait_for(lambda: not berth_processes(berth.binary), 30, "every berth process gone")
        # control: the attack works on a program. The kernel lets go of an
        # exited program's text when the last reference to its memory goes,
        # which can come well after the reap: in the systemd VM suite's 6.1
        # guest the copy stayed ETXTBSY for over 30 s with no process mapping
        # it. Then the file itself, opened by its path, is refused the same
        # way: the kernel's write denial, not the handle, and the handle must
        # be exactly as writable as the file.
        seen = []

        def program_writable():
            seen.append(reopen_for_write(vfd))
            return seen[-1] == "ok"

        try:
            wait_for(program_writable, 30, "the program's binary writable")
        except AssertionError as e:
            try:
                os.close(os.open(victim, os.O_WRONLY | os.O_CLOEXEC))
                by_path = "ok"
            except OSError as pe:
                by_path = errno.errorcode[pe.errno]
            assert seen[-1] == by_path == "ETXTBSY", \
                f"{e}: still {seen[-1]} (by path: {by_path}); mapped by {mapped_by(victim)}"
            print(f"control: the kernel still denies writes to the exited program ({by_path})")
        after = {who: reopen_for_write(fd) for who, fd in handles.items()}
        assert after == {who: "EROFS" for who in handles}, after
    finally:
        for fd in [*handles.values(), vfd]:
            os.close(fd)
        if p.poll() is None:
            p.kill()
        v.kill()
    assert sha256_file(berth.binary) == before


# --- 7. syscalls a default container must not make ----------------------------------

def syscalls(berth, rootfs, *opts):
    r = berth.run("run", *opts, rootfs, "/bin/probe", "syscalls")
    assert r.returncode == 0, r.stderr
    got = kv(r.stdout)
    assert len(got) == 7, r.stdout
    return got


DENIED = ("EPERM", "EACCES")


def test_default_container_cannot_unshare_keyctl_or_open_raw_sockets(berth, rootfs):
    """Attack: from a default container, root creates a user namespace
    (unshare(CLONE_NEWUSER)), touches the kernel keyrings (add_key,
    request_key, keyctl: the host's, as berth shares them) and opens raw
    AF_PACKET and AF_INET sockets on the host's network (sniffing and
    spoofing). Promise: each fails with EPERM/EACCES (Docker's seccomp
    profile; no NET_RAW in the default set). Controls: a TCP socket opens
    by default; `--cap-add NET_RAW` opens both raw sockets; `--seccomp
    unconfined` lets unshare and the keyring calls through."""
    got = syscalls(berth, rootfs)
    for k in ("unshare-user", "add_key", "request_key", "keyctl", "packet-raw", "inet-raw"):
        assert got[k] in DENIED, (k, got)
    assert got["inet-stream"] == "ok", got

    got = syscalls(berth, rootfs, "--cap-add", "NET_RAW")
    assert got["packet-raw"] == "ok" and got["inet-raw"] == "ok", got
    for k in ("unshare-user", "add_key", "keyctl"):
        assert got[k] in DENIED, (k, got)

    got = syscalls(berth, rootfs, "--seccomp", "unconfined")
    assert got["unshare-user"] == "ok" and got["add_key"] == "ok" and got["keyctl"] == "ok", got
    assert got["packet-raw"] in DENIED and got["inet-raw"] in DENIED, got   # still no NET_RAW


def test_service_default_is_confined_like_berth_run(host):
    """Attack: the same syscalls from a service (the keeper's path) and from
    `berth exec` into it. Promise: denied as in `berth run`. Control: a
    service with `seccomp: unconfined` and `capabilities: {add: [NET_RAW]}`
    makes them."""
    cmd = ["/bin/sh", "-c", "/bin/probe syscalls; exec sleep 100000"]
    host.write({"plain": host.svc(cmd),
                "open": host.svc(cmd, seccomp="unconfined", capabilities={"add": ["NET_RAW"]})})
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("plain", "open"):
        logs = wait_for(lambda: (lambda t: t if "inet-stream=" in t else None)(
            host.berth.run("logs", name).stdout), 10, f"{name}'s syscalls")
        r = host.berth.run("exec", name, "--", "/bin/probe", "syscalls")
        assert r.returncode == 0, r.stderr
        for got in (kv(logs), kv(r.stdout)):
            assert got["inet-stream"] == "ok", got
            for k in ("unshare-user", "add_key", "keyctl", "packet-raw", "inet-raw"):
                if name == "plain":
                    assert got[k] in DENIED, (name, k, got)
                else:
                    assert got[k] == "ok", (name, k, got)
