"""Keepers are replaceable (issue 17): a keeper killed at any instant costs
its service nothing; a new keeper adopts the container that runs on, its
output keeps flowing into the log, and its exit is still recorded."""
import fcntl
import glob
import json
import os
import random
import re
import signal
import subprocess
import time

import pytest

from conftest import wait_for
from test_agent import Agent

COUNT = ["/bin/probe", "count", "1000"]  # "seq N" every millisecond
SEQ = re.compile(r"^seq (\d+)$")


def keeper_of(root, name):
    """The pid of the keeper holding the service's lock, None when none
    does (what berth_record_keeper_alive() tells)."""
    path = os.path.join(root, "services", name, "keeper.lock")
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode().strip()
            return int(text) if text else None
    finally:
        os.close(fd)


def service_pid(init):
    """The service: the init's only child."""
    kids = open(f"/proc/{init}/task/{init}/children").read().split()
    assert len(kids) == 1, kids
    return int(kids[0])


def log_lines(root, name):
    """Every line of the service's log, oldest file first."""
    d = os.path.join(root, "services", name, "log")
    files = sorted(glob.glob(os.path.join(d, "current.*")),
                   key=lambda p: -int(p.rsplit(".", 1)[1]))
    files.append(os.path.join(d, "current"))
    out = []
    for f in files:
        with open(f, errors="replace") as fh:
            out += fh.read().split("\n")
    return out


