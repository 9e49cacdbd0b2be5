"""berth run, seen from inside the container (issue 2 acceptance)."""
import os
import socket
import subprocess

# podman's default set: Docker's (0xA80425FB) without NET_RAW (13), MKNOD (27)
# and AUDIT_WRITE (29), since berth's default network is the host's
DOCKER_DEFAULT_CAPS = 0xA80425FB
PODMAN_DEFAULT_CAPS = DOCKER_DEFAULT_CAPS & ~((1 << 13) | (1 << 27) | (1 << 29))
CAP_CHOWN, CAP_NET_ADMIN, CAP_SYS_ADMIN = 0, 12, 21


def sh(berth, rootfs, script, *opts, check=True):
    r = berth.run("run", *opts, rootfs, "/bin/sh", "-c", script)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def status_field(text, field):
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{field} not in {text!r}")


def test_service_is_pid_2_under_init_and_ps_sees_only_the_container(berth, rootfs):
    r = sh(berth, rootfs, 'echo "me=$$"; ps -o pid,comm; true')
    lines = r.stdout.splitlines()
    assert lines[0] == "me=2"
    pids = sorted(int(l.split()[0]) for l in lines[2:])
    # init (1), the shell (2) and ps itself: nothing from the host
    assert pids[:2] == [1, 2] and len(pids) == 3, r.stdout


def test_host_network_by_default(berth, rootfs):
    host = os.readlink("/proc/self/ns/net")
    r = sh(berth, rootfs, "readlink /proc/self/ns/net")
    assert r.stdout.strip() == host


def test_network_none_has_only_lo_up(berth, rootfs):
    host = os.readlink("/proc/self/ns/net")
    r = sh(berth, rootfs, "readlink /proc/self/ns/net; ls /sys/class/net; cat /sys/class/net/lo/operstate /sys/class/net/lo/flags",
           "--network", "none")
    ns, *rest = r.stdout.split()
    assert ns != host
    assert rest[0] == "lo" and len(rest) == 3, r.stdout
    assert int(rest[2], 16) & 0x1, "lo is not up"  # IFF_UP


def test_hostname(berth, rootfs):
    r = sh(berth, rootfs, "hostname", "--hostname", "web-1")
    assert r.stdout.strip() == "web-1"
    r = sh(berth, rootfs, "hostname")
    assert r.stdout.strip() == socket.gethostname()


def test_proc_belongs_to_the_container(berth, rootfs):
    r = sh(berth, rootfs, "ls /proc | grep -c '^[0-9]'; readlink /proc/self/ns/pid; cat /proc/1/cmdline | tr '\\0' ' '")
    count, pidns, cmdline = r.stdout.splitlines()
    assert int(count) <= 4  # init, sh, ls, grep
    assert pidns != os.readlink("/proc/self/ns/pid")
    assert cmdline.strip() == "berth-init"  # berth's init, not the host's, nor berth run's


def test_capabilities_default_add_drop(berth, rootfs):
    script = "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status"
    eff = lambda r: int(status_field(r.stdout, "CapEff"), 16)
    r = sh(berth, rootfs, script)
    assert eff(r) == PODMAN_DEFAULT_CAPS == 0x800405FB
    assert int(status_field(r.stdout, "CapBnd"), 16) == PODMAN_DEFAULT_CAPS
    r = sh(berth, rootfs, script, "--cap-add", "NET_ADMIN")
    assert eff(r) == PODMAN_DEFAULT_CAPS | (1 << CAP_NET_ADMIN)
    r = sh(berth, rootfs, script, "--cap-drop", "CHOWN", "--cap-add", "CAP_SYS_ADMIN")
    assert eff(r) == (PODMAN_DEFAULT_CAPS & ~(1 << CAP_CHOWN)) | (1 << CAP_SYS_ADMIN)


def test_no_new_privs(berth, rootfs):
    r = sh(berth, rootfs, "cat /proc/self/status")
    assert status_field(r.stdout, "NoNewPrivs") == "1"


