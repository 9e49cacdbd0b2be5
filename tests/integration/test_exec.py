"""berth exec: a command inside a running service's namespaces and cgroup
(issue 6)."""
import fcntl
import os
import re
import pty
import select
import signal
import struct
import subprocess
import termios
import time

from conftest import keeper_pids, wait_for

LOOP = ["/bin/sh", "-c", "echo hi > /marker; exec sleep 100000"]
NS = ("mnt", "uts", "ipc", "pid", "net")


def svc_pid(init_pid):
    """The service process: the one child of the container's init."""
    kids = open(f"/proc/{init_pid}/task/{init_pid}/children").read().split()
    return int(kids[0])


def proc_status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return line.split()[1:]
    raise KeyError(key)


def up(host, services):
    host.write(services)
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    st = host.status()
    assert all(st[n]["state"] == "running" for n in services), st
    return {n: st[n]["pid"] for n in services}


def ex(host, *args, **kw):
    return host.berth.run("exec", *args, **kw)


def ns_links(pid):
    return [os.readlink(f"/proc/{pid}/ns/{n}") for n in NS]


def test_exec_sees_the_containers_pids_files_and_namespaces(host, tmp_path):
    pids = up(host, {"web": host.svc(LOOP),
                     "quiet": host.svc(LOOP, network="none", hostname="quiet")})

    # pid namespace: 1 is the container's init, 2 the service, then us
    r = ex(host, "web", "--", "ps", "-o", "pid,args")
    assert r.returncode == 0, r.stderr
    rows = {int(l.split(None, 1)[0]): l.split(None, 1)[1]
            for l in r.stdout.splitlines()[1:]}
    assert 1 in rows and rows[2] == "sleep 100000", r.stdout
    assert rows[1].startswith("/proc/self/exe") or "keeper" in rows[1] or "berth" in rows[1]
    assert sorted(rows)[:2] == [1, 2] and max(rows) > 2
    r = ex(host, "web", "--", "cat", "/proc/2/cmdline")
    assert r.stdout.split("\0")[:2] == ["sleep", "100000"]

    # filesystem: the service's own writes are visible, the host's files not
    r = wait_for(lambda: (lambda r: r if r.returncode == 0 else None)(
        ex(host, "web", "--", "cat", "/marker")), what="the service's /marker")
    assert r.stdout == "hi\n"
    secret = tmp_path / "host-only"
    secret.write_text("host\n")
    r = ex(host, "web", "--", "cat", str(secret))
    assert r.returncode == 1 and "host" not in r.stdout
    r = ex(host, "web", "--", "ls", host.berth.root)
    assert r.returncode != 0

    # every namespace is the service's (for network none a private one)
    for name in ("web", "quiet"):
        service = svc_pid(pids[name])
        r = ex(host, name, "--", "sh", "-c",
               "for n in " + " ".join(NS) + "; do readlink /proc/self/ns/$n; done")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ns_links(service), name
    assert ns_links(svc_pid(pids["quiet"]))[4] != os.readlink("/proc/self/ns/net")
    assert ex(host, "quiet", "--", "hostname").stdout == "quiet\n"
    r = ex(host, "quiet", "--", "cat", "/proc/net/dev")
    assert [l.split(":")[0].strip() for l in r.stdout.splitlines()[2:]] == ["lo"]


