"""Resource figures (issue 11): `berth stats` from each service's cgroup,
and the Prometheus metrics with the same figures, stable series, the
agent's converges, the textfile that promtool checks and node_exporter's
textfile collector serves."""
import json
import os
import pty
import re
import select
import shlex
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import TOP, services_yaml, wait_for
from imagekit import need
from test_agent import agents  # noqa: F401 (fixture)
from test_apply import LOOP

MiB = 1 << 20
# 20 MiB in the container's /dev/shm (a tmpfs: charged to its memory cgroup)
MEM = ["/bin/sh", "-c", "head -c 20971520 /dev/zero > /dev/shm/fill; exec sleep 100000"]
CPU = ["/bin/sh", "-c", "while :; do :; done"]
# the init, sleep (exec'ed by sh) and four more: 6 tasks
PIDS = ["/bin/sh", "-c", "for i in 1 2 3 4; do sleep 100000 & done; exec sleep 100000"]
# dd's 64 MiB buffer in a 16 MiB cgroup: the OOM killer kills dd, sh goes on
OOM = ["/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; exec sleep 100000"]

FIELDS = ["name", "state", "running", "memory_bytes", "memory_peak_bytes", "memory_limit_bytes",
          "cpu_seconds", "cpu_percent", "pids", "pids_limit", "oom_kills", "restarts",
          "manual_restarts", "uptime_seconds"]


def stats(host, *args):
    r = host.berth.run("stats", "--no-stream", "--json", *args)
    assert r.returncode == 0, r.stderr
    services = json.loads(r.stdout)["services"]
    for s in services:
        assert list(s) == FIELDS, s  # stable and documented in --help
    return {s["name"]: s for s in services}


def prometheus(host):
    r = host.berth.run("status", "--format", "prometheus")
    assert r.returncode == 0, r.stderr
    return r.stdout


def samples(text):
    """{series: value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def promtool_ok(text):
    r = subprocess.run([need("promtool"), "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


@pytest.fixture
def loaded(host):
    """Services with figures to see: memory with a limit, a busy CPU, tasks
    with a limit, an OOM kill, and one stopped."""
    host.write({
        "mem": host.svc(MEM, limits={"memory": "64M"}),
        "cpu": host.svc(CPU),
        "pids": host.svc(PIDS, limits={"pids": 32}),
        "oom": host.svc(OOM, limits={"memory": "16M"}),
        "idle": host.svc(LOOP),
    })
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    r = host.berth.run("stop", "idle")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: (lambda s: s["mem"]["memory_bytes"] >= 20 * MiB and
                      s["cpu"]["cpu_seconds"] >= 0.5 and s["pids"]["pids"] == 6 and
                      s["oom"]["oom_kills"] == 1)(stats(host)), 30, "the services' figures")
    return host


def test_stats_reads_each_services_cgroup(loaded):
    host = loaded
    s = stats(host)
    assert set(s) == {"mem", "cpu", "pids", "oom", "idle"}
    for name in ("mem", "cpu", "pids", "oom"):
        assert s[name]["state"] == "running" and s[name]["running"] is True, s[name]
        assert s[name]["restarts"] == 0 and s[name]["uptime_seconds"] >= 0, s[name]
        assert s[name]["cpu_seconds"] > 0 and s[name]["pids"] >= 1, s[name]
        assert s[name]["memory_peak_bytes"] >= s[name]["memory_bytes"] > 0, s[name]
    mem = s["mem"]
    assert mem["memory_limit_bytes"] == 64 * MiB, mem
    assert 20 * MiB <= mem["memory_bytes"] < 64 * MiB, mem
    assert mem["oom_kills"] == 0 and mem["pids_limit"] is None, mem
    cpu = s["cpu"]
    # one sample: the average since the container started; a busy loop
    # gets most of a CPU even on a loaded machine
    assert cpu["cpu_percent"] > 10, cpu
    assert cpu["memory_limit_bytes"] is None and cpu["pids_limit"] is None, cpu
    assert s["mem"]["cpu_seconds"] < cpu["cpu_seconds"]
    pids = s["pids"]
    assert pids["pids"] == 6 and pids["pids_limit"] == 32, pids
    oom = s["oom"]
    assert oom["oom_kills"] == 1 and oom["memory_limit_bytes"] == 16 * MiB, oom
    assert oom["memory_peak_bytes"] <= 16 * MiB, oom
    # no container, no figures
    idle = s["idle"]
    assert idle["state"] == "stopped" and idle["running"] is False, idle
    assert all(idle[k] is None for k in FIELDS[3:11] + ["uptime_seconds"]), idle

    # the table
    r = host.berth.run("stats", "--no-stream")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "STATE", "CPU", "%"], lines[0]
    rows = {l.split()[0]: l.split() for l in lines[1:]}
    assert set(rows) == {"mem", "cpu", "pids", "oom", "idle"}, r.stdout
    assert rows["mem"][5] == "64.0MiB" and rows["mem"][1] == "running", rows["mem"]
    assert rows["pids"][8] == "6" and rows["oom"][9] == "1", r.stdout
    assert rows["idle"][1:] == ["stopped", "-", "-", "-", "-", "-", "-", "-", "-", "0", "-"], \
        rows["idle"]

    # NAME... narrows, options before or after it; a name that is no service is an error
    assert list(stats(host, "pids", "mem")) == ["mem", "pids"]
    r = host.berth.run("stats", "mem", "--json", "--no-stream")
    assert [s["name"] for s in json.loads(r.stdout)["services"]] == ["mem"], r.stdout
    r = host.berth.run("stats", "extra", "--help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: berth stats"), r.stdout
    r = host.berth.run("stats", "--no-stream", "mem", "nope")
    assert r.returncode == 1 and "no service 'nope'" in r.stderr, r.stderr
    # CPU time counts since the container started: a restart starts afresh
    before = stats(host, "cpu")["cpu"]["cpu_seconds"]
    r = host.berth.run("restart", "cpu")
    assert r.returncode == 0, r.stderr
    after = stats(host, "cpu")["cpu"]
    assert after["cpu_seconds"] < before and after["manual_restarts"] == 1, (before, after)


def read_until(p, pred, timeout):
    """Lines of a running process's stdout until pred(lines) holds."""
    lines = []
    deadline = time.monotonic() + timeout
    while not pred(lines):
        left = deadline - time.monotonic()
        assert left > 0, "timed out: " + "".join(lines)
        ready, _, _ = select.select([p.stdout], [], [], left)
        if ready:
            line = p.stdout.readline()
            assert line, "stats exited: " + "".join(lines) + p.stderr.read()
            lines.append(line)
    return lines


