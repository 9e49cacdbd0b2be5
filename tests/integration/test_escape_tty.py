"""Exploit tests (issue 15, DESIGN.md invariant 0), part 3: the caller's
terminal (TIOCSTI, escape sequences in logs) and the caller's environment.
See test_escape.py for the rest."""
import os
import pty
import re
import secrets
import select
import signal
import subprocess
import time

import pytest

from conftest import wait_for
from test_escape import kv as _kv
from test_escape import own_berth, own_host  # noqa: F401 (fixtures)

LOOP = ["/bin/sh", "-c", "exec sleep 100000"]


def kv(text):
    """The probe's lines as the terminal showed them: CRLF, and a prompt of
    the shell where its echo came first."""
    return _kv(re.sub(r"^(\$ )+", "", text.replace("\r", ""), flags=re.M))


def legacy_tiocsti():
    """False when the kernel refuses TIOCSTI to everyone but CAP_SYS_ADMIN
    (CONFIG_LEGACY_TIOCSTI off, Linux >= 6.2)."""
    try:
        return open("/proc/sys/dev/tty/legacy_tiocsti").read().strip() == "1"
    except FileNotFoundError:
        return True   # older kernels: always on


class Shell:
    """An interactive /bin/sh on a real pty, as an admin's root shell: the
    pty is its controlling terminal, and what is pushed into its input
    queue is read and run by it as the next command."""

    def __init__(self, cwd):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PS1": "$ ", "TERM": "dumb",
               "HOME": "/root"}
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.chdir(cwd)
                os.execve("/bin/sh", ["/bin/sh", "-i"], env)
            finally:
                os._exit(127)
        self.pid, self.fd, self.out = pid, fd, b""
        self.n = 0

    def expect(self, pattern, timeout=30):
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        while True:
            m = rx.search(self.out)
            if m:
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {pattern!r} from the shell:\n{self.out.decode(errors='replace')}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"the shell went away:\n{self.out.decode(errors='replace')}")
                self.out += data

    def run(self, cmdline, timeout=60):
        """Run cmdline; then a second command, after which anything pushed
        into the terminal's input queue has been read and run by the shell.
        Returns what the terminal showed meanwhile."""
        self.n += 1
        start = len(self.out)
        os.write(self.fd, f"{cmdline}; echo DONE-{self.n}-$?\n".encode())
        m = self.expect(rf"DONE-{self.n}-(\d+)\r?\n", timeout)
        os.write(self.fd, f"echo SYNC-{self.n}-$((40+2))\n".encode())
        self.expect(rf"SYNC-{self.n}-42\r?\n\$ ", timeout)   # and the next prompt
        return self.out[start:].decode(errors="replace"), int(m.group(1))

    def close(self):
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.fixture
def shell(tmp_path):
    s = Shell(str(tmp_path))
    s.expect(r"\$ ")
    yield s
    s.close()


def injection(tmp_path, what):
    """A command line to push into the terminal, hex-encoded for the probe
    (so that only its injection shows it in clear), and the file it makes."""
    path = tmp_path / f"pwned-{what}-{secrets.token_hex(4)}"
    return f"touch {path}\n".encode().hex(), path