def test_exec_takes_the_services_user_caps_env_workdir_and_limits(host):
    pids = up(host, {
        "priv": host.svc(LOOP, env={"FOO": "bar"}, workdir="/tmp",
                         capabilities={"add": ["NET_ADMIN"], "drop": ["CHOWN"]},
                         limits={"nofile": 1234}),
        "plain": host.svc(["/bin/sh", "-c", "exec sleep 100000"], user="app"),
    })
    for name in ("priv", "plain"):
        service = svc_pid(pids[name])
        r = ex(host, name, "--", "sh", "-c",
               "id -u; id -g; grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb):' /proc/self/status; "
               "grep NoNewPrivs /proc/self/status")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == proc_status(service, "Uid")[0]
        assert lines[1] == proc_status(service, "Gid")[0]
        for line in lines[2:7]:
            key, value = line.split(":")
            assert value.split() == proc_status(service, key), (name, key)
        assert lines[7].split() == ["NoNewPrivs:", "1"]
    # priv runs as root with NET_ADMIN (12) and without CHOWN (0)
    eff = int(proc_status(svc_pid(pids["priv"]), "CapEff")[0], 16)
    assert eff & (1 << 12) and not eff & 1
    assert ex(host, "plain", "--", "id", "-un").stdout == "app\n"

    r = ex(host, "priv", "--", "sh", "-c", 'echo "$FOO $PWD"; ulimit -n')
    assert r.stdout == "bar /tmp\n1234\n", r.stderr
    r = ex(host, "-e", "FOO=baz", "-e", "NEW=1", "-w", "/home", "priv", "--",
           "sh", "-c", 'echo "$FOO $NEW $PWD"')
    assert r.stdout == "baz 1 /home\n", r.stderr
    # -u: another user of the image, with its HOME
    r = ex(host, "-u", "app", "priv", "--", "sh", "-c", 'id -u; echo "$HOME"')
    assert r.stdout == "1000\n/home/app\n", r.stderr
    r = ex(host, "--user", "0:10", "plain", "--", "sh", "-c", "id -u; id -g")
    assert r.stdout == "0\n10\n", r.stderr
    r = ex(host, "-w", "/nonexistent", "priv", "--", "true")
    assert r.returncode == 1 and "'/nonexistent'" in r.stderr


def test_exec_joins_the_services_cgroup(host):
    pids = up(host, {"capped": host.svc(LOOP, limits={"memory": "64M", "pids": 50})})
    service = svc_pid(pids["capped"])

    def controllers(text):
        out = {}
        for line in text.splitlines():
            _, ctl, path = line.split(":", 2)
            for c in ctl.split(",") or [""]:
                out[c] = path
        return out

    want = controllers(open(f"/proc/{service}/cgroup").read())
    # without systemd: "berth/<name>@<root hash>/container" under a root other
    # than /var/lib/berth (its keeper is in ".../keeper")
    mine = next(p for p in want.values() if p.startswith("/berth/capped"))
    assert re.fullmatch(r"/berth/capped@[0-9a-f]{8}/container", mine), want
    keeper = controllers(open(f"/proc/{host.status()['capped']['keeper_pid']}/cgroup").read())
    ctls = ("memory", "pids") if "memory" in want else ("",)  # v1 (or hybrid), or v2
    for ctl in ctls:
        assert want[ctl] == mine and keeper[ctl] == mine[:-len("container")] + "keeper"
    # inside, the command is in the container's cgroup namespace: its cgroup is "/"
    r = ex(host, "capped", "--", "cat", "/proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    got = controllers(r.stdout)
    assert all(got[ctl] == "/" for ctl in ctls), got

    # and the cgroup counts it while it runs
    p = host.berth.popen("exec", "capped", "--", "sh", "-c", "echo $$; exec sleep 1000")
    try:
        inner = int(p.stdout.readline())
        procs_files = [f"/sys/fs/cgroup/pids{mine}/cgroup.procs",
                       f"/sys/fs/cgroup{mine}/cgroup.procs"]
        procs = next(f for f in procs_files if os.path.exists(f))
        members = [int(x) for x in open(procs).read().split()]
        host_pids = [m for m in members if m != service and m != pids["capped"]]
        assert len(host_pids) == 1
        assert proc_status(host_pids[0], "NSpid")[-1] == str(inner)
    finally:
        p.kill()
        p.wait()


def test_exit_codes_and_errors(host):
    up(host, {"web": host.svc(LOOP)})
    assert ex(host, "web", "--", "sh", "-c", "exit 3").returncode == 3
    assert ex(host, "web", "--", "sh", "-c", "kill -9 $$").returncode == 137
    assert ex(host, "web", "true").returncode == 0  # "--" is optional

    r = ex(host, "web", "--", "no-such-command", "x")
    assert r.returncode == 127
    assert r.stderr.strip().count("\n") == 0
    assert "'no-such-command' not found" in r.stderr and "'web'" in r.stderr
    r = ex(host, "web", "--", "/etc/passwd")
    assert r.returncode == 126 and r.stderr.count("\n") == 1

    r = ex(host, "nope", "--", "true")
    assert r.returncode == 1 and r.stderr == \
        f"berth exec: no service 'nope' under '{host.berth.root}'\n"
    assert ex(host, "web").returncode == 2
    assert ex(host, "--bogus", "web", "--", "true").returncode == 2

    assert host.berth.run("stop", "web").returncode == 0
    r = ex(host, "web", "--", "true")
    assert r.returncode == 1
    assert r.stderr == "berth exec: service 'web' is not running (state: stopped)\n"


def test_stdin_only_with_i_and_signals_are_forwarded(host):
    up(host, {"web": host.svc(LOOP)})
    r = ex(host, "-i", "web", "--", "cat", input="hello\n")
    assert r.stdout == "hello\n"
    r = ex(host, "web", "--", "cat", input="hello\n")
    assert r.returncode == 0 and r.stdout == ""

    p = host.berth.popen("exec", "web", "--", "probe", "term-exit", "7")
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=10) == 7
    finally:
        p.kill()
        p.wait()