def test_stats_streams_with_cpu_over_each_interval(host):
    host.write({"cpu": host.svc(CPU), "idle": host.svc(LOOP)})
    assert host.apply().returncode == 0
    # not a terminal: one table per interval, each followed by an empty line
    p = host.berth.popen("stats", "--interval", "300ms")
    try:
        lines = read_until(p, lambda ls: ls.count("\n") == 3, 30)
    finally:
        p.kill()
        p.wait()
    tables = "".join(lines).split("\n\n")[:3]
    assert all(t.startswith("NAME ") and "\x1b" not in t for t in tables), tables
    for t in tables[1:]:
        row = [l.split() for l in t.splitlines() if l.startswith("cpu ")][0]
        assert 10 < float(row[2]) <= 100 * os.cpu_count() + 5, t  # CPU % of the interval

    # JSON: one object per line and interval; CPU % is the interval's
    p = host.berth.popen("stats", "--json", "--interval", "300ms", "cpu")
    try:
        lines = read_until(p, lambda ls: len(ls) == 3, 30)
    finally:
        p.kill()
        p.wait()
    docs = [json.loads(l) for l in lines]
    cpu = [d["services"][0] for d in docs]
    assert all(d["services"][0]["name"] == "cpu" for d in docs) and len(docs[0]["services"]) == 1
    assert cpu[0]["cpu_seconds"] < cpu[1]["cpu_seconds"] < cpu[2]["cpu_seconds"], cpu
    assert all(10 < c["cpu_percent"] <= 100 * os.cpu_count() + 5 for c in cpu[1:]), cpu

    # on a terminal the table is redrawn in place
    master, slave = pty.openpty()
    p = subprocess.Popen(host.berth.cmd("stats", "--interval", "200ms"), stdout=slave,
                         stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 30
        while out.count(b"\x1b[H\x1b[2J") < 2:
            assert time.monotonic() < deadline, out
            if select.select([master], [], [], 1)[0]:
                out += os.read(master, 65536)
    finally:
        p.kill()
        p.wait()
        os.close(master)
    assert out.startswith(b"\x1b[H\x1b[2JNAME "), out[:80]


def test_prometheus_metrics_are_valid_and_stable(loaded):
    host = loaded
    text = prometheus(host)
    promtool_ok(text)
    m = samples(text)
    version = host.berth.run("--version").stdout.split()[1]
    assert m['berth_build_info{version="%s"}' % version] == 1
    assert m["berth_agent_running"] == 0  # no agent here
    assert m['berth_service_info{service="mem",image="%s"}' % host.image["digest"]] == 1
    assert m['berth_service_up{service="mem"}'] == 1
    assert m['berth_service_up{service="idle"}'] == 0
    assert m['berth_service_state{service="mem",state="running"}'] == 1
    assert m['berth_service_state{service="mem",state="stopped"}'] == 0
    assert m['berth_service_state{service="idle",state="stopped"}'] == 1
    assert m['berth_service_memory_limit_bytes{service="mem"}'] == 64 * MiB
    assert m['berth_service_memory_bytes{service="mem"}'] >= 20 * MiB
    assert m['berth_service_memory_peak_bytes{service="mem"}'] >= 20 * MiB
    assert m['berth_service_cpu_seconds_total{service="cpu"}'] >= 0.5
    assert m['berth_service_pids{service="pids"}'] == 6
    assert m['berth_service_pids_limit{service="pids"}'] == 32
    assert m['berth_service_oom_kills_total{service="oom"}'] == 1
    assert m['berth_service_oom_kills_total{service="mem"}'] == 0
    assert m['berth_service_start_time_seconds{service="mem"}'] <= time.time()
    # no limit, no series; no container, no figures
    assert 'berth_service_memory_limit_bytes{service="cpu"}' not in m
    assert not [k for k in m if 'service="idle"' in k and
                re.match(r"berth_service_(memory|cpu|pids|oom|start)", k)], text

    # a state change changes values, never the set of series alerts watch
    def watched(m):
        return {k for k in m if re.match(r"berth_service_(up|state|info|restarts_total)\{", k)}
    r = host.berth.run("stop", "mem")
    assert r.returncode == 0, r.stderr
    after = samples(prometheus(host))
    assert watched(after) == watched(m)
    assert after['berth_service_state{service="mem",state="running"}'] == 0
    assert after['berth_service_state{service="mem",state="stopped"}'] == 1
    assert after['berth_service_up{service="mem"}'] == 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_textfile_is_read_by_node_exporter(loaded, tmp_path):
    host = loaded
    exporter = need("prometheus-node-exporter")
    d = tmp_path / "textfile"
    d.mkdir()
    r = host.berth.run("status", "--textfile", str(d))
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    assert os.listdir(d) == ["berth.prom"]  # no temporary file left
    assert oct(os.stat(d / "berth.prom").st_mode & 0o777) == "0o644"
    promtool_ok((d / "berth.prom").read_text())
    port = free_port()
    p = subprocess.Popen([exporter, f"--web.listen-address=127.0.0.1:{port}",
                          "--collector.disable-defaults", "--collector.textfile",
                          f"--collector.textfile.directory={d}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as f:
                    return f.read().decode()
            except OSError:
                assert p.poll() is None, p.stderr.read()
                return None
        m = samples(wait_for(scrape, 30, "node_exporter's /metrics"))
        assert m["node_textfile_scrape_error"] == 0
        assert m['node_textfile_mtime_seconds{file="%s"}' % (d / "berth.prom")] > 0
        assert m['berth_service_state{service="mem",state="running"}'] == 1
        assert m['berth_service_memory_limit_bytes{service="mem"}'] == 64 * MiB
        assert m['berth_service_oom_kills_total{service="oom"}'] == 1
        # (node_exporter sorts the labels)
        assert m['berth_service_info{image="%s",service="cpu"}' % host.image["digest"]] == 1
        assert any(k.startswith("berth_build_info{") for k in m)
        # rewritten in place (atomically): the collector sees the new figures
        before = m['berth_service_cpu_seconds_total{service="cpu"}']
        assert host.berth.run("status", "--textfile", str(d)).returncode == 0
        wait_for(lambda: samples(scrape())['berth_service_cpu_seconds_total{service="cpu"}'] >
                 before, 10, "the new file")
    finally:
        p.terminate()
        p.wait(10)


def test_textfile_timer_unit_runs_berth(host, tmp_path):
    """packaging/berth-textfile.service as CMake configured it beside the
    binary: its command, at this root and directory, writes berth.prom."""
    unit = os.path.join(os.path.dirname(host.berth.binary), "berth-textfile.service")
    text = open(unit).read()
    (cmd,) = re.findall(r"^ExecStart=(.*)$", text, re.M)
    argv = shlex.split(cmd)
    assert argv[1:] == ["status", "--root", "/var/lib/berth", "--format", "prometheus",
                        "--textfile", "/var/lib/prometheus/node-exporter"], argv
    timer = open(os.path.join(TOP, "packaging", "berth-textfile.timer")).read()
    assert re.search(r"^OnUnitActiveSec=15s$", timer, re.M), timer
    host.write({"web": host.svc(LOOP)})
    assert host.apply().returncode == 0
    d = tmp_path / "nodeexp"
    d.mkdir()
    argv = [host.berth.binary] + argv[1:]
    argv[argv.index("/var/lib/berth")] = host.berth.root
    argv[argv.index("/var/lib/prometheus/node-exporter")] = str(d)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert samples((d / "berth.prom").read_text())['berth_service_up{service="web"}'] == 1


def test_a_wrong_root_is_an_error(berth, tmp_path):
    wrong = str(tmp_path / "no-such-root")
    out = tmp_path / "out"
    out.mkdir()
    for args in (["status", "--format", "prometheus"], ["status", "--textfile", str(out)],
                 ["stats", "--no-stream"], ["stats", "--no-stream", "--json"], ["ps"],
                 ["status", "--json"]):
        r = subprocess.run([berth.binary, "--root", wrong, *args], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1 and r.stdout == "", (args, r.stdout)
        assert f"no berth root at '{wrong}'" in r.stderr, (args, r.stderr)
    assert os.listdir(out) == []
    # a directory berth never used gives no metrics either; ps lists nothing
    empty = str(tmp_path / "empty")
    os.mkdir(empty)
    for args in (["status", "--format", "prometheus"], ["stats", "--no-stream"]):
        r = subprocess.run([berth.binary, "--root", empty, *args], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1 and f"no berth root at '{empty}'" in r.stderr, (args, r.stderr)
    r = subprocess.run([berth.binary, "--root", empty, "ps"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("NAME"), r.stdout + r.stderr
    # the positive control: a root berth used, and a textfile directory that is none
    (tmp_path / "services.yaml").write_text(services_yaml({}))
    r = berth.run("apply", "-f", str(tmp_path / "services.yaml"))
    assert r.returncode == 0, r.stderr
    assert berth.run("status", "--format", "prometheus").returncode == 0
    r = berth.run("status", "--textfile", str(tmp_path / "no-such-dir"))
    assert r.returncode == 1 and "no-such-dir" in r.stderr, r.stderr


def test_agent_and_converge_metrics(host, agents):
    host.write({"web": host.svc(LOOP)})
    t0 = time.time()
    agent = agents("--resync", "1h")
    agent.wait_log("agent started")
    wait_for(lambda: samples(prometheus(host)).get("berth_converge_last_success") == 1, 30,
             "the first converge")
    text = prometheus(host)
    promtool_ok(text)
    m = samples(text)
    assert m["berth_agent_running"] == 1
    assert t0 - 1 <= m["berth_agent_start_time_seconds"] <= time.time()
    assert m["berth_file_valid"] == 1
    assert m["berth_converges_total"] >= 1 and m["berth_converge_failures_total"] == 0
    assert t0 <= m["berth_converge_last_time_seconds"] <= time.time()
    assert 0 <= m["berth_converge_last_duration_seconds"] < 60
    assert m["berth_converge_last_failed_services"] == 0
    js = json.loads(host.berth.run("status", "--json").stdout)["agent"]
    assert js["last_converge"]["result"] == "ok" and js["converges"] >= 1, js

    # a service that cannot start: the next converge says so
    host.write({"web": host.svc(LOOP), "bad": host.svc(["/bin/no-such-program"])})
    wait_for(lambda: samples(prometheus(host)).get("berth_converge_last_success") == 0, 30,
             "a failed converge")
    m = samples(prometheus(host))
    assert m["berth_converge_last_failed_services"] == 1
    assert m["berth_converge_failures_total"] >= 1
    assert m['berth_service_state{service="bad",state="failed"}'] == 1

    # the agent is gone: said, not silenced
    agent.stop(signal.SIGKILL)
    m = samples(prometheus(host))
    assert m["berth_agent_running"] == 0 and "berth_agent_start_time_seconds" not in m
    assert m["berth_converge_last_success"] == 0  # the last one it did
