"""berth run with a rootfs tarball: unpacked once into the store (issue 2)."""
import hashlib
import os
import subprocess

import pytest


@pytest.fixture(scope="module")
def tarballs(rootfs, tmp_path_factory):
    d = tmp_path_factory.mktemp("tarballs")
    out = {}
    for comp, flag in (("tar", None), ("tar.gz", "--gzip"), ("tar.zst", "--zstd")):
        path = str(d / f"rootfs.{comp}")
        cmd = ["tar", "-C", rootfs, "-cf", path, "."]
        if flag:
            cmd.insert(1, flag)
        subprocess.run(cmd, check=True)
        out[comp] = path
    return out


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.mark.parametrize("comp", ["tar", "tar.gz", "tar.zst"])
def test_tarball_is_unpacked_once_keyed_by_sha256(berth, tarballs, comp):
    tarball = tarballs[comp]
    for _ in range(2):
        r = berth.run("run", tarball, "/bin/sh", "-c", "echo $$; cat /etc/passwd | head -1")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["2", "root:x:0:0:root:/root:/bin/sh"]
    images = os.listdir(os.path.join(berth.root, "images"))
    assert images == [sha256(tarball)]
    rootfs = os.path.join(berth.root, "images", images[0], "rootfs")
    assert os.path.isfile(os.path.join(rootfs, "bin", "busybox"))
    assert os.stat(os.path.join(rootfs, "home", "app")).st_uid == 1000


def test_tarball_image_runs_read_only(berth, tarballs):
    r = berth.run("run", "--read-only", tarballs["tar"], "/bin/sh", "-c",
                  "touch /x 2>/dev/null && echo wrote || echo refused")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "refused"


def test_corrupt_tarball_is_refused_and_leaves_nothing(berth, tmp_path):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(4096))
    r = berth.run("run", str(bad), "/bin/true")
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "bad.tar.gz" in r.stderr
    images = os.path.join(berth.root, "images")
    assert not os.path.exists(images) or os.listdir(images) == []
