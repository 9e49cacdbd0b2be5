"""Why did it restart? (issue 11): every transition of a keeper in the
service's history with its cause (berth events, berth status NAME), and
the log's lines stamped with the time they arrived (logs --timestamps,
--since)."""
import datetime
import json
import os
import re
import signal
import subprocess
import time

from conftest import keeper_pids, wait_for
from test_agent import agents  # noqa: F401 (fixture)
from test_apply import LOOP

BACKOFF = {"initial": "200ms", "max": "2s"}


def events(host, *args):
    r = host.berth.run("events", "--json", *args)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def exits(host, name):
    return [e for e in events(host, name) if "exit" in e]


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def check(script, **kw):
    c = {"command": ["/bin/sh", "-c", script], "interval": "100ms", "timeout": "1s",
         "retries": 2}
    c.update(kw)
    return c


def test_crash_oom_and_unhealthy_each_have_their_cause(host):
    host.write({
        # the service itself fails
        "crash": host.svc(["/bin/sh", "-c", "echo up; sleep 0.3; exit 3"], backoff=BACKOFF),
        # the probe allocates 256 MB under a 32 MB limit
        "hog": host.svc(["/bin/probe", "hog", "256"], limits={"memory": "32M"},
                        backoff=BACKOFF),
        # a health check that fails, and the keeper restarts it for that
        "sick": host.svc(LOOP, backoff=BACKOFF,
                         healthcheck=check("echo not-ready-yet; exit 3",
                                           restart_on_unhealthy=True)),
        # the positive control: nothing happens to it but its start
        "calm": host.svc(LOOP),
    })
    assert host.apply().returncode == 0
    for name in ("crash", "hog", "sick"):
        wait_for(lambda: len(exits(host, name)) >= 2, 30, f"two exits of {name}")

    crash = exits(host, "crash")
    for e in crash[:2]:
        assert e["cause"] == "exit" and e["exit"] == {"code": 3, "signal": None, "oom": False}, e
        assert (e["from"], e["to"]) == ("running", "backoff"), e
        assert e["service"] == "crash" and "exited with code 3" in e["message"], e

    hog = exits(host, "hog")
    for e in hog[:2]:
        assert e["cause"] == "oom", e
        assert e["exit"] == {"code": 137, "signal": 9, "oom": True}, e
        assert e["to"] == "backoff", e

    sick = exits(host, "sick")
    for e in sick[:2]:
        assert e["cause"] == "unhealthy", e
        assert e["exit"]["code"] == 143 and e["exit"]["signal"] == 15 and not e["exit"]["oom"], e
        assert e["health"]["result"] == "exit code 3", e
        assert "not-ready-yet" in e["health"]["output"], e
    # the transition that started it: unhealthy, with the check's output
    ev = events(host, "sick")
    turned = [e for e in ev if e["cause"] == "unhealthy" and "exit" not in e]
    assert turned and turned[0]["health"]["status"] == "unhealthy", ev
    assert "not-ready-yet" in turned[0]["health"]["output"], turned[0]
    stopping = [e for e in turned if e.get("to") == "stopping"]
    assert stopping and stopping[0]["from"] == "running", turned

    calm = events(host, "calm")
    assert [e["cause"] for e in calm] == ["apply", "start"], calm
    assert calm[0]["action"] == "create" and calm[1]["to"] == "running", calm
    assert calm[1]["pid"] == host.status()["calm"]["pid"], calm
    assert exits(host, "calm") == []

    # times with sub-second precision, in order, recent
    now = time.time()
    for name in ("crash", "hog", "sick"):
        times = [parse_time(e["time"]) for e in events(host, name)]
        assert times == sorted(times), times
        assert all(now - 120 < t <= now + 1 for t in times), times
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e["time"])
                   for e in events(host, name))

    # all of them, merged by time, in the table
    r = host.berth.run("events")
    assert r.returncode == 0, r.stderr
    for name, cause in (("crash", "exit"), ("hog", "oom"), ("sick", "unhealthy"),
                        ("calm", "start")):
        assert re.search(rf"^\S+ +{name} +{cause} +running +-> +", r.stdout, re.M) or \
            re.search(rf"^\S+ +{name} +{cause} ", r.stdout, re.M), (name, r.stdout)
    assert "    | not-ready-yet" in r.stdout, r.stdout
    everything = events(host)
    assert {e["service"] for e in everything} == {"crash", "hog", "sick", "calm"}
    t = [parse_time(e["time"]) for e in everything]
    assert t == sorted(t)

    # berth status NAME: the last exits with their causes
    for name, pattern in (
            ("crash", r"exit +code 3 -> backoff"),
            ("hog", r"oom +code 137 \(SIGKILL, killed by the OOM killer\) -> backoff"),
            ("sick", r"unhealthy +code 143 \(SIGTERM\) -> backoff; last check: exit code 3")):
        out = host.berth.run("status", name).stdout
        assert "last exits:" in out, out
        section = out.split("last exits:")[1]
        lines = [l for l in section.splitlines()[1:] if l.startswith("    2")]
        assert 2 <= len(lines) <= 5, out
        assert all(re.search(pattern, l) for l in lines), (pattern, out)
    assert "last exits:" not in host.berth.run("status", "calm").stdout


