"""berth diff / apply with a keeper per service (issue 5 acceptance)."""
import fcntl
import json
import os
import random
import re
import signal
import subprocess
import time

import pytest

from conftest import empty_berth_cgroups, keeper_pids, mountinfo, root_cgroups, wait_for

LOOP = ["/bin/sh", "-c", "echo started $SVC; exec sleep 100000"]


def three(host, **overrides):
    svcs = {n: host.svc(LOOP, env={"SVC": n}) for n in ("alpha", "beta", "gamma")}
    svcs.update(overrides)
    return svcs


def test_create_change_remove_disable(host):
    svcs = three(host)
    host.write(svcs)
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    st = host.status()
    assert sorted(st) == ["alpha", "beta", "gamma"]
    assert all(s["state"] == "running" and s["pid"] for s in st.values())
    assert host.diff().returncode == 0

    # change one env value: exactly that field, exit 2, only it replaced
    before = host.pids()
    svcs["beta"]["env"]["LOG_LEVEL"] = "debug"
    host.write(svcs)
    d = host.diff("--json")
    assert d.returncode == 2
    plan = json.loads(d.stdout)
    changes = {c["service"]: c for c in plan["changes"]}
    assert changes["beta"]["action"] == "replace"
    assert changes["beta"]["fields"] == [{"path": "env.LOG_LEVEL", "old": None, "new": "debug"}]
    assert changes["alpha"]["action"] == changes["gamma"]["action"] == "unchanged"
    assert plan["summary"]["replace"] == 1 and plan["summary"]["unchanged"] == 2
    human = host.diff().stdout
    assert "~ beta" in human and "env.LOG_LEVEL: (none) → \"debug\"" in human
    assert host.apply().returncode == 0
    after = host.pids()
    assert after["alpha"] == before["alpha"] and after["gamma"] == before["gamma"]
    assert after["beta"] != before["beta"]
    assert "LOG_LEVEL=debug" in open(f"/proc/{wait_for(lambda: svc_pid(after['beta']))}/environ").read().replace("\0", " ")

    # remove one: stopped, record gone
    del svcs["gamma"]
    host.write(svcs)
    assert host.apply().returncode == 0
    assert sorted(host.status()) == ["alpha", "beta"]
    assert not os.path.exists(os.path.join(host.berth.root, "services", "gamma"))
    assert not os.path.exists(f"/proc/{after['gamma']}")

    # enabled: false stops it and keeps the record
    svcs["alpha"]["enabled"] = False
    host.write(svcs)
    d = host.diff("--json")
    assert {c["service"]: c["action"] for c in json.loads(d.stdout)["changes"]} == \
        {"alpha": "stop", "beta": "unchanged"}
    assert host.apply().returncode == 0
    st = host.status()
    assert st["alpha"]["state"] == "stopped" and st["alpha"]["pid"] is None
    assert st["beta"]["pid"] == after["beta"]
    assert host.diff().returncode == 0


def svc_pid(init_pid):
    """The service process: the one child of the container's init."""
    try:
        kids = open(f"/proc/{init_pid}/task/{init_pid}/children").read().split()
    except OSError:
        return None
    return int(kids[0]) if kids else None


def test_secret_env_values_are_never_printed(host):
    svcs = {"db": host.svc(LOOP, env={"DB_PASSWORD": "hunter2", "MODE": "a"})}
    host.write(svcs)
    assert host.apply().returncode == 0
    svcs["db"]["env"] = {"DB_PASSWORD": "swordfish", "MODE": "b", "API_TOKEN": "t0k"}
    host.write(svcs)
    for out in (host.diff().stdout, host.diff("--json").stdout):
        assert "hunter2" not in out and "swordfish" not in out and "t0k" not in out
        assert "(changed)" in out
    assert "env.DB_PASSWORD: (changed)" in host.diff().stdout
    assert "env.API_TOKEN: (added)" in host.diff().stdout


def test_invalid_file_changes_nothing(host):
    host.write(three(host))
    assert host.apply().returncode == 0
    before = host.pids()
    with open(host.file, "a") as f:
        f.write("  delta: {image: 12}\n")
    r = host.apply()
    assert r.returncode == 1
    assert f"{host.file}:" in r.stderr and "nothing was changed" in r.stderr
    assert host.pids() == before
    for content in ("", None):
        if content is None:
            os.unlink(host.file)
        else:
            open(host.file, "w").write(content)
        r = host.apply()
        assert r.returncode == 1, r.stdout
        assert host.pids() == before
        assert host.diff().returncode == 1


