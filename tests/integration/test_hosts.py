"""The hosts users have (issue 10), as far as this machine shows it: set-up
failures that say why and leave nothing, the kernel floor named, cgroups
that belong to berth and not to the caller, a cgroup namespace per
container, the agent's readiness and journald priorities, stopping every
service at shutdown. The same on Debian's own kernels with cgroup v2 and
under systemd: tests/vm/."""
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import TOP, empty_berth_cgroups, keeper_pids, mountinfo, root_cgroups, wait_for
from test_agent import Agent, running
from test_apply import LOOP
from test_run_lifecycle import assert_one_line_failure

V2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def cgroups_of(pid):
    """{controller: path} from /proc/PID/cgroup ("" for the unified one)."""
    out = {}
    for line in open(f"/proc/{pid}/cgroup").read().splitlines():
        _, ctls, path = line.split(":", 2)
        for c in ctls.split(","):
            out[c] = path
    return out


def our_controllers():
    return [""] if V2 else ["memory", "pids"]


def cgroup_dir(ctl, path):
    return f"/sys/fs/cgroup{path}" if ctl == "" else f"/sys/fs/cgroup/{ctl}{path}"


@pytest.fixture(scope="session")
def enosys(tmp_path_factory):
    out = tmp_path_factory.mktemp("enosys") / "enosys"
    subprocess.run(["gcc", "-O2", "-o", str(out), os.path.join(TOP, "tests", "probe", "enosys.c"),
                    "-lseccomp"], check=True)
    return str(out)


# --- set-up failures --------------------------------------------------------

def test_setup_failure_says_why_and_leaves_nothing(berth, rootfs):
    """The container dies in its set-up before berth has told it to go on:
    berth must report the container's own reason, exit 1 (not 141 from
    SIGPIPE) and leave no cgroup, mount or run directory; every time."""
    mounts = mountinfo()
    for _ in range(5):
        r = berth.run("run", "--memory", "32M", "-v", "/nonexistent:/x", rootfs, "--", "true")
        assert_one_line_failure(berth, r, "'/nonexistent'", "No such file or directory")
        assert mountinfo() == mounts


def test_keeper_records_the_real_setup_error(host):
    host.write({"web": host.svc(LOOP, mounts=[{"source": "/nonexistent/data", "target": "/data"}])})
    r = host.apply()
    assert r.returncode == 1
    assert "'/nonexistent/data'" in r.stdout and "No such file or directory" in r.stdout, r.stdout
    assert "Broken pipe" not in r.stdout + r.stderr
    st = host.status()["web"]
    assert "'/nonexistent/data'" in st["start_error"], st
    log = open(os.path.join(host.berth.root, "services", "web", "log", "current")).read()
    assert "'/nonexistent/data': No such file or directory" in log and "Broken pipe" not in log


# --- the kernel floor -----------------------------------------------------------

@pytest.mark.parametrize("syscall", ["mount_setattr", "clone3", "openat2"])
def test_a_missing_syscall_is_named_with_the_kernel(berth, rootfs, enosys, syscall):
    """As on a kernel before the call existed (seccomp makes it ENOSYS):
    one error naming the floor, the call and the running kernel."""
    r = subprocess.run([enosys, syscall, *berth.cmd("run", rootfs, "--", "true")],
                       capture_output=True, text=True, timeout=60)
    release = os.uname().release
    assert_one_line_failure(berth, r, f"berth needs Linux >= 5.12 for {syscall} (",
                            f"this is {release}")


def test_the_floor_passes_here(berth, rootfs):
    r = berth.run("run", rootfs, "--", "true")
    assert r.returncode == 0, r.stderr


# --- cgroups of berth's own -----------------------------------------------------

def test_run_has_a_cgroup_namespace(berth, rootfs):
    for extra in ([], ["--memory", "64M"]):
        r = berth.run("run", *extra, rootfs, "--", "cat", "/proc/self/cgroup")
        assert r.returncode == 0, r.stderr
        paths = {line.split(":", 2)[2] for line in r.stdout.split()}
        assert paths == {"/"}, r.stdout


