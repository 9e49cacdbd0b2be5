"""Seccomp by default: Docker's default profile on every container process
(the service, its pid 1, `berth exec` commands and health checks), for
`berth run` and services; `unconfined` as the positive control; profile
files; --cap-add SYS_ADMIN opening the mount family as Docker's profile does.

The calls come from tests/probe/sysprobe.c ("CALL: ok" or "CALL: EPERM").
unshare(CLONE_NEWUSER) needs no capability at all, so its EPERM is the
filter's alone; keyctl and add_key likewise."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import make_rootfs, sha256_file, static_probe, wait_for

DENIED = ["unshare-user", "keyctl", "add_key", "personality-odd"]


@pytest.fixture(scope="module")
def sysprobe(tmp_path_factory):
    return static_probe(tmp_path_factory, "sysprobe")


@pytest.fixture(scope="module")
def srootfs(tmp_path_factory, sysprobe):
    d = make_rootfs(str(tmp_path_factory.mktemp("simage") / "rootfs"))
    shutil.copy2(sysprobe, os.path.join(d, "bin", "sysprobe"))
    return d


@pytest.fixture(scope="module")
def simage(srootfs, http_dir):
    d, base = http_dir
    path = os.path.join(d, "sysprobe.tar.gz")
    subprocess.run(["tar", "-C", srootfs, "-czf", path, "."], check=True)
    return {"url": f"{base}/sysprobe.tar.gz", "digest": "sha256:" + sha256_file(path)}


def results(text):
    """{"unshare-user": "EPERM", ...} from sysprobe's lines"""
    out = {}
    for line in text.splitlines():
        name, sep, res = line.partition(": ")
        if sep and not name.startswith("/"):
            out[name] = res
    return out


def seccomp_fields(text):
    """{"/proc/self/status": "2", ...} from grep's "FILE:Seccomp:\tN" lines"""
    out = {}
    for line in text.splitlines():
        path, sep, rest = line.partition(":Seccomp:")
        if sep:
            out[path] = rest.strip()
    return out


def run_probe(berth, rootfs, *opts, calls=DENIED):
    r = berth.run("run", *opts, rootfs, "/bin/sh", "-c",
                  "grep -H Seccomp: /proc/self/status /proc/1/status; /bin/sysprobe "
                  + " ".join(calls) + "; true")
    assert r.returncode == 0, r.stderr
    return results(r.stdout), seccomp_fields(r.stdout)


def test_run_default_denies_and_unconfined_allows(berth, srootfs):
    """Attack: unshare a user namespace (the door to most kernel exploits),
    the keyring, odd personalities. Promise: EPERM from the filter, which
    the service and pid 1 both hold. Control: --seccomp unconfined, same
    calls succeed."""
    res, status = run_probe(berth, srootfs)
    assert status == {"/proc/self/status": "2", "/proc/1/status": "2"}
    assert res == {c: "EPERM" for c in DENIED}
    res, status = run_probe(berth, srootfs, "--seccomp", "unconfined")
    assert status == {"/proc/self/status": "0", "/proc/1/status": "0"}
    assert res == {c: "ok" for c in DENIED}
    res, _ = run_probe(berth, srootfs, "--seccomp", "default", calls=["personality-query",
                                                                     "getpid"])
    assert res == {"personality-query": "ok", "getpid": "ok"}


def test_cap_sys_admin_opens_the_mount_family(berth, srootfs):
    """Docker's profile allows mount, umount2, unshare... only with
    CAP_SYS_ADMIN: the conditions follow the container's capabilities."""
    res, _ = run_probe(berth, srootfs, calls=["mount", "umount"])
    assert res == {"mount": "EPERM", "umount": "EPERM"}
    res, status = run_probe(berth, srootfs, "--cap-add", "SYS_ADMIN",
                            calls=["mount", "umount", "unshare-user"])
    assert status["/proc/self/status"] == "2"
    assert res == {"mount": "ok", "umount": "ok", "unshare-user": "ok"}