def test_timeout_kills_the_command_and_what_it_started(host):
    """The health-check path: berth_exec_wait's timeout with the command in
    a process group of its own."""
    up(host, {"web": host.svc(LOOP)})
    t0 = time.monotonic()
    r = ex(host, "--timeout", "300ms", "web", "--", "sh", "-c",
           "sleep 1000 & echo $!; sleep 999")
    took = time.monotonic() - t0
    assert r.returncode == 124, r.stderr
    assert r.stderr == "berth exec: the command in 'web' did not finish in time; killed\n"
    assert 0.3 <= took < 5, took
    orphan = r.stdout.strip()
    assert orphan.isdigit()

    def gone():
        ps = ex(host, "web", "--", "ps", "-o", "pid,args").stdout
        left = [l.split(None, 1)[1] for l in ps.splitlines()[1:]]
        return "sleep 1000" not in left and "sleep 999" not in left
    wait_for(gone, 5, "the command's children to die")
    r = ex(host, "--timeout", "10s", "web", "--", "sh", "-c", "exit 4")
    assert r.returncode == 4
    assert ex(host, "--timeout", "0", "web", "--", "true").returncode == 2


def read_until_eof(fd, timeout=20):
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not r:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        out += chunk
    return out


def read_until(fd, marker, timeout=20):
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if r:
            out += os.read(fd, 4096)
    assert marker in out, out
    return out


def spawn_on_pty(host, args, rows, cols):
    """berth under a new pseudo-terminal of the given size, as its session
    leader (as in a terminal emulator): (pid, master fd)."""
    pid, master = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.execv(host.berth.binary, host.berth.cmd(*args))
    return pid, master


def test_tty_is_a_container_pty_of_the_callers_size(host):
    up(host, {"web": host.svc(LOOP, user="app")})
    pid, master = spawn_on_pty(host, ["exec", "-t", "web", "--", "sh", "-c",
                                      "tty; stty size; ls -l $(tty); exit 5"], 33, 101)
    out = read_until_eof(master).decode()
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 5, out
    lines = out.replace("\r", "").splitlines()
    assert lines[0].startswith("/dev/pts/"), out
    assert lines[1] == "33 101", out
    # the container's own devpts instance, owned by the service's user
    assert " app " in lines[2] and lines[2].endswith(lines[0]), out

    # without a terminal, -t is ignored
    r = ex(host, "-t", "web", "--", "sh", "-c", "tty")
    assert r.stdout == "not a tty\n"


def test_interactive_tty_relays_input_and_window_size(host):
    up(host, {"web": host.svc(LOOP)})
    pid, master = spawn_on_pty(host, ["exec", "-it", "web", "--", "sh", "-c",
                                      "stty size; read x; echo got=$x; stty size"], 24, 80)
    read_until(master, b"24 80")
    # raw mode here: our terminal stopped echoing; a resize follows
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 132, 0, 0))
    os.write(master, b"abc\r")
    out = read_until_eof(master).decode()
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert "got=abc" in out and out.replace("\r", "").splitlines()[-1] == "50 132", out
