"""berth agent: continuous reconcile, restarts of the agent, rollback
(issue 6 acceptance)."""
import json
import os
import re
import shlex
import signal
import subprocess
import time

import pytest

from conftest import TOP, berth_processes, keeper_pids, wait_for
from test_apply import LOOP


class Agent:
    def __init__(self, host, tmp_path, *extra, argv=None):
        self.log_path = str(tmp_path / f"agent-{time.monotonic_ns()}.log")
        self.log = open(self.log_path, "w")
        cmd = argv or host.berth.cmd("agent", "-f", host.file, *extra)
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        self.host = host

    def text(self):
        return open(self.log_path).read()

    def wait_log(self, pattern, timeout=10):
        return wait_for(lambda: re.search(pattern, self.text()), timeout, f"agent log {pattern!r}")

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            self.p.wait(10)
        self.log.close()


@pytest.fixture
def agents(host, tmp_path):
    started = []

    def start(*extra, argv=None):
        a = Agent(host, tmp_path, *extra, argv=argv)
        started.append(a)
        return a
    yield start
    for a in started:
        a.stop(signal.SIGKILL)


def running(host, names):
    st = host.status()
    return all(n in st and st[n]["state"] == "running" and st[n]["pid"] for n in names)


def test_agent_restart_keeps_services_and_supervision(host, agents):
    host.write({n: host.svc(LOOP) for n in ("a", "b")})
    agent = agents("--resync", "30s")
    wait_for(lambda: running(host, ["a", "b"]), 10, "services up")
    before = host.status()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        agent.stop(sig)
        after = host.status()
        assert {n: (s["pid"], s["restarts"]) for n, s in after.items()} == \
            {n: (s["pid"], s["restarts"]) for n, s in before.items()}
        agent = agents("--resync", "30s")
        agent.wait_log("agent started")
        time.sleep(0.3)  # let the new agent's first reconcile run
        assert {n: s["pid"] for n, s in host.status().items()} == \
            {n: s["pid"] for n, s in before.items()}
    # a service killed afterwards is restarted (by its keeper)
    os.kill(before["a"]["pid"], signal.SIGKILL)
    wait_for(lambda: host.status()["a"]["pid"] not in (None, before["a"]["pid"]) and
             host.status()["a"]["state"] == "running", 10, "restart of a")
    assert host.status()["a"]["restarts"] == before["a"]["restarts"] + 1
    # ROOT/status.json, the Puppet fact's source, follows without a resync
    summary = os.path.join(host.berth.root, "status.json")
    wait_for(lambda: {s["name"]: s["restarts"] for s in json.load(open(summary))["services"]}
             .get("a") == before["a"]["restarts"] + 1, 2, "status.json updated")
    # a keeper killed (its container runs on): the agent adopts it at once
    agent.stop()
    agent = agents("--resync", "1s")
    agent.wait_log("agent started")
    keeper = host.status()["b"]["keeper_pid"]
    os.kill(keeper, signal.SIGKILL)
    wait_for(lambda: host.status()["b"]["state"] == "running" and
             host.status()["b"]["keeper_pid"] not in (None, keeper), 10, "agent restarts b")
    assert host.status()["b"]["pid"] == before["b"]["pid"]  # the same container


def test_edits_in_place_and_by_rename_apply_within_2s(host, agents, tmp_path):
    svcs = {"web": host.svc(LOOP, env={"V": "1"})}
    host.write(svcs)
    agent = agents()
    wait_for(lambda: running(host, ["web"]), 10)
    for i, how in enumerate(("in-place", "rename", "in-place")):
        old = host.status()["web"]["pid"]
        svcs["web"]["env"]["V"] = f"{i + 2}"
        t0 = time.monotonic()
        if how == "rename":
            tmp = host.file + ".tmp"
            with open(tmp, "w") as f:
                from conftest import services_yaml
                f.write(services_yaml(svcs))
            os.rename(tmp, host.file)
        else:
            host.write(svcs)
        wait_for(lambda: host.status()["web"]["pid"] not in (None, old) and
                 host.status()["web"]["state"] == "running", 2, f"{how} edit applied")
        assert time.monotonic() - t0 < 2
    assert host.diff().returncode == 0

    # an invalid edit changes nothing, is logged with file:line:column, and
    # `berth status` shows it; the next valid edit applies
    pid = host.status()["web"]["pid"]
    with open(host.file, "a") as f:
        f.write("  broken: {image: 12}\n")
    m = agent.wait_log(re.escape(host.file) + r":\d+:\d+: ")
    assert "broken" in agent.text()
    out = host.berth.run("status").stdout
    assert out.startswith("WARNING: '") and "is invalid since" in out
    js = json.loads(host.berth.run("status", "--json").stdout)
    assert js["agent"]["file_valid"] is False and js["agent"]["invalid_since"] > 0
    assert host.status()["web"]["pid"] == pid
    svcs["web"]["env"]["V"] = "valid-again"
    host.write(svcs)
    wait_for(lambda: host.status()["web"]["pid"] not in (None, pid), 3, "valid edit applied")
    js = json.loads(host.berth.run("status", "--json").stdout)
    assert js["agent"]["file_valid"] is True

    # deleted: nothing happens; created again: applied
    pid = host.status()["web"]["pid"]
    os.unlink(host.file)
    agent.wait_log(r"is invalid")
    assert host.status()["web"]["pid"] == pid
    svcs["web"]["env"]["V"] = "recreated"
    host.write(svcs)
    wait_for(lambda: host.status()["web"]["pid"] not in (None, pid), 3, "re-created file applied")


