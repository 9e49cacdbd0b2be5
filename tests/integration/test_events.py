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
    assert events(host) == kept  # without NAME too: the only service there was
    assert kept[:len(ev)] == ev[:len(kept[:len(ev)])]
    assert kept[-1]["cause"] == "stop" or kept[-1]["action"] == "remove", kept[-3:]
    assert any(e.get("action") == "remove" and e["to"] == "removed" for e in kept), kept[-3:]
    removed = os.listdir(os.path.join(host.berth.root, "removed"))
    assert len(removed) == 1 and "events" in os.listdir(
        os.path.join(host.berth.root, "removed", removed[0]))
    # and its log with its times
    lines = stamped(host, "web")
    assert any("started 'web'" in t for _, t in lines), lines
    assert [w for w, _ in lines] == sorted(w for w, _ in lines)


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
    assert ev[-1]["to"] == "running" and ev[-3]["action"] == "start", ev
    gone = ev[-2]
    assert gone["cause"] == "keeper-gone" and gone["pid"] == pid, gone
    assert f"(pid {keeper})" in gone["message"] and "adopts it" in gone["message"], gone

    # a keeper killed with its container: the next one says so, and starts it
    (keeper,) = keeper_pids(host.berth.root)
    os.kill(keeper, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: host.status()["w"]["state"] == "failed", 10, "keeper and container gone")
    assert host.apply().returncode == 0
    ev = events(host, "w")
    assert [e["cause"] for e in ev[-3:]] == ["apply", "keeper-gone", "start"], ev[-3:]
    assert "its container is gone too" in ev[-2]["message"], ev[-2]
    assert ev[-1]["from"] == "running" and ev[-1]["pid"] != pid, ev[-1]


# --- log timestamps ------------------------------------------------------------

STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z) (.*)$")


def stamped(host, name, *args):
    """(time, text) of each line of `berth logs --timestamps`."""
    r = host.berth.run("logs", "--timestamps", *args, name)
    assert r.returncode == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        m = STAMP.match(line)
        assert m, (line, r.stdout)
        out.append((parse_time(m.group(1)), m.group(2)))
    return out


def test_log_lines_carry_the_time_they_arrived(host):
    before = time.time()
    host.write({"t": host.svc(["/bin/sh", "-c",
                               "echo first; sleep 1; echo second; printf part; sleep 0.5; "
                               "echo ial; exec sleep 100000"])})
    assert host.apply().returncode == 0
    wait_for(lambda: "ial" in host.berth.run("logs", "t").stdout, 10, "the last line")
    after = time.time()
    lines = stamped(host, "t")
    texts = [t for _, t in lines]
    assert texts[0].startswith("[berth ") and "started 't'" in texts[0], texts
    assert texts[1:] == ["first", "second", "partial"], texts
    when = dict((t, w) for w, t in lines)
    assert before - 0.1 <= when["first"] <= when["second"] <= after, lines
    # the service slept a second between them (a line's time is its first byte's)
    assert 0.9 <= when["second"] - when["first"] <= 3, lines
    assert when["partial"] - when["second"] < 0.4, lines
    # without --timestamps the bytes are unchanged
    assert host.berth.run("logs", "t").stdout.endswith("first\nsecond\npartial\n")

    # --since: an RFC 3339 time between the two lines, with a zone or in UTC
    mid = datetime.datetime.fromtimestamp(when["first"] + 0.5, datetime.timezone.utc)
    for since in (mid.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                  mid.astimezone(datetime.timezone(datetime.timedelta(hours=-5))).isoformat()):
        assert [t for _, t in stamped(host, "t", "--since", since)] == ["second", "partial"]
        r = host.berth.run("logs", "--since", since, "t")
        assert r.stdout == "second\npartial\n", r.stdout
    # a duration back from now, and -n of what --since leaves
    assert len(stamped(host, "t", "--since", "10m")) == len(lines)
    assert [t for _, t in stamped(host, "t", "--since", "10m", "-n", "1")] == ["partial"]
    assert host.berth.run("logs", "--since", "2099-01-01T00:00:00Z", "t").stdout == ""
    r = host.berth.run("logs", "--since", "soon", "t")
    assert r.returncode == 2 and "invalid --since 'soon'" in r.stderr, r.stderr


