"""Supervision you can rely on (issue 17): read-only images, set-up
failures that stay failed, imperative commands that wait, states that tell
the truth, finding the process."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import keeper_pids, wait_for
from test_agent import agents  # noqa: F401 (fixture)
from test_apply import LOOP


def log_of(host, name):
    return open(os.path.join(host.berth.root, "services", name, "log", "current")).read()


def image_rootfs(host):
    (hexdir,) = os.listdir(os.path.join(host.berth.root, "images"))
    return os.path.join(host.berth.root, "images", hexdir, "rootfs")


# --- read-only images --------------------------------------------------------

def test_read_only_root_gets_its_missing_mount_targets(host, tmp_path):
    """readonly_rootfs with a bind mount, a tmpfs and a working directory
    the image does not have: created before the root turns read-only (in a
    layer of the container's own), never in the shared image; the root
    stays read-only."""
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text("hello from the host\n")
    script = ("cat /srv/www/index.html; pwd; touch /run/app/ok && echo tmpfs-writable; "
              "touch /made-up 2>&1; exec sleep 100000")
    host.write({
        "ro": host.svc(["/bin/sh", "-c", script], readonly_rootfs=True, workdir="/srv/app",
                       mounts=[{"source": str(html), "target": "/srv/www", "readonly": True},
                               {"type": "tmpfs", "target": "/run/app"}]),
        # the positive control: the same with a writable root
        "rw": host.svc(["/bin/sh", "-c", script], workdir="/srv/app",
                       mounts=[{"source": str(html), "target": "/srv/www", "readonly": True},
                               {"type": "tmpfs", "target": "/run/app"}]),
    })
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    st = host.status()
    assert st["ro"]["state"] == st["rw"]["state"] == "running", st
    wait_for(lambda: "tmpfs-writable" in log_of(host, "ro"), 5, "ro's output")
    wait_for(lambda: "tmpfs-writable" in log_of(host, "rw"), 5, "rw's output")
    ro, rw = log_of(host, "ro"), log_of(host, "rw")
    for log in (ro, rw):
        assert "hello from the host" in log and "\n/srv/app\n" in log, log
    assert "Read-only file system" in ro, ro
    assert "Read-only file system" not in rw, rw
    # nothing of it reached the image that every service shares
    img = image_rootfs(host)
    assert not os.path.exists(os.path.join(img, "srv"))
    assert not os.path.exists(os.path.join(img, "run"))
    assert not os.path.exists(os.path.join(img, "made-up"))


def test_run_read_only_creates_targets_outside_the_rootfs(berth, rootfs, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "f").write_text("bound\n")
    r = berth.run("run", "--read-only", "-v", f"{src}:/new/dir:ro", "--tmpfs", "/scratch",
                  "-w", "/work/here", rootfs, "--",
                  "/bin/sh", "-c", "cat /new/dir/f; pwd; touch /scratch/x && touch /nope")
    assert "bound\n/work/here\n" in r.stdout, r.stdout + r.stderr
    assert "Read-only file system" in r.stderr, r.stderr
    assert r.returncode == 1
    for p in ("new", "scratch", "work", "nope"):
        assert not os.path.exists(os.path.join(rootfs, p)), p


# --- set-up failures: failed, not a retry loop --------------------------------

FAST_BACKOFF = {"initial": "50ms", "max": "100ms"}


def test_setup_failure_is_failed_with_its_reason_and_not_retried(host, tmp_path):
    missing = tmp_path / "later"
    host.write({
        "mnt": host.svc(LOOP, backoff=FAST_BACKOFF,
                        mounts=[{"source": str(missing), "target": "/data"}]),
        "cmd": host.svc(["/bin/no-such-program"], backoff=FAST_BACKOFF),
        "wd": host.svc(LOOP, backoff=FAST_BACKOFF, workdir="/etc/passwd"),
        "ok": host.svc(LOOP),
    })
    r = host.apply()
    assert r.returncode == 1, r.stdout + r.stderr
    out = r.stdout
    assert re.search(r"mnt +FAILED to create: .*'%s'.*No such file or directory" % missing, out), out
    assert re.search(r"cmd +FAILED to create: .*'/bin/no-such-program' not found", out), out
    assert re.search(r"wd +FAILED to create: .*working directory '/etc/passwd'.*Not a directory",
                     out), out
    assert re.search(r"ok +created", out), out
    st = host.status()
    for name in ("mnt", "cmd", "wd"):
        s = st[name]
        assert s["state"] == "failed" and s["pid"] is None and s["keeper_pid"] is None, s
        assert s["start_error"], s
        assert s["last_exit"] is None, s  # it never ran: no made-up exit code
        log = log_of(host, name)
        assert "cannot start" in log and "exited with code" not in log, log
        assert "restarting in" not in log, log
    assert st["ok"]["state"] == "running"
    # no keeper is left to retry: only ok's runs
    assert keeper_pids(host.berth.root) == [st["ok"]["keeper_pid"]]

    r = host.diff()
    assert r.returncode == 2, r.stdout
    assert re.search(r"> mnt +start +\(failed: .*No such file or directory\)", r.stdout), r.stdout
    plan = json.loads(host.diff("--json").stdout)
    acts = {c["service"]: c for c in plan["changes"]}
    assert acts["mnt"]["action"] == "start" and "No such file" in acts["mnt"]["start_error"]
    assert acts["ok"]["action"] == "unchanged" and acts["ok"]["start_error"] is None

    # apply tries again, and says so again
    r = host.apply()
    assert r.returncode == 1 and re.search(r"mnt +FAILED to start: .*No such file", r.stdout), \
        r.stdout
    # the host's path appears: the next apply starts it
    missing.mkdir()
    r = host.apply()
    assert re.search(r"mnt +started", r.stdout), r.stdout
    assert host.status()["mnt"]["state"] == "running"
    assert host.status()["mnt"]["start_error"] is None


def test_agent_does_not_retry_a_setup_failure_until_the_file_changes(host, agents, tmp_path):
    missing = tmp_path / "later"
    host.write({"mnt": host.svc(LOOP, mounts=[{"source": str(missing), "target": "/data"}])})
    agent = agents("--resync", "100ms")
    agent.wait_log(r"'mnt': create failed: .*No such file or directory")
    summary = os.path.join(host.berth.root, "status.json")
    # several resyncs (each rewrites the summary) leave it alone; the
    # failure may be logged before the first summary is written

    def mtime():
        try:
            return os.stat(summary).st_mtime_ns
        except FileNotFoundError:
            return None

    seen = set()
    wait_for(lambda: seen.add(mtime()) or len(seen - {None}) >= 4, 10, "resyncs")
    assert log_of(host, "mnt").count("cannot start") == 1
    assert host.status()["mnt"]["state"] == "failed"
    # a changed file is tried
    missing.mkdir()
    host.write({"mnt": host.svc(LOOP, env={"X": "1"},
                                mounts=[{"source": str(missing), "target": "/data"}])})
    wait_for(lambda: host.status()["mnt"]["state"] == "running", 10, "mnt running")


# --- imperative commands wait -------------------------------------------------

def slow_trap(seconds):
    """A service that takes `seconds` to stop on SIGTERM, and says when it
    starts and when it is gone."""
    return ["/bin/sh", "-c",
            f"trap 'echo stopping-$$; sleep {seconds}; echo gone-$$; exit 0' TERM; "
            "echo started-$$; while :; do sleep 0.05; done"]


def counters(host, name):
    s = host.status()[name]
    return s["restarts"], s["manual_restarts"]


def test_restart_returns_once_the_new_instance_runs(host):
    host.write({"web": host.svc(slow_trap(1), stop_timeout="10s")})
    assert host.apply().returncode == 0
    wait_for(lambda: "started-" in log_of(host, "web"), 5, "first start")
    old = host.status()["web"]
    t0 = time.monotonic()
    r = host.berth.run("restart", "web")
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    new = host.status()["web"]
    # the old instance is gone, having finished its slow stop, and a new one runs
    assert not os.path.exists(f"/proc/{old['pid']}")
    assert new["state"] == "running" and new["pid"] not in (None, old["pid"]), new
    assert re.search(r"restarted 'web' \(pid \d+\)", r.stdout), r.stdout
    log = log_of(host, "web")
    assert log.index("gone-") < log.rindex("started-"), log
    assert took >= 1.0, took
    assert counters(host, "web") == (0, 1)

    # --no-wait: the old behaviour, back before the old instance is gone
    pid = new["pid"]
    r = host.berth.run("restart", "--no-wait", "web")
    assert r.returncode == 0 and "restarting 'web'" in r.stdout, r.stdout + r.stderr
    assert os.path.exists(f"/proc/{pid}")  # still in its 1 s trap
    wait_for(lambda: host.status()["web"]["pid"] not in (None, pid), 10, "restarted")
    assert counters(host, "web") == (0, 2)

    # a crash counts apart from the manual restarts
    pid = host.status()["web"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: host.status()["web"]["pid"] not in (None, pid) and
             host.status()["web"]["state"] == "running", 10, "crash restart")
    assert counters(host, "web") == (1, 2)
    prom = host.berth.run("status", "--format", "prometheus").stdout
    assert 'berth_service_restarts_total{service="web"} 1' in prom, prom
    assert 'berth_service_manual_restarts_total{service="web"} 2' in prom, prom
    ps = host.berth.run("ps").stdout.splitlines()
    cols = ps[0].split()
    row = [l for l in ps if l.startswith("web ")][0].split()
    assert row[cols.index("RESTARTS")] == "1" and row[cols.index("MANUAL")] == "2", ps


def test_stop_returns_once_the_service_is_gone_and_can_time_out(host):
    host.write({"web": host.svc(slow_trap(1), stop_timeout="10s"),
                "slow": host.svc(slow_trap(3), stop_timeout="10s")})
    assert host.apply().returncode == 0
    wait_for(lambda: "started-" in log_of(host, "web") and "started-" in log_of(host, "slow"),
             5, "started")
    st = host.status()
    r = host.berth.run("stop", "web")
    assert r.returncode == 0 and "stopped 'web'" in r.stdout, r.stdout + r.stderr
    assert not os.path.exists(f"/proc/{st['web']['pid']}")
    assert "gone-" in log_of(host, "web")
    assert host.status()["web"]["state"] == "stopped"

    # a timeout shorter than the service's stop: exit 1, and it goes on stopping
    t0 = time.monotonic()
    r = host.berth.run("stop", "--timeout", "300ms", "slow")
    assert time.monotonic() - t0 < 2.5
    assert r.returncode == 1 and "timed out" in r.stderr, r.stdout + r.stderr
    assert os.path.exists(f"/proc/{st['slow']['pid']}")
    wait_for(lambda: host.status()["slow"]["state"] == "stopped", 10, "slow stopped")
    assert "gone-" in log_of(host, "slow")

    # --no-wait returns while the service is still in its trap
    assert host.apply().returncode == 0
    pid = host.status()["web"]["pid"]
    wait_for(lambda: log_of(host, "web").count("started-") == 2, 5, "started again")
    r = host.berth.run("stop", "--no-wait", "web")
    assert r.returncode == 0 and "stopping 'web'" in r.stdout, r.stdout + r.stderr
    assert os.path.exists(f"/proc/{pid}")
    wait_for(lambda: host.status()["web"]["state"] == "stopped", 10, "web stopped")


def test_apply_during_a_stop_starts_the_service_again(host):
    """A stop under way (asked for by a berth killed since, or by hand) ends
    with the keeper gone: the plan does not count it as running, and apply
    waits for it and starts the service again (seen in CI: apply said done,
    then diff wanted a start)."""
    host.write({"web": host.svc(slow_trap(1), stop_timeout="10s")})
    assert host.apply().returncode == 0
    wait_for(lambda: "started-" in log_of(host, "web"), 5, "first start")
    old = host.status()["web"]["pid"]
    r = host.berth.run("stop", "--no-wait", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: "stopping-" in log_of(host, "web"), 5, "in its trap")
    st = host.status()["web"]
    assert st["state"] == "running" and st["stopping"] is True, st
    d = host.diff()
    assert d.returncode == 2 and re.search(r"web\s.*start", d.stdout), d.stdout
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    st = host.status()["web"]
    assert st["state"] == "running" and st["pid"] not in (None, old), st
    assert st["stopping"] is False, st
    assert "gone-" in log_of(host, "web")
    assert host.diff().returncode == 0


def test_restart_says_when_the_new_instance_cannot_start(host, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    host.write({"web": host.svc(LOOP, mounts=[{"source": str(data), "target": "/data"}])})
    assert host.apply().returncode == 0
    data.rmdir()
    r = host.berth.run("restart", "web")
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"'web' is failed after the restart: .*No such file or directory", r.stderr), \
        r.stderr
    assert host.status()["web"]["state"] == "failed"
    # and once the path is back, a restart starts it (a keeper of its own again)
    data.mkdir()
    r = host.berth.run("restart", "web")
    assert r.returncode == 0 and "started 'web'" in r.stdout, r.stdout + r.stderr
    assert host.status()["web"]["state"] == "running"


# --- states tell the truth ------------------------------------------------------

def check(script, **kw):
    c = {"command": ["/bin/sh", "-c", script], "interval": "100ms", "timeout": "1s",
         "retries": 2}
    c.update(kw)
    return c


def last_check(host, name):
    return host.status()[name]["last_check"]


def test_unhealthy_says_how_the_check_failed_and_keeps_its_output(host):
    host.write({
        "code": host.svc(LOOP, healthcheck=check("echo checking-out; echo checking-err >&2; exit 3")),
        "signal": host.svc(LOOP, healthcheck=check("kill -9 $$")),
        "slow": host.svc(LOOP, healthcheck=check("echo before-sleep; exec sleep 10",
                                                 timeout="200ms")),
        "chatty": host.svc(LOOP, healthcheck=check("yes 0123456789 | head -c 100000; exit 0")),
        "good": host.svc(LOOP, healthcheck=check("echo all good")),
    })
    assert host.apply().returncode == 0
    for name in ("code", "signal", "slow"):
        wait_for(lambda: host.status()[name]["health"] == "unhealthy", 10, f"{name} unhealthy")
    wait_for(lambda: host.status()["good"]["health"] == "healthy", 10, "good healthy")
    wait_for(lambda: host.status()["chatty"]["health"] == "healthy", 10, "chatty healthy")

    assert "(last: exit code 3)" in log_of(host, "code")
    assert "(last: killed by signal SIGKILL)" in log_of(host, "signal")
    assert "(last: timed out after 200 ms)" in log_of(host, "slow")
    c = last_check(host, "code")
    assert (c["exit_code"], c["signal"], c["timed_out"]) == (3, None, False), c
    assert "checking-out" in c["output"] and "checking-err" in c["output"], c
    assert c["result"] == "exit code 3" and c["at"], c
    c = last_check(host, "signal")
    assert (c["exit_code"], c["signal"], c["timed_out"]) == (None, 9, False), c
    c = last_check(host, "slow")
    assert c["timed_out"] and c["result"] == "timed out after 200 ms", c
    assert "before-sleep" in c["output"], c
    # bounded, and a check that writes more than a pipe holds is not held up
    c = last_check(host, "chatty")
    assert c["exit_code"] == 0 and len(c["output"]) == 4096, (c["exit_code"], len(c["output"]))
    assert last_check(host, "good")["output"] == "all good\n"

    r = host.berth.run("status", "code")
    assert r.returncode == 0, r.stderr
    assert re.search(r"health: +unhealthy", r.stdout), r.stdout
    assert re.search(r"last check: +exit code 3", r.stdout), r.stdout
    assert "    | checking-out" in r.stdout and "    | checking-err" in r.stdout, r.stdout


def test_a_stopped_service_has_no_health(host):
    host.write({"web": host.svc(LOOP, healthcheck=check("true"))})
    assert host.apply().returncode == 0
    wait_for(lambda: host.status()["web"]["health"] == "healthy", 10, "healthy")
    assert host.berth.run("stop", "web").returncode == 0
    st = host.status()["web"]
    assert st["state"] == "stopped" and st["health"] == "none", st
    assert st["last_check"]["exit_code"] == 0  # what it last was stays readable
    prom = host.berth.run("status", "--format", "prometheus").stdout
    assert 'berth_service_healthy{service="web"} -1' in prom, prom
    assert host.apply().returncode == 0  # the positive control: healthy again
    wait_for(lambda: host.status()["web"]["health"] == "healthy", 10, "healthy again")


def test_rolled_back_clears_when_the_file_asks_for_what_runs(host, agents):
    good = host.svc(LOOP, env={"V": "good"})
    host.write({"web": good})
    agent = agents("--settle", "3s")
    wait_for(lambda: host.status().get("web", {}).get("state") == "running", 10, "running")
    host.write({"web": host.svc(["/bin/sh", "-c", "exit 1"], env={"V": "bad"})})
    agent.wait_log(r"'web' rolled back", 15)
    wait_for(lambda: host.status()["web"]["state"] == "rolled-back", 5, "rolled-back")
    pid = host.status()["web"]["pid"]
    prom = host.berth.run("status", "--format", "prometheus").stdout
    assert 'berth_service_rolled_back{service="web"} 1' in prom
    # the file is fixed: it asks for exactly the version that runs
    host.write({"web": good})
    wait_for(lambda: host.status()["web"]["state"] == "running", 5, "no longer rolled-back")
    assert host.status()["web"]["pid"] == pid  # nothing was restarted for it
    prom = host.berth.run("status", "--format", "prometheus").stdout
    assert 'berth_service_rolled_back{service="web"} 0' in prom
    r = host.diff("--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["changes"][0]["rolled_back"] is False


# --- finding the process ----------------------------------------------------------

def comm(pid):
    return open(f"/proc/{pid}/comm").read().strip()


def cmdline(pid):
    return open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")


def test_ps_and_status_give_the_services_pid_and_the_inits(host):
    host.write({"web": host.svc(["/bin/sh", "-c", "exec sleep 100000"])})
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    st = host.status()["web"]
    init, svc, keeper = st["init_pid"], st["service_pid"], st["keeper_pid"]
    assert st["pid"] == init  # "pid" keeps its meaning
    assert svc and svc != init
    # the service: the init's child, running the service's command
    assert open(f"/proc/{init}/task/{init}/children").read().split() == [str(svc)]
    assert cmdline(svc)[:2] == [b"sleep", b"100000"]
    assert comm(svc) == "sleep"
    ps = host.berth.run("ps").stdout.splitlines()
    cols = ps[0].split()
    row = [l for l in ps if l.startswith("web ")][0].split()
    assert row[cols.index("PID")] == str(svc) and row[cols.index("INIT")] == str(init), ps
    details = host.berth.run("status", "web").stdout
    assert re.search(rf"pid: +{svc}\n", details) and re.search(rf"init pid: +{init}\n", details)
    # names that say what they are
    assert comm(keeper) == "berth-keeper"
    assert cmdline(keeper)[:4] == [b"berth-keeper", b"web", b"--root", host.berth.root.encode()]
    assert comm(init) == "berth-init" and cmdline(init)[0] == b"berth-init"
    assert host.berth.root.encode() not in b" ".join(cmdline(init))
    # pgrep finds them by name (comm)
    pg = subprocess.run(["pgrep", "-x", "berth-keeper"], capture_output=True, text=True).stdout
    assert str(keeper) in pg.split()
    # and inside, pid 1 is berth-init
    r = host.berth.run("exec", "web", "--", "cat", "/proc/1/cmdline")
    assert r.stdout.split("\0")[0] == "berth-init", r
    # stopped: no pids
    assert host.berth.run("stop", "web").returncode == 0
    st = host.status()["web"]
    assert st["pid"] is st["init_pid"] is st["service_pid"] is None, st


def test_a_removed_services_log_is_kept_until_its_retention_or_purge(host):
    talk = ["/bin/sh", "-c", "echo last-words-of-$SVC; exec sleep 100000"]
    host.write({"web": host.svc(talk, env={"SVC": "web"}),
                "api": host.svc(talk, env={"SVC": "api"})})
    assert host.apply().returncode == 0
    wait_for(lambda: "last-words-of-web" in log_of(host, "web") and
             "last-words-of-api" in log_of(host, "api"), 5, "output")
    removed = os.path.join(host.berth.root, "removed")
    os.makedirs(removed)
    ancient = os.path.join(removed, "old@1000")  # removed in 1970: past any retention
    os.makedirs(ancient)
    host.write({"api": host.svc(talk, env={"SVC": "api"})})
    r = host.apply()
    assert r.returncode == 0 and re.search(r"web +removed", r.stdout), r.stdout
    assert "web" not in host.status()
    r = host.berth.run("logs", "web")
    assert r.returncode == 0 and "last-words-of-web" in r.stdout, r.stdout + r.stderr
    assert "'web' was removed at" in r.stderr, r.stderr
    assert [e for e in os.listdir(removed) if e.startswith("web@")]
    assert not os.path.exists(ancient)
    # --purge: the log of what it removes goes at once, and the kept ones too
    host.write({})
    r = host.apply("--purge")
    assert r.returncode == 0 and re.search(r"api +removed", r.stdout), r.stdout
    assert os.listdir(removed) == []
    r = host.berth.run("logs", "api")
    assert r.returncode == 1 and "no service 'api'" in r.stderr, r.stdout + r.stderr