def test_sighup_forces_a_reconcile(host, agents):
    host.write({"web": host.svc(LOOP)})
    agent = agents()
    wait_for(lambda: running(host, ["web"]), 10)
    host.berth.run("stop", "web")
    assert host.status()["web"]["state"] == "stopped"
    agent.p.send_signal(signal.SIGHUP)
    wait_for(lambda: running(host, ["web"]), 5, "SIGHUP reconcile")


def test_a_resync_with_the_file_invalid_keeps_the_last_valid_state(host, agents):
    """Each converge parses the file in a child; the agent keeps the last
    valid file's bytes, so a resync while the file is invalid still repairs
    drift with them."""
    host.write({"web": host.svc(LOOP)})
    agent = agents("--resync", "300ms")
    wait_for(lambda: running(host, ["web"]), 10)
    with open(host.file, "a") as f:
        f.write("  broken: {image: 12}\n")
    agent.wait_log(r"is invalid")
    host.berth.run("stop", "web")
    wait_for(lambda: running(host, ["web"]), 10, "web started again by a resync")
    js = json.loads(host.berth.run("status", "--json").stdout)
    assert js["agent"]["file_valid"] is False and "broken" in js["agent"]["errors"][0]


def test_an_agent_killed_in_mid_converge_frees_its_lock_at_once(host, agents):
    """The converge runs in a child that closes the agent's lock: a
    successor starts while the killed agent's converge (here a fetch from a
    server that never answers) goes on, and waits for it on the root's lock."""
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; nothing answers
    try:
        svc = host.svc(LOOP)
        svc["image"] = {"url": f"http://127.0.0.1:{silent.getsockname()[1]}/img.tar",
                        "digest": "sha256:" + "a" * 64}
        host.write({"web": svc})
        first = agents()
        first.wait_log(r"agent started")
        time.sleep(1)  # its converge child is in the fetch
        first.p.send_signal(signal.SIGKILL)
        first.p.wait(10)
        second = agents()
        second.wait_log(r"agent started")
        time.sleep(0.5)
        assert second.p.poll() is None, second.text()
    finally:
        silent.close()
        # the killed agent's converge, still fetching, and the one waiting
        # for it on the root's lock (which may fork its own fetch meanwhile)
        # (their fetch and unpack children too): every process of this
        # berth under this root, until none has been seen for a second, so
        # that no fetch lives on into later tests that count berth processes
        quiet = 0
        for _ in range(200):
            left = []
            for pid in berth_processes(host.berth.binary):
                try:
                    argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                except OSError:
                    continue
                if host.berth.root.encode() in argv:
                    left.append(pid)
            quiet = 0 if left else quiet + 1
            if quiet >= 10:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)


def test_crashing_release_is_rolled_back_and_not_retried(host, agents):
    svcs = {"web": host.svc(LOOP, env={"V": "good"})}
    host.write(svcs)
    agent = agents("--settle", "3s", "--resync", "500ms")
    wait_for(lambda: running(host, ["web"]), 10)
    svcs["web"]["command"] = ["/bin/sh", "-c", "echo bad release; exit 1"]
    svcs["web"]["env"]["V"] = "bad"
    host.write(svcs)
    agent.wait_log(r"'web' rolled back", 15)
    st = wait_for(lambda: (lambda s: s if s["web"]["state"] == "rolled-back" else None)(host.status()), 5)
    pid = st["web"]["pid"]
    env = open(f"/proc/{pid}/task/{pid}/children").read().split()
    assert "V=good" in open(f"/proc/{env[0]}/environ").read().split("\0")
    # what it refused, for the Puppet fact: the bad spec's hash and its image
    rejected = st["web"]["rejected"]
    assert re.fullmatch(r"[0-9a-f]{64}", rejected["spec_hash"]), rejected
    assert rejected["spec_hash"] != st["web"]["spec_hash"]
    assert rejected["image"] == host.image["digest"], rejected
    plan = json.loads(host.diff("--json").stdout)
    assert plan["changes"][0]["action"] == "unchanged" and plan["changes"][0]["rolled_back"]
    # several resyncs later it has not been tried again
    n = agent.text().count("converging")
    agent.wait_log(r"(?s)rolled back.*", 1)
    time.sleep(1.5)
    assert host.status()["web"]["pid"] == pid
    assert agent.text().count("'web': replace") == 1
    # the file changes: tried again
    svcs["web"]["command"] = LOOP
    svcs["web"]["env"]["V"] = "fixed"
    host.write(svcs)
    wait_for(lambda: host.status()["web"]["state"] == "running" and
             host.status()["web"]["pid"] != pid, 5, "new release")
    assert host.status()["web"]["rejected"] is None