def test_run_profile_file(berth, srootfs, tmp_path):
    """A profile in Docker's format: allow all but keyctl, which says ENOSYS."""
    p = tmp_path / "profile.json"
    p.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
        "syscalls": [{"names": ["keyctl", "no_such_call_on_any_kernel"],
                      "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}))
    res, status = run_probe(berth, srootfs, "--seccomp", str(p), calls=["keyctl",
                                                                       "unshare-user"])
    assert status == {"/proc/self/status": "2", "/proc/1/status": "2"}
    assert res == {"keyctl": "ENOSYS", "unshare-user": "ok"}


def test_run_bad_profile_is_a_clear_error(berth, srootfs, tmp_path):
    missing = tmp_path / "missing.json"
    r = berth.run("run", "--seccomp", str(missing), srootfs, "/bin/true")
    assert r.returncode == 1
    assert f"seccomp profile '{missing}'" in r.stderr and "No such file" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"],'
                   ' "action": "SCMP_ACT_SOMETIMES"}]}')
    r = berth.run("run", "--seccomp", str(bad), srootfs, "/bin/true")
    assert r.returncode == 1
    assert f"seccomp profile '{bad}': syscalls[0]: unknown action 'SCMP_ACT_SOMETIMES'" in r.stderr
    bad.write_text('{"defaultAction": ')
    r = berth.run("run", "--seccomp", str(bad), srootfs, "/bin/true")
    assert r.returncode == 1 and f"seccomp profile '{bad}': line 1" in r.stderr
    assert "--seccomp PROFILE" in berth.run("run", "--help").stdout


SERVICE = ["/bin/sh", "-c", "grep -H Seccomp: /proc/self/status /proc/1/status;"
           " /bin/sysprobe unshare-user keyctl; exec sleep 100000"]
# written whole, then renamed: a reader never sees a check half-way (the
# systemd VM suite's 6.1 guest read an empty /tmp/health once)
HEALTH = ["/bin/sh", "-c", "{ grep -H Seccomp: /proc/self/status;"
          " /bin/sysprobe unshare-user; } > /tmp/health.new; mv /tmp/health.new /tmp/health; true"]


def logs(host, name):
    r = host.berth.run("logs", name)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_services_exec_and_health_checks(host, simage, tmp_path):
    """The keeper's path: the service, pid 1, `berth exec` and health checks
    hold the service's filter; `seccomp: unconfined` and a profile file
    (kept with the service: removing the file afterwards changes nothing)."""
    host.image = simage
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 34}]}))
    hc = {"command": HEALTH, "interval": "200ms", "timeout": "5s"}
    host.write({"plain": host.svc(SERVICE, healthcheck=hc),
                "open": host.svc(SERVICE, seccomp="unconfined", healthcheck=hc),
                "custom": host.svc(SERVICE, seccomp=str(prof), healthcheck=hc)})
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    prof.unlink()
    want = {"plain": ("2", "EPERM"), "open": ("0", "ok"), "custom": ("2", "ERANGE")}
    for name, (mode, unshare) in want.items():
        wait_for(lambda: "keyctl:" in logs(host, name), what=f"the probe of {name}")
        out = logs(host, name)
        assert seccomp_fields(out) == {"/proc/self/status": mode, "/proc/1/status": mode}, out
        assert results(out)["unshare-user"] == unshare, out
        r = host.berth.run("exec", name, "--", "/bin/sh", "-c",
                           "grep -H Seccomp: /proc/self/status; /bin/sysprobe unshare-user")
        assert seccomp_fields(r.stdout) == {"/proc/self/status": mode}, r.stdout + r.stderr
        assert results(r.stdout)["unshare-user"] == unshare
        wait_for(lambda: host.berth.run("exec", name, "--", "/bin/cat", "/tmp/health")
                 .returncode == 0, what=f"a health check of {name}")
        r = host.berth.run("exec", name, "--", "/bin/cat", "/tmp/health")
        assert seccomp_fields(r.stdout) == {"/proc/self/status": mode}, r.stdout
        assert results(r.stdout)["unshare-user"] == unshare
    # the keeper restarts the service from what apply kept, file gone or not
    r = host.berth.run("restart", "custom")
    assert r.returncode == 0, r.stderr
    assert host.status()["custom"]["state"] in ("running", "starting")


def test_spec_validate_and_diff(host, simage, tmp_path):
    """validate names a missing or broken profile file at its line; a change
    of the field is a replace; the default adds nothing to the spec's hash."""
    host.image = simage
    cmd = ["/bin/sleep", "100000"]
    host.write({"web": host.svc(cmd, seccomp="/nonexistent/berth/p.json")})
    r = host.berth.run("validate", host.file)
    assert r.returncode == 1
    assert "services.web.seccomp: seccomp profile '/nonexistent/berth/p.json'" in r.stdout + r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    host.write({"web": host.svc(cmd, seccomp=str(bad))})
    r = host.apply()
    assert r.returncode == 1 and f"seccomp profile '{bad}'" in r.stdout + r.stderr
    host.write({"web": host.svc(cmd, seccomp="strict")})
    r = host.berth.run("validate", host.file)
    assert r.returncode == 1 and "invalid seccomp 'strict'" in r.stdout + r.stderr

    host.write({"web": host.svc(cmd)})
    assert host.apply().returncode == 0
    host.write({"web": host.svc(cmd, seccomp="default")})
    assert host.diff().returncode == 0, "an explicit default is the same service"
    host.write({"web": host.svc(cmd, seccomp="unconfined")})
    r = host.diff("--json")
    assert r.returncode == 2, r.stdout + r.stderr
    change = json.loads(r.stdout)["changes"][0]
    assert change["action"] == "replace"
    assert [f["path"] for f in change["fields"]] == ["seccomp"]
    assert change["fields"][0]["new"] == "unconfined"
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(host.berth.root, "services", "web", "container.json")) as f:
        assert json.load(f)["seccomp"] == "unconfined"

    # a profile file: editing it is a change too (its sha256 is in the spec)
    prof = tmp_path / "p.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ALLOW"}')
    host.write({"web": host.svc(cmd, seccomp=str(prof))})
    assert host.apply().returncode == 0
    assert host.diff().returncode == 0
    prof.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}')
    r = host.diff("--json")
    assert r.returncode == 2, r.stdout + r.stderr
    change = json.loads(r.stdout)["changes"][0]
    assert change["action"] == "replace"
    assert [f["path"] for f in change["fields"]] == ["seccomp_sha256"]
    r = host.apply()
    assert r.returncode == 0, r.stdout + r.stderr
    with open(os.path.join(host.berth.root, "services", "web", "container.json")) as f:
        assert json.load(f)["seccomp_profile"] == {"defaultAction": "SCMP_ACT_ALLOW",
                                                   "syscalls": []}