def dead(pid):
    """Gone, or a zombie nobody has reaped yet (an adopted init is no
    child of its keeper: whatever reaps orphans on the host does)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(") ", 1)[1][0] in "ZX"
    except OSError:
        return True


def seq_numbers(lines):
    return [int(m.group(1)) for m in map(SEQ.match, lines) if m]


def gaps_and_dups(nums):
    lost = dups = 0
    for a, b in zip(nums, nums[1:]):
        if b == a + 1:
            continue
        if b <= a:
            dups += a - b + 1
        else:
            lost += b - a - 1
    return lost, dups


def in_charge(host, name, old):
    """A keeper other than `old` holds the lock and has written the status
    (it answers for the service)."""
    k = keeper_of(host.berth.root, name)
    if not k or k == old:
        return None
    path = os.path.join(host.berth.root, "services", name, "status.json")
    try:
        st = json.load(open(path))
    except (OSError, ValueError):
        return None
    return k if st.get("keeper_pid") == k and st.get("state") == "running" else None


def test_sigkilled_keepers_under_load_lose_nothing(host, tmp_path):
    """SIGKILL the keeper at random moments while the service writes a line
    every millisecond; the agent (resync 1 h: not its timer) brings a
    successor at once. The service never restarts (same pids), no line is
    lost or doubled, and each successor is in charge within 1 s."""
    host.write({"w": host.svc(COUNT)})
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    root = host.berth.root
    init = host.status()["w"]["pid"]
    svc = service_pid(init)
    agent = Agent(host, tmp_path, "--resync", "1h")
    try:
        agent.wait_log("agent started")
        rng = random.Random(17)
        takeovers, keepers = [], [keeper_of(root, "w")]
        for _ in range(8):
            time.sleep(rng.uniform(0.05, 0.4))
            old = keepers[-1]
            before = len(seq_numbers(log_lines(root, "w")))
            t0 = time.monotonic()
            os.kill(old, signal.SIGKILL)
            new = wait_for(lambda: in_charge(host, "w", old), 5, "a successor keeper")
            takeovers.append(time.monotonic() - t0)
            keepers.append(new)
            # control: the output goes on into the log under the new keeper
            wait_for(lambda: len(seq_numbers(log_lines(root, "w"))) > before + 20, 5,
                     "output after the hand-over")
        time.sleep(0.2)
    finally:
        agent.stop()
    st = host.status()["w"]
    assert st["state"] == "running" and st["pid"] == init, st
    assert service_pid(init) == svc  # the service never restarted
    assert st["restarts"] == 0, st
    assert len(set(keepers)) == len(keepers), keepers  # each kill got a new keeper
    assert max(takeovers) < 1.0, takeovers
    nums = seq_numbers(log_lines(root, "w"))
    assert nums and nums[0] == 0, nums[:5]
    lost, dups = gaps_and_dups(nums)
    assert (lost, dups) == (0, 0), (lost, dups, len(nums))
    assert len(nums) > 1000  # control: seconds of output under load
    text = "\n".join(log_lines(root, "w"))
    assert text.count("adopted 'w'") == 8, text[-2000:]
    # the agent noticed each death at once and said so
    assert len(re.findall(r"keeper of 'w' .* died", agent.text())) == 8, agent.text()


def test_without_an_agent_ps_and_apply_report_and_adopt(host):
    """No agent: `ps` and `status --json` say the keeper is gone while the
    container runs on; `apply` adopts it (same pid); restart and stop work
    on an adopted service as on any."""
    host.write({"w": host.svc(COUNT)})
    assert host.apply().returncode == 0
    root = host.berth.root
    init = host.status()["w"]["pid"]
    svc = service_pid(init)
    old = keeper_of(root, "w")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: keeper_of(root, "w") is None, 5, "the lock to be free")
    st = host.status()["w"]
    assert st["keeper_gone"] is True and st["pid"] == init and st["state"] == "running", st
    ps = host.berth.run("ps")
    assert "the keeper of 'w' is gone" in ps.stdout and f"pid {init}" in ps.stdout, ps.stdout
    assert os.path.exists(f"/proc/{svc}")  # the service runs on meanwhile
    d = host.diff("--json")
    assert d.returncode == 2, d.stdout
    assert json.loads(d.stdout)["summary"]["start"] == 1
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"w +adopted \(its keeper was gone", r.stdout), r.stdout
    st = host.status()["w"]
    assert st["keeper_gone"] is False and st["pid"] == init and st["keeper_pid"] not in (None, old)
    assert service_pid(init) == svc
    assert "is gone" not in host.berth.run("ps").stdout
    assert host.diff().returncode == 0

    # restart on the adopted service: a new container, counted
    r = host.berth.run("restart", "w")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: host.status()["w"]["pid"] not in (None, init) and
             host.status()["w"]["state"] == "running", 10, "the restart")
    st = host.status()["w"]
    assert (st["restarts"], st["manual_restarts"]) == (0, 1), st  # asked for, not a crash
    assert dead(svc)
    init2 = host.status()["w"]["pid"]

    # stop with no keeper at all: a keeper adopts it to stop it properly
    os.kill(keeper_of(root, "w"), signal.SIGKILL)
    wait_for(lambda: keeper_of(root, "w") is None, 5, "the lock to be free")
    r = host.berth.run("stop", "w")
    assert r.returncode == 0, r.stderr
    st = host.status()["w"]
    assert st["state"] == "stopped" and not st["pid"], st
    assert st["last_exit"]["code"] == 128 + signal.SIGTERM, st
    assert dead(init2)
    assert keeper_of(root, "w") is None
    assert not os.path.exists(os.path.join(root, "services", "w", "init.json"))


WAIT_THEN_EXIT = ["/bin/sh", "-c",
                  "echo waiting; while [ ! -e /tmp/go ]; do usleep 20000; done; echo bye; exit 42"]


@pytest.mark.parametrize("keeper_during_exit", [True, False])
def test_exit_status_after_a_handover(host, keeper_during_exit):
    """A service that exits after its keeper was replaced has its code
    recorded: whether the successor runs at the exit, or comes later (the
    init keeps the report until a keeper takes it)."""
    host.write({"x": host.svc(WAIT_THEN_EXIT, restart="never")})
    assert host.apply().returncode == 0
    root = host.berth.root
    init = host.status()["x"]["pid"]
    old = keeper_of(root, "x")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: keeper_of(root, "x") is None, 5, "the lock to be free")
    if keeper_during_exit:
        assert host.apply().returncode == 0
        assert host.status()["x"]["pid"] == init
    r = host.berth.run("exec", "x", "--", "/bin/touch", "/tmp/go")
    assert r.returncode == 0, r.stderr
    if not keeper_during_exit:
        # the service is gone; its init waits with the report for a keeper
        wait_for(lambda: not os.path.exists(f"/proc/{init}/task/{init}/children") or
                 not open(f"/proc/{init}/task/{init}/children").read().split(), 5,
                 "the service to exit")
        assert os.path.exists(f"/proc/{init}")
        assert host.apply().returncode == 0
    wait_for(lambda: host.status()["x"]["state"] == "stopped", 10, "the exit")
    st = host.status()["x"]
    assert st["last_exit"]["code"] == 42, st
    assert st["restarts"] == 0
    wait_for(lambda: dead(init), 5, "the init to exit")
    text = "\n".join(log_lines(root, "x"))
    assert "waiting" in text and "bye" in text, text
    assert "exited with code 42" in text, text


def test_a_dead_keeper_and_container_are_started_again(host):
    """Control: when the container died with its keeper (its init killed
    too), ps says so and apply starts a new one."""
    host.write({"w": host.svc(COUNT)})
    assert host.apply().returncode == 0
    root = host.berth.root
    init = host.status()["w"]["pid"]
    os.kill(keeper_of(root, "w"), signal.SIGKILL)
    os.kill(init, signal.SIGKILL)
    wait_for(lambda: keeper_of(root, "w") is None and dead(init), 5, "both gone")
    wait_for(lambda: host.status()["w"]["state"] == "failed", 5, "the record to say failed")
    assert host.status()["w"]["keeper_gone"] is True
    assert "and its container with it" in host.berth.run("ps").stdout
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"w +started", r.stdout), r.stdout  # not adopted: started afresh
    st = host.status()["w"]
    assert st["state"] == "running" and st["pid"] not in (None, init), st


def test_health_checks_and_crash_restarts_go_on_after_a_handover(host):
    """The successor runs the health checks in the adopted container (a
    check that turns to failing is seen) and restarts the service when it
    crashes, as the keeper that started it would."""
    check = {"command": ["/bin/sh", "-c", "test ! -e /tmp/sick"], "interval": "200ms",
             "timeout": "1s", "retries": 2}
    host.write({"h": host.svc(["/bin/sleep", "100000"], healthcheck=check)})
    assert host.apply().returncode == 0
    root = host.berth.root
    wait_for(lambda: host.status()["h"]["health"] == "healthy", 10, "healthy")
    init = host.status()["h"]["pid"]
    os.kill(keeper_of(root, "h"), signal.SIGKILL)
    wait_for(lambda: keeper_of(root, "h") is None, 5, "the lock to be free")
    assert host.apply().returncode == 0
    st = host.status()["h"]
    assert st["pid"] == init and st["health"] == "healthy", st
    r = host.berth.run("exec", "h", "--", "/bin/touch", "/tmp/sick")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: host.status()["h"]["health"] == "unhealthy", 10, "unhealthy")
    # a crash of the adopted service: the successor restarts it (restart: always)
    os.kill(service_pid(init), signal.SIGKILL)
    wait_for(lambda: host.status()["h"]["pid"] not in (None, init) and
             host.status()["h"]["state"] == "running", 15, "the restart")
    st = host.status()["h"]
    assert st["restarts"] == 1 and st["last_exit"]["code"] == 128 + signal.SIGKILL, st
    # the writable layer outlives restarts: the new instance is sick too, until cured
    assert host.berth.run("exec", "h", "--", "/bin/rm", "/tmp/sick").returncode == 0
    wait_for(lambda: host.status()["h"]["health"] == "healthy", 10, "healthy again")