def unit_exec_start():
    unit = open(os.path.join(TOP, "packaging", "berth-agent.service.in")).read()
    assert re.search(r"^KillMode=process$", unit, re.M)
    line = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    return shlex.split(line)


def test_agent_under_a_supervisor_with_the_units_command_line(host, agents, berth_bin):
    argv = unit_exec_start()
    assert argv[0] == "@BERTH_BINDIR@/berth" and argv[1] == "agent"
    # the unit's command line with this test's binary, file and root
    subst = {"@BERTH_BINDIR@/berth": berth_bin, "@BERTH_CONFIG@": host.file,
             "@BERTH_ROOT@": host.berth.root}
    argv = [subst.get(a, a) for a in argv]
    assert "--config" in argv and "--root" in argv
    host.write({n: host.svc(LOOP) for n in ("x", "y")})
    agent = agents(argv=argv)
    wait_for(lambda: running(host, ["x", "y"]), 10)
    before = host.status()
    # KillMode=process: the supervisor signals the main process only
    agent.stop(signal.SIGTERM)
    assert agent.p.returncode == 0
    assert "services keep running" in agent.text()
    after = host.status()
    assert all(after[n]["state"] == "running" and after[n]["pid"] == before[n]["pid"]
               for n in ("x", "y"))
    assert len(keeper_pids(host.berth.root)) == 2


HEALTHY = ["/bin/sh", "-c", "touch /tmp/ok; exec sleep 100000"]
CHECK = {"command": ["/bin/test", "-f", "/tmp/ok"], "interval": "200ms", "timeout": "1s",
         "retries": 2}


def health(host, name):
    st = host.status()
    return st[name]["health"] if name in st else None


def test_health_checks_run_inside_and_are_reported(host):
    flaky = ["/bin/sh", "-c", "touch /tmp/ok; sleep 1; rm /tmp/ok; exec sleep 100000"]
    host.write({
        "good": host.svc(HEALTHY, healthcheck=CHECK),
        "turns-bad": host.svc(flaky, healthcheck=CHECK),
        "restarts": host.svc(["/bin/sh", "-c", "exec sleep 100000"],
                             healthcheck=dict(CHECK, restart_on_unhealthy=True),
                             backoff={"initial": "100ms"}),
        "plain": host.svc(LOOP),
    })
    assert host.apply().returncode == 0
    assert health(host, "plain") == "none"
    wait_for(lambda: health(host, "good") == "healthy", 5, "good healthy")
    wait_for(lambda: health(host, "turns-bad") == "healthy", 5, "turns-bad healthy")
    wait_for(lambda: health(host, "turns-bad") == "unhealthy", 5, "turns-bad unhealthy")
    assert host.status()["turns-bad"]["state"] == "running"   # reported, not restarted
    assert "unhealthy" in host.berth.run("logs", "turns-bad").stdout
    ps = host.berth.run("ps").stdout.splitlines()
    col = ps[0].split().index("HEALTH")
    assert [l for l in ps if l.startswith("good ")][0].split()[col] == "healthy"
    wait_for(lambda: host.status()["restarts"]["restarts"] >= 2, 10, "restart on unhealthy")
    assert "restarting 'restarts' because it is unhealthy" in host.berth.run("logs", "restarts").stdout
    prom = host.berth.run("status", "--format", "prometheus").stdout
    assert 'berth_service_healthy{service="good"} 1' in prom
    assert 'berth_service_healthy{service="turns-bad"} 0' in prom
    assert 'berth_service_healthy{service="plain"} -1' in prom
    # stable series (issue 11): the state and the image are labels of series of their own
    assert 'berth_service_up{service="good"} 1' in prom
    assert 'berth_service_state{service="good",state="running"} 1' in prom
    assert 'berth_service_info{service="good",image="%s"} 1' % host.image["digest"] in prom


def test_unhealthy_release_is_rolled_back(host, agents):
    svcs = {"api": host.svc(HEALTHY, healthcheck=CHECK, env={"V": "good"})}
    host.write(svcs)
    agent = agents("--health-settle", "5s")
    wait_for(lambda: health(host, "api") == "healthy", 10)
    svcs["api"]["command"] = ["/bin/sh", "-c", "exec sleep 100000"]  # never healthy
    svcs["api"]["env"]["V"] = "bad"
    host.write(svcs)
    agent.wait_log(r"'api' turned unhealthy after its replacement: rolling back", 15)
    agent.wait_log(r"'api' rolled back", 10)
    wait_for(lambda: host.status()["api"]["state"] == "rolled-back" and
             health(host, "api") == "healthy", 10, "previous version healthy")
    plan = json.loads(host.diff("--json").stdout)
    assert plan["changes"][0]["rolled_back"] is True