def test_timestamps_follow_rotations_and_keeper_handovers(host):
    # ~110-byte lines every 10 ms into 16 KiB files: a rotation every ~1.5 s
    script = ("i=0; while true; do echo line-$i-" + "x" * 100 + "; i=$((i+1)); "
              "sleep 0.01; done")
    host.write({"r": host.svc(["/bin/sh", "-c", script],
                              log={"max_size": "16K", "max_files": 3})})
    assert host.apply().returncode == 0
    logdir = os.path.join(host.berth.root, "services", "r", "log")
    follower = subprocess.Popen(host.berth.cmd("logs", "-f", "--timestamps", "r"),
                                stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(os.path.join(logdir, "times.1")), 20, "a rotation")
        # a keeper killed while the service writes: its successor stamps on
        (keeper,) = keeper_pids(host.berth.root)
        os.kill(keeper, signal.SIGKILL)
        wait_for(lambda: host.status()["r"]["keeper_gone"], 10, "keeper gone")
        assert host.apply().returncode == 0
        wait_for(lambda: os.path.exists(os.path.join(logdir, "times.2")), 20, "two rotations")
        seen = []
        while len(seen) < 300:
            line = follower.stdout.readline()
            assert line, "the follower ended"
            seen.append(line)
    finally:
        follower.kill()
        follower.wait()
    # the follower stamped every line it saw, across the rotations
    followed = [STAMP.match(l.rstrip("\n")) for l in seen]
    assert all(followed), [l for l in seen if not STAMP.match(l)][:3]
    ft = [parse_time(m.group(1)) for m in followed]
    assert ft == sorted(ft)
    assert all("line-" in m.group(2) or m.group(2).startswith("[berth ") for m in followed)
    lines = stamped(host, "r")
    times = [w for w, _ in lines]
    assert times == sorted(times), "times go back"
    nums = [int(t.split("-")[1]) for _, t in lines if t.startswith("line-") and len(t) > 100]
    assert nums == list(range(nums[0], nums[0] + len(nums))), "a line lost or doubled"
    # each index is bounded: an eighth of its file's limit, at least 4 KiB
    for f in os.listdir(logdir):
        if f.startswith("times"):
            size = os.path.getsize(os.path.join(logdir, f))
            assert size % 16 == 0 and size <= 4096, (f, size)
    # lines from a second ago on: the newest ones, none older
    t0 = time.time()
    recent = stamped(host, "r", "--since", "1s")
    assert len(recent) >= 10, recent
    assert all(w >= t0 - 1.05 for w, _ in recent), recent[:3]
    assert recent[0][0] > lines[-1][0] - 1.5, (recent[0], lines[-1])


def test_a_full_time_index_rotates_the_log_early(host):
    # two bytes every 10 ms: the index (16 bytes a record, at most one per
    # 10 ms) would outgrow the log; at 4 KiB (a 16K file's share) it rotates
    host.write({"tiny": host.svc(["/bin/sh", "-c", "while true; do echo x; sleep 0.01; done"],
                                 log={"max_size": "16K", "max_files": 2})})
    assert host.apply().returncode == 0
    logdir = os.path.join(host.berth.root, "services", "tiny", "log")
    wait_for(lambda: os.path.exists(os.path.join(logdir, "current.1")), 30, "a rotation")
    old = os.path.getsize(os.path.join(logdir, "current.1"))
    idx = os.path.getsize(os.path.join(logdir, "times.1"))
    assert old < 8 * 1024 and 4096 - 16 < idx <= 4096, (old, idx)
    assert os.path.getsize(os.path.join(logdir, "times")) <= 4096
    lines = stamped(host, "tiny")
    assert lines and all(t == "x" for _, t in lines[1:]), lines[:3]