def test_every_service_has_its_cgroup_and_the_keeper_leaves_the_callers(host, tmp_path):
    """`berth apply` run from some unit (here: a cgroup of the test's), then
    that unit stopped the way systemd stops one (every process of its
    cgroup killed): the services started from it go on, each in a cgroup of
    its own, limits or not."""
    caller = f"/berth-test-caller-{os.getpid()}"
    dirs = [cgroup_dir(c, caller) for c in our_controllers()]
    for d in dirs:
        os.mkdir(d)
    try:
        host.write({"plain": host.svc(LOOP), "capped": host.svc(LOOP, limits={"memory": "64M"})})
        joins = "; ".join(f"echo $$ > {d}/cgroup.procs" for d in dirs)
        cmd = " ".join(host.berth.cmd("apply", "-f", host.file))
        r = subprocess.run(["sh", "-c", f"{joins}; exec {cmd}"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        st = host.status()
        for name in ("plain", "capped"):
            keeper, init = cgroups_of(st[name]["keeper_pid"]), cgroups_of(st[name]["pid"])
            for ctl in our_controllers():
                assert keeper[ctl].startswith(f"/berth/{name}@") and keeper[ctl].endswith("/keeper")
                assert init[ctl] == keeper[ctl][:-len("keeper")] + "container", (keeper, init)
        # "systemctl stop" of the caller's unit
        for d in dirs:
            for pid in open(f"{d}/cgroup.procs").read().split():
                os.kill(int(pid), signal.SIGKILL)
        assert host.status() == st
        assert all(os.path.exists(f"/proc/{s['pid']}") for s in st.values())
        assert empty_berth_cgroups(host.berth.root) == []
    finally:
        host.teardown()
        for d in dirs:
            wait_for(lambda: not open(f"{d}/cgroup.procs").read().strip(), 10, f"{d} empty")
            os.rmdir(d)
    assert root_cgroups(host.berth.root) == []


def test_services_open_file_limit_is_their_own(host):
    """Not the 1024 of whoever ran `berth apply`: berth's default (1048576,
    or the host's hard limit if lower), soft and hard alike; the file's
    `nofile` where it says one."""
    host.write({"dflt": host.svc(LOOP), "set": host.svc(LOOP, limits={"nofile": 4096})})
    cmd = " ".join(host.berth.cmd("apply", "-f", host.file))
    r = subprocess.run(["sh", "-c", f"ulimit -Sn 512; exec {cmd}"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    st = host.status()

    def nofile(pid):
        line = next(x for x in open(f"/proc/{pid}/limits") if x.startswith("Max open files"))
        return [int(v) for v in line.split()[3:5]]
    hard = nofile(os.getpid())[1]
    want = 1048576 if hard >= 1048576 or os.geteuid() == 0 and nofile(1)[1] >= 1048576 else None
    def service(init):  # the service process: the only child of berth's init
        return int(open(f"/proc/{init}/task/{init}/children").read().split()[0])
    got = nofile(service(st["dflt"]["pid"]))
    assert got[0] == got[1] and got[0] >= hard and got[0] != 512, got
    if want:
        assert got == [want, want]
    assert nofile(service(st["set"]["pid"])) == [4096, 4096]


# --- stopping everything at shutdown --------------------------------------------

def test_stop_all_stops_every_service_at_once_with_its_signal(host):
    """berth-shutdown.service's ExecStop: each service gets its own stop
    signal and timeout, all at once, and the command waits for all."""
    trap = ["/bin/sh", "-c", "trap 'echo got-$SIG > /marks/$SVC; exit 0' $SIG; "
            "while :; do sleep 1; done"]
    marks = os.path.join(host.berth.root, "..", "marks")
    os.makedirs(marks)
    ignore = ["/bin/sh", "-c", "trap '' TERM; exec sleep 100000"]
    svcs = {
        "a": host.svc(trap, env={"SIG": "TERM", "SVC": "a"},
                      mounts=[{"source": marks, "target": "/marks"}]),
        "b": host.svc(trap, env={"SIG": "QUIT", "SVC": "b"}, stop_signal="SIGQUIT",
                      mounts=[{"source": marks, "target": "/marks"}]),
        "slow1": host.svc(ignore, stop_timeout="2s"),
        "slow2": host.svc(ignore, stop_timeout="2s"),
    }
    host.write(svcs)
    assert host.apply().returncode == 0
    t0 = time.monotonic()
    r = host.berth.run("stop", "--all")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n")[:-1]) == sorted(f"stopped '{n}'" for n in svcs)
    assert keeper_pids(host.berth.root) == []
    assert open(os.path.join(marks, "a")).read().strip() == "got-TERM"
    assert open(os.path.join(marks, "b")).read().strip() == "got-QUIT"
    # two services that each take their 2 s timeout, stopped side by side
    assert took < 3.5, took
    assert all(s["state"] == "stopped" for s in host.status().values())
    # and the next apply starts them again
    assert host.apply().returncode == 0
    assert running(host, list(svcs))


# --- the agent under systemd ------------------------------------------------------

def test_agent_says_ready_once_it_has_converged(host, tmp_path):
    """Type=notify: READY=1 on $NOTIFY_SOCKET after the first reconcile,
    with a STATUS= line; STOPPING=1 when it stops."""
    addr = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(30)
    host.write({"a": host.svc(LOOP), "b": host.svc(LOOP)})
    log = open(tmp_path / "agent.log", "w")
    p = subprocess.Popen(host.berth.cmd("agent", "-f", host.file), stdout=log, stderr=log,
                         env={**os.environ, "NOTIFY_SOCKET": addr})
    try:
        got = []
        while not any("READY=1" in m for m in got):
            got.append(sock.recv(4096).decode())
        # ready means converged: both services run by then
        st = host.status()
        assert all(st[n]["state"] == "running" for n in ("a", "b")), st
        assert any(m.startswith("STATUS=in sync with") for m in got), got
        # the datagram is written by berth itself: libsystemd (and the
        # compression and crypto libraries it loads) stays out of the agent
        assert "libsystemd" not in open(f"/proc/{p.pid}/maps").read()
        p.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in sock.recv(4096).decode()
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
        sock.close()
        log.close()


def test_agent_logs_journald_priorities_when_stderr_is_the_journal(host, tmp_path):
    """systemd sets JOURNAL_STREAM to stderr's device:inode; the agent then
    prefixes each line with its syslog priority ("<3>" for errors)."""
    host.write({"a": host.svc(LOOP)})
    path = tmp_path / "journal"
    with open(path, "w") as out:
        st = os.fstat(out.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        p = subprocess.Popen(host.berth.cmd("-v", "agent", "-f", host.file), stdout=out,
                             stderr=out, env=env)
    try:
        wait_for(lambda: running(host, ["a"]), 20, "a running")
        with open(host.file, "w") as f:
            f.write("version: 1\nservices: {a: {image: 3}}\n")
        wait_for(lambda: "<3>error:" in path.read_text(), 20, "an error line")
        lines = path.read_text().splitlines()
        assert lines and all(line[:3] in ("<3>", "<4>", "<6>", "<7>") for line in lines), lines
        assert any(line.startswith("<6>info: agent started") for line in lines), lines
    finally:
        p.kill()
        p.wait()
    # a stderr that is not the journal keeps the plain format
    other = tmp_path / "plain"
    with open(other, "w") as out:
        p = subprocess.Popen(host.berth.cmd("-v", "agent", "-f", host.file), stdout=out,
                             stderr=out, env=env)
    try:
        wait_for(lambda: "error:" in other.read_text(), 20, "the error line")
        assert other.read_text().startswith("berth["), other.read_text()
    finally:
        p.kill()
        p.wait()