def test_tiocsti_from_exec_and_run_never_reaches_the_callers_terminal(own_host, shell,
                                                                      tmp_path, probe_bin,
                                                                      rootfs):
    """Attack: an admin's root shell runs `berth exec NAME -- CMD` (without
    -t) and `berth run IMAGE CMD` on its terminal; CMD pushes "touch FILE\\n"
    into every terminal it can reach with ioctl(TIOCSTI): its fds 0-2,
    /dev/tty, and after setsid() a standard stream taken as its controlling
    terminal (TIOCSCTTY). Promise: nothing appears as input to the caller's
    shell: the file is never made, the text never echoed; the command runs
    in a session of its own (visible in the container's pid namespace) with
    no controlling terminal (tty_nr 0, /dev/tty fails with ENXIO) — which is
    what still shows the promise on kernels where TIOCSTI is off for all
    (legacy_tiocsti 0). Control: the same probe run straight from the shell
    on the host does inject the command (as root, on every kernel)."""
    berth = own_host.berth
    hexcmd, pwned = injection(tmp_path, "host")
    out, code = shell.run(f"{probe_bin} tiocsti {hexcmd}")
    assert code == 0, out
    # the host's root holds CAP_SYS_ADMIN, which is all that TIOCSTI asks
    # for where legacy_tiocsti is 0 (Debian's 6.12): the control injects
    # on every kernel
    assert pwned.exists(), f"control: TIOCSTI from the host did not inject:\n{out}"
    assert kv(out)["tiocsti-fd0"] == "ok", out

    own_host.write({"web": own_host.svc(LOOP)})
    r = own_host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    b = f"{berth.binary} --root {berth.root}"
    problems = []
    for what, cmd in (("exec", f"{b} exec web --"), ("exec -i", f"{b} exec -i web --"),
                      ("run", f"{b} run {rootfs}")):
        hexcmd, pwned = injection(tmp_path, what.replace(" ", ""))
        out, code = shell.run(f"{cmd} /bin/probe tiocsti {hexcmd}")
        got = kv(out)
        assert code == 0 and "tiocsti-fd0" in got, (what, out)
        pushed = [k for k, v in got.items() if k.startswith("tiocsti") and v == "ok"]
        if pwned.exists() or str(pwned) in out or pushed:
            problems.append(f"{what}: TIOCSTI pushed input to the caller's terminal "
                            f"({', '.join(pushed)}; the shell ran it: {pwned.exists()}):\n{out}")

        out, code = shell.run(f"{cmd} /bin/probe tty-info")
        got = kv(out)
        assert code == 0 and "sid" in got, (what, out)
        if int(got["sid"]) <= 0:
            problems.append(f"{what}: in the caller's session (its sid is 0 inside): {out}")
        if got["tty_nr"] != "0" or got["devtty"] != "ENXIO":
            problems.append(f"{what}: has a controlling terminal: {out}")
    assert not problems, "\n".join(problems)


def test_exec_t_gets_a_pty_of_the_container(own_host, shell, tmp_path):
    """Positive control for the terminal: `berth exec -t` from a terminal
    runs the command on a pty of the container's own devpts (not one of the
    host's), as its controlling terminal, where TIOCSTI works but reaches
    only that pty: the caller's shell runs nothing."""
    berth = own_host.berth
    own_host.write({"web": own_host.svc(LOOP)})
    r = own_host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    host_pts = os.stat("/dev/pts/ptmx").st_dev
    b = f"{berth.binary} --root {berth.root}"
    out, code = shell.run(f"{b} exec -t web -- /bin/probe tty-info")
    got = kv(out)
    assert code == 0 and "fd0" in got, out
    assert got["fd0"].startswith("/dev/pts/") and got["isatty"] == "1", out
    assert got["tty_nr"] != "0" and got["devtty"] == "ok", out
    assert got["fd0_dev"] != f"{os.major(host_pts)}:{os.minor(host_pts)}", \
        f"the pty is the host's devpts: {out}"
    hexcmd, pwned = injection(tmp_path, "exec-t")
    out, code = shell.run(f"{b} exec -t web -- /bin/probe tiocsti {hexcmd}")
    got = kv(out)
    assert code == 0, out
    if legacy_tiocsti():
        assert got["tiocsti-fd0"] == "ok", out   # into its own pty
    assert not pwned.exists(), f"exec -t: TIOCSTI ran a command in the caller's shell:\n{out}"


# --- 8. hygiene -----------------------------------------------------------------------

def environ(pid):
    return open(f"/proc/{pid}/environ", "rb").read().split(b"\0")


def proc_status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return line.split()[1]
    raise KeyError(key)


