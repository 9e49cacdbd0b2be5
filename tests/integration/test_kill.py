"""SIGKILL of berth at 20 random instants during fetch and unpack never
leaves a partial blob or image visible in the store, and the next fetch
succeeds."""
import base64
import os
import random
import signal
import subprocess
import time

import pytest

import imagekit
from conftest import berth_processes, describe_processes
from faultserver import FaultServer


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    d = tmp_path_factory.mktemp("big")
    rootfs = imagekit.busybox_rootfs(str(d / "rootfs"))
    rnd = random.Random(4)
    os.makedirs(os.path.join(rootfs, "data/big"))
    for i in range(48):  # ~100 MB unpacked, compressible like real files
        chunk = base64.b64encode(rnd.randbytes(1 << 20))
        with open(os.path.join(rootfs, f"data/big/f{i:02}"), "wb") as f:
            f.write(chunk * 2)
    tar = imagekit.rootfs_tar(rootfs, str(d / "big.tar.zst"), "zstd")
    return rootfs, tar


def wait_gone(binary, timeout=20):
    """The killed berth and its unpacker child (which dies with it) are gone."""
    deadline = time.monotonic() + timeout
    while pids := berth_processes(binary):
        assert time.monotonic() < deadline, \
            f"berth processes survived SIGKILL: {describe_processes(pids)}"
        time.sleep(0.02)


def check_consistent(root, digest, expected_files):
    """Everything under a final name is complete and verified."""
    for name in imagekit.store_view(root):
        if name.startswith("blobs/sha256/"):
            assert name == f"blobs/sha256/{digest}"
            assert imagekit.sha256_file(os.path.join(root, name)) == digest, "partial blob"
        else:
            assert name == f"images/{digest}"
            img = os.path.join(root, name)
            assert os.path.isfile(os.path.join(img, "config.json")), "image without config"
            n = sum(len(fs) + len(ds) for _, ds, fs in os.walk(os.path.join(img, "rootfs")))
            assert n == expected_files, "partial image"


def test_sigkill_at_random_instants(berth, berth_bin, big):
    src, tar = big
    expected = sum(len(fs) + len(ds) for _, ds, fs in os.walk(src))
    rnd = random.Random(int(os.environ.get("BERTH_KILL_SEED", "20")))
    with FaultServer() as srv:
        digest = srv.add("/big.tar.zst", file=tar)
        args = ("fetch", srv.url("/big.tar.zst"), "--digest", f"sha256:{digest}")
        # how long a whole fetch + unpack takes here, in a scratch root
        scratch = berth.root + "-timing"
        os.makedirs(scratch)
        t0 = time.monotonic()
        subprocess.run([berth_bin, "--root", scratch, *args], check=True, capture_output=True)
        full = time.monotonic() - t0
        subprocess.run(["rm", "-rf", scratch], check=True)
        for i in range(20):
            p = berth.popen(*args)
            # a random instant of the pipeline: download, unpack, sync, rename
            time.sleep(rnd.uniform(0, full))
            p.send_signal(signal.SIGKILL)
            p.communicate()
            wait_gone(berth_bin)
            check_consistent(berth.root, digest, expected)
            if imagekit.store_view(berth.root):
                # it got there first: start over so that later kills land
                # in the download and unpack again
                subprocess.run(["rm", "-rf", os.path.join(berth.root, "images"),
                                os.path.join(berth.root, "blobs")], check=True)
        r = berth.run(*args)
        assert r.returncode == 0, r.stderr
        check_consistent(berth.root, digest, expected)
        assert imagekit.store_view(berth.root) == [f"blobs/sha256/{digest}", f"images/{digest}"]
        # and what the killed runs left is gone after gc, which keeps the
        # image a service uses
        os.makedirs(os.path.join(berth.root, "services/web"))
        with open(os.path.join(berth.root, "services/web/spec.json"), "w") as f:
            f.write('{"image": {"digest": "sha256:%s"}}' % digest)
        r = berth.run("gc")
        assert r.returncode == 0, r.stderr
        assert imagekit.store_view(berth.root) == [f"blobs/sha256/{digest}", f"images/{digest}"]
        left = os.listdir(os.path.join(berth.root, "blobs/.partial"))
        assert left == []
        assert [n for n in os.listdir(os.path.join(berth.root, "images"))
                if n.startswith(".")] == []