def test_stop_restart_and_since(host):
    host.write({"web": host.svc(LOOP)})
    assert host.apply().returncode == 0
    assert host.berth.run("restart", "web").returncode == 0
    mark = time.time()
    time.sleep(0.05)  # a boundary between two events, not a wait for one
    assert host.berth.run("stop", "web").returncode == 0
    ev = events(host, "web")
    causes = [(e["cause"], e.get("from"), e.get("to")) for e in ev]
    assert causes == [
        ("apply", None, None),
        ("start", None, "running"),
        ("restart", "running", "stopping"),
        ("restart", "stopping", "starting"),
        ("start", "starting", "running"),
        ("stop", "running", "stopping"),
        ("stop", "stopping", "stopped"),
    ], causes
    restart_exit = ev[3]
    assert restart_exit["exit"]["signal"] == 15, restart_exit
    # --since: an RFC 3339 time, and a duration back from now
    since = datetime.datetime.fromtimestamp(mark, datetime.timezone.utc)
    later = events(host, "web", "--since", since.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    assert [e["cause"] for e in later] == ["stop", "stop"], later
    local = since.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    assert events(host, "web", "--since", local.isoformat()) == later
    assert len(events(host, "web", "--since", "10m")) == len(ev)
    assert events(host, "web", "--since", "2099-01-01T00:00:00Z") == []
    r = host.berth.run("events", "--since", "yesterday", "web")
    assert r.returncode == 2 and "invalid --since 'yesterday'" in r.stderr, r.stderr


def test_rollback_is_recorded_and_events_follow_a_removed_service(host, agents):
    good = host.svc(LOOP, env={"V": "good"})
    host.write({"web": good})
    agent = agents("--settle", "3s")
    wait_for(lambda: host.status().get("web", {}).get("state") == "running", 10, "running")
    follower = subprocess.Popen(host.berth.cmd("events", "-f", "--json"),
                                stdout=subprocess.PIPE, text=True)
    try:
        host.write({"web": host.svc(["/bin/sh", "-c", "exit 1"], env={"V": "bad"})})
        agent.wait_log(r"'web' rolled back", 15)
        ev = events(host, "web")
        rb = [e for e in ev if e["cause"] == "rollback"]
        assert len(rb) == 1, ev
        assert rb[0]["to"] == "rolled-back" and "crashed after its replacement" in rb[0]["message"]
        assert rb[0]["rejected"] and rb[0]["spec"] and rb[0]["rejected"] != rb[0]["spec"], rb
        # what came before: the replace by apply, the new spec's exits
        i = ev.index(rb[0])
        assert any(e["cause"] == "apply" and e["action"] == "replace" for e in ev[:i]), ev
        assert any(e["cause"] == "exit" and e["exit"]["code"] == 1 for e in ev[:i]), ev
        assert ev[-1]["cause"] == "start" and ev[-1]["to"] == "running", ev
        # the follower saw them as they came
        seen = []
        while not any(e["cause"] == "rollback" for e in seen):
            line = follower.stdout.readline()
            assert line, "the follower ended"
            seen.append(json.loads(line))
        assert [e for e in seen if e["cause"] == "rollback"][0]["time"] == rb[0]["time"]
    finally:
        follower.kill()
        follower.wait()
    agent.stop()

    # removed: its events are kept with its log
    host.write({})
    assert host.apply().returncode == 0
    assert not os.path.exists(os.path.join(host.berth.root, "services", "web"))
    kept = events(host, "web")
    assert kept[:len(ev)] == ev[:len(kept[:len(ev)])]
    assert kept[-1]["cause"] == "stop" or kept[-1]["action"] == "remove", kept[-3:]
    assert any(e.get("action") == "remove" and e["to"] == "removed" for e in kept), kept[-3:]
    removed = os.listdir(os.path.join(host.berth.root, "removed"))
    assert len(removed) == 1 and "events" in os.listdir(
        os.path.join(host.berth.root, "removed", removed[0]))


def test_the_events_file_is_bounded_and_rotated(host):
    # a crash loop as fast as the backoff lets it: many events
    host.write({"loop": host.svc(["/bin/sh", "-c", "exit 7"],
                                 backoff={"initial": "1ms", "max": "1ms"})})
    assert host.apply().returncode == 0
    d = os.path.join(host.berth.root, "services", "loop")
    wait_for(lambda: os.path.exists(os.path.join(d, "events.1")), 60, "a rotation")
    assert host.berth.run("stop", "loop").returncode == 0
    for f in ("events", "events.1"):
        assert os.path.getsize(os.path.join(d, f)) <= 64 * 1024
        for line in open(os.path.join(d, f)):
            json.loads(line)  # whole records only
    ev = events(host, "loop")
    assert len(ev) > 100 and ev[-1]["cause"] == "stop", len(ev)
    t = [parse_time(e["time"]) for e in ev]
    assert t == sorted(t)


def test_a_new_keeper_records_its_adoption(host):
    host.write({"w": host.svc(LOOP)})
    assert host.apply().returncode == 0
    pid = host.status()["w"]["pid"]
    (keeper,) = keeper_pids(host.berth.root)
    os.kill(keeper, signal.SIGKILL)
    wait_for(lambda: host.status()["w"]["keeper_gone"], 10, "keeper gone")
    assert host.apply().returncode == 0
    ev = events(host, "w")
    assert ev[-1]["cause"] == "adopted" and ev[-1]["pid"] == pid, ev
    assert ev[-1]["to"] == "running" and ev[-2]["action"] == "start", ev