def test_callers_environment_reaches_no_keeper_init_or_service(host):
    """Attack: a secret in the environment of the shell that runs `berth
    apply` (a token exported in an admin's session, Puppet's environment)
    lingers in every keeper, container init and service, where the
    container (or anyone who can read their environ) finds it. Promise: it
    is in none of them; the keeper runs with cwd "/" and umask 022, and
    `berth exec` does not carry its caller's environment in either.
    Controls: a variable of the spec (`env:`) does reach the service, and
    `berth exec -e KEY` (copy from here) passes the caller's value."""
    secret = "berth-secret-" + secrets.token_hex(8)
    env = dict(os.environ, BERTH_TEST_SECRET=secret)
    host.write({"web": host.svc(LOOP, env={"FROM_SPEC": "visible"})})
    r = host.berth.run("apply", "-f", host.file, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    st = host.status()["web"]
    keeper, init = st["keeper_pid"], st["pid"]
    service = int(open(f"/proc/{init}/task/{init}/children").read().split()[0])
    leaked = [what for what, pid in (("keeper", keeper), ("init", init), ("service", service))
              if [v for v in environ(pid) if secret.encode() in v]]
    assert not leaked, f"the caller's secret is in the environment of: {', '.join(leaked)}"
    assert b"FROM_SPEC=visible" in environ(service)   # control
    assert [v for v in environ(keeper) if v.startswith(b"PATH=")], environ(keeper)
    assert os.readlink(f"/proc/{keeper}/cwd") == "/"
    assert proc_status(keeper, "Umask") == "0022"

    r = host.berth.run("exec", "web", "--", "cat", "/proc/self/environ", env=env)
    assert r.returncode == 0 and "FROM_SPEC=visible" in r.stdout, r.stderr
    assert secret not in r.stdout
    r = host.berth.run("exec", "-e", "BERTH_TEST_SECRET", "web", "--", "cat",
                       "/proc/self/environ", env=env)
    assert f"BERTH_TEST_SECRET={secret}" in r.stdout.split("\0"), r.stdout   # control


PAYLOAD = b"before\x1b]0;pwned\x07\x1b[2Jafter"


def read_pty_until_eof(fd, timeout):
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], deadline - time.monotonic())
        if not r:
            break
        try:
            data = os.read(fd, 65536)
        except OSError:   # EIO: the slave side is closed
            break
        if not data:
            break
        out += data
    return out


def test_logs_on_a_terminal_do_not_pass_escape_sequences(host):
    """Attack: a service writes terminal escape sequences (set the window
    title, clear the screen: "\\x1b]0;pwned\\x07\\x1b[2J") to its log, for
    the admin who runs `berth logs` (and `berth logs -f`) on a terminal.
    Promise: the ESC byte never reaches the terminal as-is, while the rest
    of the line does. Control: through a pipe (not a terminal) the bytes are
    passed unchanged."""
    printf = PAYLOAD.decode().replace("\x1b", "\\033").replace("\x07", "\\007")
    host.write({"esc": host.svc(["/bin/sh", "-c", f"printf '{printf}\\n'; exec sleep 100000"])})
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    piped = wait_for(lambda: (lambda r: r.stdout if b"after" in r.stdout else None)(
        host.berth.run("logs", "esc", text=False)), 10, "the service's line in its log")
    assert PAYLOAD + b"\n" in piped, piped   # control

    for args in (["logs", "esc"], ["logs", "-f", "esc"]):
        master, slave = os.openpty()
        p = subprocess.Popen(host.berth.cmd(*args), stdin=subprocess.DEVNULL, stdout=slave,
                             stderr=slave)
        os.close(slave)
        try:
            if "-f" in args:
                out = b""
                deadline = time.monotonic() + 10
                while b"after" not in out and time.monotonic() < deadline:
                    r, _, _ = select.select([master], [], [], deadline - time.monotonic())
                    if r:
                        out += os.read(master, 65536)
                p.kill()
            else:
                out = read_pty_until_eof(master, 30)
            p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(master)
        assert b"before" in out and b"after" in out, (args, out)
        assert b"\x1b" not in out, f"{args}: the ESC byte reached the terminal: {out!r}"