def test_proc_kcore_masked_and_sys_read_only(berth, rootfs):
    # /proc/kcore exists only with CONFIG_PROC_KCORE; check every masked file
    # this kernel has, and that those it lacks do not appear either
    masked = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"]
    script = "; ".join(f"stat -c %t:%T {p} 2>/dev/null || echo absent" for p in masked)
    r = sh(berth, rootfs, script + "; wc -c < /proc/keys; "
           "touch /sys/kernel/x 2>/dev/null && echo sys-writable || echo sys-ro; "
           "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo procsys-writable || echo procsys-ro")
    out = r.stdout.split()
    for path, seen in zip(masked, out):
        assert seen == ("1:3" if os.path.exists(path) else "absent"), (path, seen)
    assert sum(os.path.exists(p) for p in masked) >= 2
    assert out[len(masked):] == ["0", "sys-ro", "procsys-ro"]


def test_read_only_rootfs_rejects_writes(berth, rootfs):
    r = sh(berth, rootfs, "touch /newfile && echo wrote || echo refused; touch /dev/shm/ok && echo shm-ok",
           "--read-only")
    assert r.stdout.split() == ["refused", "shm-ok"]
    assert not os.path.exists(os.path.join(rootfs, "newfile"))


def test_writes_go_to_a_per_run_layer(berth, rootfs):
    sh(berth, rootfs, "echo x > /written-by-test")
    assert not os.path.exists(os.path.join(rootfs, "written-by-test"))
    r = sh(berth, rootfs, "cat /written-by-test 2>&1 || echo gone")
    assert "gone" in r.stdout


def test_bind_mounts_ro_and_rw(berth, rootfs, tmp_path):
    src = tmp_path / "data"
    src.mkdir()
    (src / "in").write_text("hello\n")
    r = sh(berth, rootfs, "cat /data/in; echo x > /data/out && echo wrote || echo refused",
           "-v", f"{src}:/data:ro")
    assert r.stdout.split() == ["hello", "refused"]
    assert not (src / "out").exists()
    r = sh(berth, rootfs, "echo x > /data/out && echo wrote", "-v", f"{src}:/data")
    assert r.stdout.split() == ["wrote"] and (src / "out").read_text() == "x\n"


def test_tmpfs_mount(berth, rootfs):
    r = sh(berth, rootfs, "grep ' /scratch ' /proc/mounts", "--tmpfs", "/scratch:8M")
    assert "tmpfs" in r.stdout and "size=8192k" in r.stdout


def test_symlink_in_image_cannot_redirect_a_mount_outside(berth, tmp_path, probe_bin):
    from conftest import make_rootfs
    image = make_rootfs(str(tmp_path / "evil"), probe_bin)
    outside = tmp_path / "outside"
    outside.mkdir()
    # absolute and relative escapes: both must resolve inside the rootfs
    os.symlink(str(outside), os.path.join(image, "abs"))
    os.symlink("../../../../../../../../" + str(outside).lstrip("/"), os.path.join(image, "rel"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "marker").write_text("m\n")
    before = open("/proc/self/mountinfo").read()
    for target in ("/abs/x", "/rel/y"):
        r = berth.run("run", "-v", f"{src}:{target}", "--tmpfs", target + "t", image,
                      "/bin/sh", "-c", f"cat {target}/marker; touch {target}t/f && echo ok")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["m", "ok"]
    assert os.listdir(outside) == []
    assert open("/proc/self/mountinfo").read() == before


def test_env_workdir_and_users(berth, rootfs):
    r = sh(berth, rootfs, 'echo "$FOO|$PATH|$HOME"; pwd; id -u; id -g',
           "-e", "FOO=bar baz", "-w", "/srv/app")
    foo, cwd, uid, gid = r.stdout.splitlines()
    assert foo.startswith("bar baz|/usr/local/sbin:") and foo.endswith("|/root")
    assert (cwd, uid, gid) == ("/srv/app", "0", "0")
    r = sh(berth, rootfs, "id -u; id -g; id -G; echo $HOME", "-u", "app")
    assert r.stdout.split() == ["1000", "1000", "1000", "10", "/home/app"]
    r = sh(berth, rootfs, "id -u; id -g", "-u", "4242:4343")
    assert r.stdout.split() == ["4242", "4343"]
    r = sh(berth, rootfs, "grep CapEff /proc/self/status", "-u", "1000")
    assert int(status_field(r.stdout, "CapEff"), 16) == 0


def test_caller_fds_are_not_inherited(berth, rootfs, tmp_path):
    f = open(tmp_path / "secret", "w")
    os.set_inheritable(f.fileno(), True)
    try:
        r = berth.run("run", rootfs, "/bin/probe", "fds", pass_fds=(f.fileno(),))
    finally:
        f.close()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "fds=0,1,2"
