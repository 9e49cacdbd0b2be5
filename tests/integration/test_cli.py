"""Command-line conventions (issue 11): options anywhere on the line (GNU
style) except for run and exec, `--` ending options, usage-error exit codes
(diff's own), colour rules, -q for apply, columns that fit long names."""
import json
import os
import pty
import select
import subprocess

import pytest

from conftest import wait_for

LOOP = ["/bin/sh", "-c", "echo one; echo two; echo three; exec sleep 100000"]
ESC = "\033["

# every verb but the internal keeper; run and exec stop at their operand
VERBS = ["validate", "diff", "apply", "agent", "ps", "status", "logs", "stop", "restart",
         "fetch", "pin", "images", "gc", "schema", "export", "import", "stats", "events"]


def up(host, services):
    host.write(services)
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    st = host.status()
    assert all(st[n]["state"] == "running" for n in services), st
    return st


def raw(berth, *args, **kw):
    """berth with exactly these arguments (no --root put first)."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    return subprocess.run([berth.binary, *args], **kw)


@pytest.mark.parametrize("verb", VERBS)
def test_help_after_an_operand(berth, verb):
    # before GNU-style parsing, the operand ended the options: "unexpected
    # argument 'extra'" for some verbs, 'extra' taken as a name by others
    r = raw(berth, verb, "extra", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Usage: berth {verb}"), r.stdout


def same(a, b):
    assert a.returncode == b.returncode, (a, b)
    assert a.stdout == b.stdout, (a.stdout, b.stdout)
    return a


def test_options_after_operands_work_as_before_them(host, image, http_dir, tmp_path):
    """Table-driven: each command with its options before and after its
    operand (or, with none, after its other options) gives the same result."""
    b = host.berth
    R = b.root
    up(host, {"web": host.svc(LOOP), "db": host.svc(LOOP)})
    wait_for(lambda: "three" in b.run("logs", "web").stdout, what="web's output")
    other = tmp_path / "other.yaml"
    other.write_text(open(host.file).read())
    F = host.file
    url, digest = image["url"], image["digest"]
    table = [
        # (positive control: what the option does, before, after)
        (["validate", "--json", F], ["validate", F, "--json"]),
        (["--root", R, "diff", "--json", "-f", F], ["diff", "-f", F, "--json", "--root", R]),
        (["--root", R, "ps", "--json", "web"], ["ps", "web", "--json", "--root", R]),
        (["--root", R, "status", "--json", "web"], ["status", "web", "--json", "--root", R]),
        (["--root", R, "status", "--format", "prometheus", "db"],
         ["status", "db", "--format", "prometheus", "--root", R]),
        (["--root", R, "logs", "-n", "1", "web"], ["logs", "web", "-n", "1", "--root", R]),
        (["--root", R, "logs", "-t", "--since", "1h", "web"],
         ["logs", "web", "--since", "1h", "-t", "--root", R]),
        (["--root", R, "events", "--json", "--since", "1h", "web"],
         ["events", "web", "--since", "1h", "--json", "--root", R]),
        (["--root", R, "images", "--json"], ["images", "--json", "--root", R]),
        (["--root", R, "gc", "--dry-run"], ["gc", "--dry-run", "--root", R]),
        (["schema", "-q"], ["schema", "-q"]),
        (["--root", R, "fetch", "--digest", digest, url], ["fetch", url, "--digest", digest, "--root", R]),
        (["--root", R, "pin", url], ["pin", url, "--root", R]),
        (["--root", R, "apply", "-q", "-f", F], ["apply", "-f", F, "-q", "--root", R]),
    ]
    for before, after in table:
        a = raw(b, *before)
        assert a.returncode == 0, (before, a.stderr)
        same(a, raw(b, *after))
    # what the options did (the positive controls)
    assert json.loads(raw(b, "validate", F, "--json").stdout)["valid"] is True
    st = json.loads(raw(b, "status", "web", "--json", "--root", R).stdout)
    assert [s["name"] for s in st["services"]] == ["web"]
    assert raw(b, "logs", "web", "-n", "1", "--root", R).stdout == "three\n"
    assert raw(b, "logs", "web", "-t", "--since", "1h", "--root", R).stdout.endswith("Z three\n")
    assert '"cause":"start"' in raw(b, "events", "web", "--json", "--root", R).stdout
    assert 'service="db"' in raw(b, "status", "db", "--format", "prometheus", "--root", R).stdout
    assert raw(b, "apply", "-f", F, "-q", "--root", R).stdout == ""

    # stop and restart: the service named, the root after it
    pid = host.status()["db"]["pid"]
    r = raw(b, "restart", "db", "--root", R)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: host.status()["db"]["pid"] not in (0, pid), what="db restarted")
    r = raw(b, "stop", "db", "--root", R)
    assert r.returncode == 0 and "stopped 'db'" in r.stdout, r.stderr
    assert host.status()["db"]["state"] == "stopped"
    assert host.status()["web"]["state"] == "running"

    # the file after the agent's options: it converges db again and is
    # stopped with SIGTERM
    p = subprocess.Popen([b.binary, "agent", "-f", F, "--root", R, "--resync", "1h"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: host.status()["db"]["state"] == "running", timeout=30, what="agent")
    finally:
        p.terminate()
        p.wait(timeout=30)


def test_logs_follow_after_the_name(host):
    """The README's own example: berth logs web -n 50 -f"""
    b = host.berth
    up(host, {"web": host.svc(LOOP)})
    wait_for(lambda: "three" in b.run("logs", "web").stdout, what="web's output")
    p = subprocess.Popen([b.binary, "logs", "web", "-n", "2", "-f", "--root", b.root],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [p.stdout.readline(), p.stdout.readline()]
        assert lines == ["two\n", "three\n"]
        # -f: still running, following
        assert p.poll() is None
    finally:
        p.kill()
        p.wait()


def test_run_and_exec_options_end_at_their_operand(host, rootfs):
    b = host.berth
    # options before the rootfs are run's, after it the command's
    r = b.run("run", "-e", "A=1", rootfs, "/bin/sh", "-c", 'echo "$A" "$@"', "sh", "-e", "--root")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "1 -e --root\n"
    # -- before the rootfs ends run's options; -- after it starts the command
    r = b.run("run", "-e", "A=2", "--", rootfs, "--", "/bin/sh", "-c", 'echo "$A"')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "2\n"

    up(host, {"web": host.svc(LOOP)})
    r = b.run("exec", "-e", "B=3", "web", "/bin/sh", "-c", 'echo "$B" "$@"', "sh", "-u", "x")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "3 -u x\n"
    r = b.run("exec", "-e", "B=4", "--", "web", "--", "/bin/printf", "%s|", "-e", "$B")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "-e|$B|"


def test_double_dash_ends_options(berth, tmp_path):
    weird = tmp_path / "--weird.yaml"
    weird.write_text("version: 1\nservices: {}\n")
    r = raw(berth, "validate", "--json", "--", "--weird.yaml", cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["valid"] is True
    # without --, it is an option (the positive control)
    r = raw(berth, "validate", "--weird.yaml", cwd=str(tmp_path))
    assert r.returncode == 2
    # after --, "--json" is a service name to list, not an option
    r = raw(berth, "ps", "--root", berth.root, "--", "--json")
    assert r.returncode == 0 and r.stdout.startswith("NAME"), r.stdout
    r = raw(berth, "logs", "--root", berth.root, "--", "-n")
    assert r.returncode == 1 and "no service '-n'" in r.stderr


USAGE = [
    (["validate", "--bogus"], 2),
    (["ps", "--bogus"], 2),
    (["status", "--format", "xml"], 2),
    (["logs"], 2),
    (["logs", "a", "b"], 2),
    (["logs", "-n", "x", "web"], 2),
    (["stop"], 2),
    (["restart", "--bogus", "web"], 2),
    (["fetch", "http://x/y"], 2),
    (["pin"], 2),
    (["images", "extra"], 2),
    (["gc", "--bogus"], 2),
    (["schema", "extra"], 2),
    (["agent", "extra"], 2),
    (["apply", "--bogus"], 2),
    (["apply", "extra"], 2),
    (["--bogus", "ps"], 2),
    (["--color=sometimes", "ps"], 2),
    (["ps", "--color", "sometimes"], 2),
    (["nosuchverb"], 2),
    # run exits with the service's code, and 1 when none started (its --help)
    (["run"], 1),
    (["exec"], 2),
    # diff's 2 means "changes pending"
    (["diff", "--bogus"], 64),
    (["diff", "extra"], 64),
    (["diff", "--color=sometimes"], 64),
    (["--bogus", "diff"], 64),
    (["--root", "/nonexistent", "--bogus", "diff"], 64),
    (["apply", "--dry-run", "--bogus"], 64),
    (["apply", "--bogus", "--dry-run"], 64),
]


@pytest.mark.parametrize("args,code", USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors(berth, args, code):
    r = raw(berth, *args)
    assert r.returncode == code, r.stdout + r.stderr
    assert r.stderr.strip(), "a usage error says what is wrong"


def test_diff_exit_codes_stay_apart(host):
    """The positive control for diff's usage code: 0 in sync, 2 pending, 1
    error, and 64 only for usage."""
    host.write({"web": host.svc(LOOP)})
    assert host.diff().returncode == 2
    assert host.apply("--dry-run").returncode == 2
    assert host.berth.run("diff", "-f", "/nonexistent.yaml").returncode == 1
    assert host.apply().returncode == 0
    assert host.diff().returncode == 0
    assert host.diff("--bogus").returncode == 64
    r = raw(host.berth, "diff", "--help")
    assert "64 usage error" in r.stdout


def on_pty(cmd, env):
    """Run cmd with its stdout on a new pseudo-terminal; its output."""
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE, env=env)
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 30)
        assert r, "no output on the pty"
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    p.wait(timeout=30)
    return p.returncode, out.decode()


COLOUR = [
    # (environment, options, on a pty, coloured)
    ({}, [], True, True),
    ({"NO_COLOR": "1"}, [], True, False),
    ({"NO_COLOR": ""}, [], True, True),  # no-color.org: set and not empty
    ({"TERM": "dumb"}, [], True, False),
    ({}, ["--color=never"], True, False),
    ({}, ["--color", "auto"], True, True),
    ({}, [], False, False),
    ({}, ["--color=always"], False, True),
    ({"NO_COLOR": "1"}, ["--color=always"], True, True),  # the command line wins
    ({"TERM": "dumb"}, ["--color=always"], False, True),
    ({}, ["--color=auto"], False, False),
]


@pytest.mark.parametrize("env,opts,tty,coloured", COLOUR,
                         ids=[f"{e}-{o}-{'pty' if t else 'pipe'}" for e, o, t, _ in COLOUR])
def test_colour_rules(host, env, opts, tty, coloured):
    host.write({"web": host.svc(LOOP)})
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    base["TERM"] = "xterm"
    base.update(env)
    cmd = host.berth.cmd("diff", "-f", host.file, *opts)
    if tty:
        rc, out = on_pty(cmd, base)
    else:
        r = subprocess.run(cmd, capture_output=True, text=True, env=base, timeout=60)
        rc, out = r.returncode, r.stdout
    assert rc == 2, out
    assert "+ web" in out.replace(ESC + "32m", "")  # the plan is there either way
    assert (ESC + "32m+" in out) == coloured, repr(out)
    # apply --dry-run prints the same plan under the same rules
    if not tty:
        r = subprocess.run(host.berth.cmd("apply", "--dry-run", "-f", host.file, *opts),
                           capture_output=True, text=True, env=base, timeout=60)
        assert (ESC + "32m+" in r.stdout) == coloured, repr(r.stdout)


def test_quiet_apply(host):
    host.write({"web": host.svc(LOOP)})
    r = host.apply("-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    assert host.status()["web"]["state"] == "running"
    # without -q, the report (the positive control)
    host.write({"web": host.svc(LOOP, env={"X": "1"})})
    r = host.apply()
    assert r.returncode == 0 and "web" in r.stdout and "replaced" in r.stdout, r.stdout
    # -q still reports what failed, on stderr
    bad = host.svc(LOOP)
    bad["image"]["digest"] = "sha256:" + "0" * 64
    host.write({"web": host.svc(LOOP, env={"X": "1"}), "broken": bad})
    r = host.apply("-q")
    assert r.returncode == 1
    assert r.stdout == ""
    assert "broken" in r.stderr and "FAILED" in r.stderr, r.stderr


def test_columns_fit_long_names(host):
    long = "a-service-name-well-over-twenty-four-characters"
    st = up(host, {long: host.svc(LOOP), "web": host.svc(LOOP)})
    r = host.berth.run("ps")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    header = lines[0]
    col = header.index("STATE")
    assert col > len(long)
    rows = {line.split()[0]: line for line in lines[1:]}
    for name in (long, "web"):
        assert rows[name][col:].startswith("running"), (header, rows[name])
        pid = str(st[name]["pid"])
        assert rows[name][header.index("INIT"):].startswith(pid), (header, rows[name])
    # the plan's and apply's columns too
    host.write({long: host.svc(LOOP, env={"X": "1"}), "web": host.svc(LOOP, env={"X": "1"})})
    out = host.diff().stdout
    marks = [line for line in out.splitlines() if line.startswith("  ~ ")]
    assert len(marks) == 2
    assert len({line.index("replace") for line in marks}) == 1, marks
    out = host.apply().stdout
    done = [line for line in out.splitlines() if line.endswith("replaced")]
    assert len(done) == 2 and len({line.index("replaced") for line in done}) == 1, done


def test_status_tells_a_dead_agent_from_a_live_one(host):
    b = host.berth
    host.write({})
    st = json.loads(b.run("status", "--json").stdout)
    assert st["agent"] == {"running": False, "running_pid": None}  # none ever ran
    p = subprocess.Popen(b.cmd("agent", "-f", host.file, "--resync", "1h"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # no event says when the agent holds its lock and wrote agent.json
        live = wait_for(lambda: (lambda a: a if a.get("running") and a.get("pid") else None)(
            json.loads(b.run("status", "--json").stdout)["agent"]), what="the agent")
        assert live["running_pid"] == p.pid and live["pid"] == p.pid, live
        assert "WARNING: the agent" not in b.run("ps").stdout
    finally:
        p.kill()
        p.wait()
    dead = json.loads(b.run("status", "--json").stdout)["agent"]
    assert dead["running"] is False and dead["running_pid"] is None, dead
    assert dead["pid"] == p.pid  # what it last wrote stays
    assert f"WARNING: the agent (last pid {p.pid}) is not running" in b.run("ps").stdout
