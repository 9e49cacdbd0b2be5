"""berth run: limits, signals, exit codes, cleanup and bad input (issue 2)."""
import os
import signal
import subprocess
import time

from conftest import (berth_cgroups, berth_processes, describe_processes, mountinfo,
                      root_cgroups)


def read_line(stream, timeout=10):
    """The next line of a child's output, waiting on the pipe itself."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(stream, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError("no output from the container")
        return stream.readline()
    finally:
        sel.close()


# --- limits ---------------------------------------------------------------

def test_memory_hog_is_oom_killed_and_berth_says_so(berth, rootfs):
    r = berth.run("run", "--memory", "32M", rootfs, "/bin/probe", "hog", "256")
    assert r.returncode == 137, (r.stdout, r.stderr)
    assert "survived" not in r.stdout
    assert "OOM" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert root_cgroups(berth.root) == []


def test_memory_limit_leaves_room_below_it(berth, rootfs):
    r = berth.run("run", "--memory", "64M", rootfs, "/bin/probe", "hog", "16")
    assert r.returncode == 0 and "survived 16 MB" in r.stdout, r.stderr


def test_fork_bomb_is_held_by_pids(berth, rootfs):
    r = berth.run("run", "--pids", "20", rootfs, "/bin/probe", "forkbomb", timeout=60)
    assert r.returncode == 0, r.stderr
    forked = int(r.stdout.split()[0].split("=")[1])
    # init + the probe are 2 of the 20
    assert forked <= 18 and "Resource temporarily unavailable" in r.stdout, r.stdout


def test_cpu_limit_is_written(berth, rootfs):
    # the quota is visible from the host while the container runs
    p = berth.popen("run", "--name", "cpu-test", "--cpus", "0.5", rootfs,
                    "/bin/probe", "term-exit", "0")
    try:
        assert read_line(p.stdout).strip() == "ready"
        # the run's cgroups carry the root's tag: the leftover checks of this file
        # (root_cgroups) see them, and not those of tests running beside
        cgs = [c for c in root_cgroups(berth.root)
               if os.path.basename(c).startswith("_run-cpu-test@")]
        assert cgs, berth_cgroups()
        for cg in cgs:
            if os.path.exists(f"{cg}/cpu.cfs_quota_us"):
                assert open(f"{cg}/cpu.cfs_quota_us").read().strip() == "50000"
            if os.path.exists(f"{cg}/cpu.max"):
                assert open(f"{cg}/cpu.max").read().split() == ["50000", "100000"]
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(10)
    assert p.returncode == 0
    assert root_cgroups(berth.root) == []


def test_nofile_applies(berth, rootfs):
    r = berth.run("run", "--nofile", "123", rootfs, "/bin/sh", "-c", "ulimit -n")
    assert r.returncode == 0 and r.stdout.strip() == "123", r.stderr


# --- signals and exit codes -----------------------------------------------

def test_sigterm_reaches_the_service_which_exits_0(berth, rootfs):
    p = berth.popen("run", rootfs, "/bin/probe", "term-exit", "0")
    assert read_line(p.stdout).strip() == "ready"
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 0


def test_other_signals_are_forwarded(berth, rootfs):
    script = ('trap "echo got-usr1" USR1; trap "echo got-hup; exit 7" HUP; echo ready; '
              'while :; do sleep 0.05; done')
    p = berth.popen("run", rootfs, "/bin/sh", "-c", script)
    assert read_line(p.stdout).strip() == "ready"
    p.send_signal(signal.SIGUSR1)
    assert read_line(p.stdout).strip() == "got-usr1"
    p.send_signal(signal.SIGHUP)
    assert read_line(p.stdout).strip() == "got-hup"
    assert p.wait(10) == 7


def test_stop_signal_option(berth, rootfs):
    script = 'trap "echo got-int; exit 5" INT; echo ready; while :; do sleep 0.05; done'
    p = berth.popen("run", "--stop-signal", "SIGINT", rootfs, "/bin/sh", "-c", script)
    assert read_line(p.stdout).strip() == "ready"
    p.send_signal(signal.SIGTERM)
    assert read_line(p.stdout).strip() == "got-int"
    assert p.wait(10) == 5


def test_service_ignoring_sigterm_is_killed_after_the_stop_timeout(berth, rootfs):
    p = berth.popen("run", "--stop-timeout", "500ms", rootfs, "/bin/probe", "ignore-term")
    assert read_line(p.stdout).strip() == "ready"
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    rc = p.wait(10)
    elapsed = time.monotonic() - t0
    assert rc == 137
    assert 0.45 <= elapsed < 5, elapsed
    err = p.stderr.read()
    assert "did not stop within 500 ms" in err and "SIGKILL" in err


def test_zombies_left_behind_are_reaped(berth, rootfs):
    r = berth.run("run", rootfs, "/bin/probe", "orphans", "20")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "zombies=0"


def test_exit_codes_propagate(berth, rootfs):
    assert berth.run("run", rootfs, "/bin/true").returncode == 0
    assert berth.run("run", rootfs, "/bin/probe", "exit", "3").returncode == 3
    assert berth.run("run", rootfs, "/bin/probe", "kill-self", "9").returncode == 137
    assert berth.run("run", rootfs, "/bin/probe", "kill-self", "15").returncode == 143


def test_berth_run_killed_takes_its_container_along(berth, rootfs):
    p = berth.popen("run", "--name", "orphan-check", rootfs, "/bin/probe", "ignore-term")
    assert read_line(p.stdout).strip() == "ready"
    init = [int(x) for x in open(f"/proc/{p.pid}/task/{p.pid}/children").read().split()]
    assert len(init) == 1
    p.kill()
    p.wait(10)
    # the init has PR_SET_PDEATHSIG: it and its pid namespace die with berth
    pidfd = os.pidfd_open(init[0]) if os.path.exists(f"/proc/{init[0]}") else None
    if pidfd is not None:
        import select
        assert select.select([pidfd], [], [], 10)[0], "container outlived berth run"
        os.close(pidfd)


# --- nothing leaks ----------------------------------------------------------

def test_200_sequential_runs_leave_nothing_behind(berth, rootfs, berth_bin):
    mounts_before = mountinfo()
    for i in range(200):
        r = berth.run("run", "--memory", "64M", "--pids", "64", "--cpus", "1", rootfs,
                      "/bin/sh", "-c", "echo x > /f; sleep 0 & wait")
        assert r.returncode == 0, (i, r.stderr)
    assert mountinfo() == mounts_before
    assert root_cgroups(berth.root) == []
    assert os.listdir(os.path.join(berth.root, "run")) == []
    left = berth_processes(berth_bin)
    assert left == [], describe_processes(left)


# --- bad input ----------------------------------------------------------------

def assert_one_line_failure(berth, r, *fragments):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    run = os.path.join(berth.root, "run")
    assert not os.path.exists(run) or os.listdir(run) == []
    assert root_cgroups(berth.root) == []


def test_missing_rootfs(berth, tmp_path):
    r = berth.run("run", str(tmp_path / "nope"), "/bin/true")
    assert_one_line_failure(berth, r, "nope", "No such file")


def test_command_not_found(berth, rootfs):
    r = berth.run("run", "--memory", "64M", rootfs, "/usr/bin/nonexistent")
    assert_one_line_failure(berth, r, "'/usr/bin/nonexistent' not found")
    r = berth.run("run", rootfs, "nonexistent-cmd")
    assert_one_line_failure(berth, r, "'nonexistent-cmd' not found")


def test_unknown_user(berth, rootfs):
    r = berth.run("run", "-u", "mallory", rootfs, "/bin/true")
    assert_one_line_failure(berth, r, "user 'mallory' not found")
    r = berth.run("run", "-u", "app:nogroupnamed", rootfs, "/bin/true")
    assert_one_line_failure(berth, r, "group 'nogroupnamed' not found")


def test_malformed_limits_and_flags(berth, rootfs):
    cases = [
        (["--memory", "12Q"], "--memory '12Q'"),
        (["--memory", "-5M"], "--memory"),
        (["--cpus", "lots"], "--cpus 'lots'"),
        (["--pids", "0"], "--pids '0'"),
        (["--nofile", "x"], "--nofile 'x'"),
        (["--cap-add", "CAP_BOGUS"], "unknown capability 'CAP_BOGUS'"),
        (["--stop-signal", "SIGNOPE"], "unknown signal 'SIGNOPE'"),
        (["--stop-timeout", "soon"], "--stop-timeout 'soon'"),
        (["--network", "bridge"], "--network 'bridge'"),
        (["-v", "relative:/x"], "--mount 'relative:/x'"),
        (["--tmpfs", "/x:big"], "--tmpfs '/x:big'"),
        (["--frobnicate"], "unknown option '--frobnicate'"),
    ]
    for opts, fragment in cases:
        r = berth.run("run", *opts, rootfs, "/bin/true")
        assert_one_line_failure(berth, r, fragment)
    assert_one_line_failure(berth, berth.run("run", "--memory"), "needs a value")
    assert_one_line_failure(berth, berth.run("run"), "no rootfs given")
    assert_one_line_failure(berth, berth.run("run", rootfs), "no command given")


def test_help(berth):
    r = berth.run("run", "--help")
    assert r.returncode == 0
    for opt in ("--memory", "--cap-add", "--stop-timeout", "--read-only", "--tmpfs", "Exit status"):
        assert opt in r.stdout
    r = berth.run("--help")
    assert r.returncode == 0 and "run" in r.stdout