def test_bad_digest_fails_alone(host):
    svcs = three(host)
    host.write(svcs)
    assert host.apply().returncode == 0
    before = host.pids()
    svcs["alpha"]["image"]["digest"] = "sha256:" + "0" * 64
    svcs["alpha"]["env"]["NEW"] = "1"
    svcs["beta"]["env"]["NEW"] = "1"
    host.write(svcs)
    r = host.apply()
    assert r.returncode == 1
    assert "alpha" in r.stderr and "failed" in r.stderr
    assert "beta" not in r.stderr
    after = host.pids()
    assert after["alpha"] == before["alpha"]          # old version still running
    assert after["beta"] != before["beta"]            # the others converged
    assert after["gamma"] == before["gamma"]
    d = json.loads(host.diff("--json").stdout)
    assert {c["service"]: c["action"] for c in d["changes"]}["alpha"] == "replace"


def test_restarts_back_off_and_never_stays_stopped(host, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    crash = ["/bin/sh", "-c", "cut -d' ' -f1 /proc/uptime >> /marks/starts; exit 1"]
    svcs = {
        "crash": host.svc(crash, mounts=[{"source": str(marks), "target": "/marks"}],
                          backoff={"initial": "100ms", "max": "5s"}),
        "once": host.svc(["/bin/sh", "-c", "echo bye; exit 4"], restart="never"),
    }
    host.write(svcs)
    assert host.apply().returncode == 0
    starts = marks / "starts"
    wait_for(lambda: starts.exists() and len(starts.read_text().split()) >= 5, 15,
             "five starts")
    t = [float(x) for x in starts.read_text().split()[:5]]
    gaps = [b - a for a, b in zip(t, t[1:])]
    # each gap is the backoff (100ms doubling) plus a start, whose time
    # varies with the machine's load: the doubling shows in the lower bounds
    assert all(g >= 0.09 * 2**i for i, g in enumerate(gaps)), gaps
    st = wait_for(lambda: (lambda s: s if s["once"]["state"] == "stopped" else None)(host.status()))
    assert st["once"]["last_exit"]["code"] == 4 and st["once"]["pid"] is None
    assert st["crash"]["restarts"] >= 4
    ps = host.berth.run("ps").stdout
    line = [l for l in ps.splitlines() if l.startswith("once ")][0]
    assert "stopped" in line and " 4 " in line


def test_services_outlive_apply_and_logs_rotate(host):
    chatty = ["/bin/sh", "-c",
              "i=0; while [ $i -lt 3000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; echo done; exec sleep 100000"]
    host.write({"chatty": host.svc(chatty, log={"max_size": "16K", "max_files": 3})})
    assert host.apply().returncode == 0
    logdir = os.path.join(host.berth.root, "services", "chatty", "log")
    wait_for(lambda: "done" in host.berth.run("logs", "-n", "2", "chatty").stdout, 20, "output")
    # each file beside its time index (times, times.1, ...: test_events.py)
    sizes = {f: os.path.getsize(os.path.join(logdir, f)) for f in os.listdir(logdir)
             if f.startswith("current")}
    assert sorted(sizes) == ["current", "current.1", "current.2"], os.listdir(logdir)
    assert all(s <= 16 * 1024 for s in sizes.values()) and sum(sizes.values()) <= 48 * 1024
    r = host.berth.run("logs", "-n", "3", "chatty")
    assert r.stdout.splitlines()[-1] == "done" and len(r.stdout.splitlines()) == 3
    assert host.status()["chatty"]["state"] == "running"  # apply has exited
    assert os.path.exists(f"/proc/{host.status()['chatty']['pid']}")


def test_logs_readable_after_exit(host):
    host.write({"short": host.svc(["/bin/sh", "-c", "echo last words"], restart="never")})
    assert host.apply().returncode == 0
    wait_for(lambda: host.status()["short"]["state"] == "stopped")
    out = host.berth.run("logs", "short").stdout
    assert "last words" in out
    # the keeper's own lines carry the time; the service's output is as written
    assert re.search(r"^\[berth \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\] started 'short'", out, re.M)
    assert re.search(r"^\[berth [^]]*\] 'short' exited with code 0", out, re.M)


def test_plan_id_is_checked(host):
    svcs = three(host)
    host.write(svcs)
    plan = json.loads(host.diff("--json").stdout)["plan_id"]
    assert host.apply("--plan", plan).returncode == 0
    # unchanged file, a service stopped by hand: the reviewed id no longer holds
    plan = json.loads(host.diff("--json").stdout)["plan_id"]
    assert host.berth.run("stop", "beta").returncode == 0
    before = host.pids()
    r = host.apply("--plan", plan)
    assert r.returncode == 1 and "plan changed" in r.stderr and "> beta" in r.stderr
    assert host.pids() == before
    # a changed file: refused as well
    plan = json.loads(host.diff("--json").stdout)["plan_id"]
    svcs["gamma"]["env"]["X"] = "1"
    host.write(svcs)
    r = host.apply("--plan", plan)
    assert r.returncode == 1 and host.pids() == before
    plan = json.loads(host.diff("--json").stdout)["plan_id"]
    assert host.apply("--plan", plan).returncode == 0


def test_concurrent_applies_wait_for_the_lock(host):
    host.write({"one": host.svc(LOOP)})
    os.makedirs(host.berth.root, exist_ok=True)
    lock = open(os.path.join(host.berth.root, "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    p = subprocess.Popen(host.berth.cmd("apply", "-f", host.file), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline()
    assert "waiting for" in line and "lock" in line
    assert p.poll() is None and not os.path.exists(os.path.join(host.berth.root, "services"))
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    assert p.wait(60) == 0
    assert host.status()["one"]["state"] == "running"


def test_sigkill_during_apply_converges(host, berth_bin):
    names = [f"s{i}" for i in range(5)]
    rng = random.Random(1234)
    mounts_before = mountinfo()
    for i in range(30):
        svcs = {n: host.svc(LOOP, env={"GEN": str(i % 3)}) for n in names if rng.random() < 0.8}
        host.write(svcs)
        p = subprocess.Popen(host.berth.cmd("apply", "-f", host.file), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 0.25))
        p.kill()
        p.wait()
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    assert host.diff().returncode == 0
    st = host.status()
    assert sorted(st) == sorted(svcs)
    assert all(s["state"] == "running" for s in st.values())
    keepers = keeper_pids(host.berth.root)
    assert sorted(keepers) == sorted(s["keeper_pid"] for s in st.values())
    # each service has its cgroups (keeper/ and container/), nothing else is left
    assert empty_berth_cgroups(host.berth.root) == []
    services = {os.path.basename(os.path.dirname(c)).split("@")[0]
                for c in root_cgroups(host.berth.root) if os.path.basename(c) == "container"}
    assert services == set(svcs)
    assert mountinfo() == mounts_before
    # every container's init belongs to a live service
    for s in st.values():
        assert os.path.exists(f"/proc/{s['pid']}")
    host.teardown()
    assert keeper_pids(host.berth.root) == []
    assert root_cgroups(host.berth.root) == []


def test_unknown_user_fails_that_service_at_apply_time(host):
    host.write({"ok": host.svc(LOOP), "bad": host.svc(LOOP, user="mallory")})
    r = host.apply()
    assert r.returncode == 1
    assert "user 'mallory' not found in the image's /etc/passwd" in r.stdout
    assert "'bad'" in r.stderr and "'ok'" not in r.stderr
    st = host.status()
    assert st["ok"]["state"] == "running" and "bad" not in st
    # HOME comes from the image's /etc/passwd for the service's user
    host.write({"ok": host.svc(["/bin/sh", "-c", "echo home=$HOME; exec sleep 1000"], user="app")})
    assert host.apply().returncode == 0
    wait_for(lambda: "home=/home/app" in host.berth.run("logs", "ok").stdout, 5, "HOME")


def test_replacement_that_cannot_run_keeps_the_old_version(host):
    svcs = {"web": host.svc(LOOP)}
    host.write(svcs)
    assert host.apply().returncode == 0
    before = host.pids()
    svcs["web"]["user"] = "mallory"
    host.write(svcs)
    r = host.apply()
    assert r.returncode == 1 and "user 'mallory' not found" in r.stdout
    assert host.pids() == before and host.status()["web"]["state"] == "running"


def test_incomplete_record_is_replaced(host):
    """What a berth killed while writing a record leaves: the next plan
    replaces it (and diffs against nothing without crashing)."""
    svcs = {"web": host.svc(LOOP)}
    host.write(svcs)
    assert host.apply().returncode == 0
    d = os.path.join(host.berth.root, "services", "web")
    os.unlink(os.path.join(d, "spec.json"))
    svcs["web"]["env"] = {"X": "1"}
    host.write(svcs)
    plan = json.loads(host.diff("--json").stdout)
    assert plan["changes"][0]["action"] == "replace"
    assert {f["path"] for f in plan["changes"][0]["fields"]} >= {"env.X", "command"}
    assert host.apply().returncode == 0
    assert host.diff().returncode == 0
