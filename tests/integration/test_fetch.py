"""berth fetch against a real HTTP server on 127.0.0.1 with injected faults:
retries with backoff, resume with Range, mirrors, refused redirects,
timeouts, digest mismatches and truncated bodies."""
import os
import time

import pytest

import imagekit
from faultserver import FaultServer


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    d = tmp_path_factory.mktemp("artifact")
    rootfs = imagekit.busybox_rootfs(str(d / "rootfs"))
    path = imagekit.rootfs_tar(rootfs, str(d / "rootfs.tar.zst"), "zstd")
    with open(path, "rb") as f:
        data = f.read()
    # big enough that "half-way" is many TCP segments in
    assert len(data) > 500_000
    return data


@pytest.fixture
def srv():
    with FaultServer() as s:
        yield s


FAST = ["--retry-delay", "100ms"]


def berth_env(berth, env, *args, timeout=60):
    return berth.run(*args, env=env, timeout=timeout)


def fetch(berth, url, digest, *extra, timeout=60):
    return berth.run("fetch", url, "--digest", f"sha256:{digest}", *extra, timeout=timeout)


def assert_in_store(berth, digest):
    assert imagekit.store_view(berth.root) == [f"blobs/sha256/{digest}", f"images/{digest}"]
    blob = os.path.join(berth.root, "blobs/sha256", digest)
    assert imagekit.sha256_file(blob) == digest
    assert os.path.isfile(os.path.join(berth.root, "images", digest, "rootfs/bin/busybox"))


def assert_nothing_added(berth):
    assert imagekit.store_view(berth.root) == []
    partial = os.path.join(berth.root, "blobs/.partial")
    assert not os.path.isdir(partial) or os.listdir(partial) == []


def test_plain_fetch_prints_digest_and_rootfs(berth, srv, artifact):
    digest = srv.add("/a.tar.zst", artifact)
    r = fetch(berth, srv.url("/a.tar.zst"), digest)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"sha256:{digest}",
                                os.path.join(berth.root, "images", digest, "rootfs")]
    assert r.stderr == ""  # not a terminal: no progress line
    assert_in_store(berth, digest)
    ua = srv.gets("/a.tar.zst")[0]["user-agent"]
    assert ua.startswith("berth/") and len(ua) > len("berth/")


def test_500_twice_then_200_succeeds_after_backoff(berth, srv, artifact):
    digest = srv.add("/a.tar.zst", artifact)
    srv.script("/a.tar.zst", [{"status": 500}, {"status": 503}])
    t0 = time.monotonic()
    r = fetch(berth, srv.url("/a.tar.zst"), digest)  # default backoff: 1 s, then 2 s
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert len(srv.gets("/a.tar.zst")) == 3
    assert elapsed >= 3.0, "exponential backoff 1 s + 2 s"
    assert_in_store(berth, digest)


def test_429_honours_retry_after(berth, srv, artifact):
    digest = srv.add("/a.tar.zst", artifact)
    srv.script("/a.tar.zst", [{"status": 429, "retry_after": "2"}])
    t0 = time.monotonic()
    r = fetch(berth, srv.url("/a.tar.zst"), digest, *FAST)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 2.0, "Retry-After: 2 is longer than the 100ms backoff"
    assert len(srv.gets("/a.tar.zst")) == 2


def test_retries_exhausted_is_a_clear_error(berth, srv, artifact):
    digest = srv.add("/a.tar.zst", artifact)
    srv.script("/a.tar.zst", [{"status": 500}] * 10)
    r = fetch(berth, srv.url("/a.tar.zst"), digest, *FAST, "--retries", "2")
    assert r.returncode == 1
    assert "HTTP status 500" in r.stderr and "/a.tar.zst" in r.stderr
    assert len(srv.gets("/a.tar.zst")) == 3
    assert_nothing_added(berth)


def test_dropped_connection_resumes_with_range(berth, srv, artifact):
    digest = srv.add("/a.tar.zst", artifact)
    half = len(artifact) // 2
    srv.script("/a.tar.zst", [{"drop_after": half}])
    r = fetch(berth, srv.url("/a.tar.zst"), digest, *FAST)
    assert r.returncode == 0, r.stderr
    gets = srv.gets("/a.tar.zst")
    assert len(gets) == 2
    assert "range" not in gets[0]
    # resumed where the first attempt stopped (curl may have buffered less
    # than was sent, never more), validated with the ETag
    start = int(gets[1]["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= half
    assert gets[1]["if-range"] == srv.files["/a.tar.zst"]["etag"]
    assert_in_store(berth, digest)


def test_resume_uses_last_modified_without_etag(berth, artifact):
    with FaultServer(validators=True) as srv:
        digest = srv.add("/a.tar.zst", artifact)
        srv.files["/a.tar.zst"]["etag"] = 'W/"weak"'  # weak ETags cannot validate a range
        srv.script("/a.tar.zst", [{"drop_after": len(artifact) // 3}])
        r = fetch(berth, srv.url("/a.tar.zst"), digest, *FAST)
        assert r.returncode == 0, r.stderr
        assert srv.gets("/a.tar.zst")[1]["if-range"] == srv.files["/a.tar.zst"]["last_modified"]


def test_server_ignoring_range_restarts_from_zero(berth, srv, artifact):
    digest = srv.add("/a.tar.zst", artifact)
    srv.script("/a.tar.zst", [{"drop_after": len(artifact) // 2}, {"ignore_range": True}])
    r = fetch(berth, srv.url("/a.tar.zst"), digest, *FAST)
    assert r.returncode == 0, r.stderr
    assert_in_store(berth, digest)


def test_digest_mismatch_rejected_nothing_added(berth, srv, artifact):
    srv.add("/a.tar.zst", artifact)
    wrong = "0" * 64
    r = fetch(berth, srv.url("/a.tar.zst"), wrong, *FAST)
    assert r.returncode == 1
    assert "digest mismatch" in r.stderr and f"sha256:{wrong}" in r.stderr
    assert_nothing_added(berth)


def test_truncated_body_rejected(berth, srv, artifact):
    digest = srv.add("/a.tar.zst", artifact)
    srv.script("/a.tar.zst", [{"truncate": len(artifact) - 1000}])
    r = fetch(berth, srv.url("/a.tar.zst"), digest, *FAST)
    assert r.returncode == 1
    assert "digest mismatch" in r.stderr
    assert_nothing_added(berth)


def test_always_truncated_without_range_rejected(berth, artifact):
    with FaultServer(range_support=False) as srv:
        digest = srv.add("/a.tar.zst", artifact)
        srv.script("/a.tar.zst", [{"drop_after": 1000}] * 10)
        r = fetch(berth, srv.url("/a.tar.zst"), digest, *FAST, "--retries", "2")
        assert r.returncode == 1
        assert "/a.tar.zst" in r.stderr
        assert_nothing_added(berth)


def test_stalled_server_times_out(berth, srv, artifact):
    digest = srv.add("/a.tar.zst", artifact)
    srv.script("/a.tar.zst", [{"stall_after": 1000}])
    t0 = time.monotonic()
    r = fetch(berth, srv.url("/a.tar.zst"), digest, "--stall-timeout", "2s", "--retries", "0")
    assert r.returncode == 1
    # the URL that stalled, for how long, and after how much
    assert f"'{srv.url('/a.tar.zst')}': stalled: less than 1024 bytes/s for 2s" in r.stderr, \
        r.stderr
    assert "1000 B" in r.stderr or "1000 bytes" in r.stderr or "1.0 KiB" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 30
    assert_nothing_added(berth)


class Silent:
    """A TCP server on 127.0.0.1 that accepts and never answers."""

    def __init__(self):
        import socket
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/a.tar.zst"

    def close(self):
        self.sock.close()


def test_stalled_mirror_is_abandoned_for_the_next(berth, srv, artifact):
    """The first URL accepts and sends nothing, the second sends its
    headers and 1000 bytes, then nothing: with the host setting
    BERTH_STALL_TIMEOUT=2s each is left after 2 s and the third delivers."""
    silent = Silent()
    digest = srv.add("/a.tar.zst", artifact)
    srv.add("/slow/a.tar.zst", artifact)
    srv.script("/slow/a.tar.zst", [{"stall_after": 1000}] * 10)
    env = dict(os.environ, BERTH_STALL_TIMEOUT="2s")
    try:
        t0 = time.monotonic()
        r = berth_env(berth, env, "fetch", silent.url, "--digest", f"sha256:{digest}",
                      "--mirror", srv.url("/slow/a.tar.zst"), "--mirror", srv.url("/a.tar.zst"))
        elapsed = time.monotonic() - t0
    finally:
        silent.close()
    assert r.returncode == 0, r.stderr
    assert 4 <= elapsed < 15, elapsed  # two stalls of 2 s, no retries on them
    assert len(srv.gets("/slow/a.tar.zst")) == 1
    assert_in_store(berth, digest)
    # positive control: the same stalled mirror without a next one is retried
    r = fetch(berth, srv.url("/slow/a.tar.zst"), "3" * 64, "--stall-timeout", "1s",
              "--retries", "1", *FAST)
    assert r.returncode == 1 and "stalled" in r.stderr, r.stderr
    assert len(srv.gets("/slow/a.tar.zst")) == 3


def test_invalid_stall_setting_is_an_error(berth, srv, artifact):
    digest = srv.add("/a.tar.zst", artifact)
    r = berth_env(berth, dict(os.environ, BERTH_STALL_TIMEOUT="soon"), "fetch",
                  srv.url("/a.tar.zst"), "--digest", f"sha256:{digest}")
    assert r.returncode == 1 and "invalid BERTH_STALL_TIMEOUT 'soon'" in r.stderr, r.stderr
    assert_nothing_added(berth)


def test_one_image_fetch_has_a_deadline(berth, srv, artifact):
    """A trickle that never counts as a stall, and retries: --fetch-timeout
    ends it all."""
    digest = srv.add("/a.tar.zst", artifact)
    srv.add("/b.tar.zst", artifact)
    srv.script("/a.tar.zst", [{"status": 503}] * 100)
    srv.script("/b.tar.zst", [{"trickle": (4096, 0.5)}] * 100)
    t0 = time.monotonic()
    r = fetch(berth, srv.url("/a.tar.zst"), digest, "--mirror", srv.url("/b.tar.zst"),
              "--fetch-timeout", "3s", "--retries", "1", *FAST)
    elapsed = time.monotonic() - t0
    assert r.returncode == 1
    assert "ran out of time (3s for one image" in r.stderr, r.stderr
    assert srv.url("/b.tar.zst") in r.stderr and "HTTP status 503" in r.stderr, r.stderr
    assert 2.5 <= elapsed < 10, elapsed
    assert_nothing_added(berth)


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x.tar"])
def test_redirect_to_other_protocols_refused(berth, srv, artifact, target):
    srv.add("/a.tar.zst", artifact)
    srv.redirect("/r", target)
    r = fetch(berth, srv.url("/r"), "1" * 64, *FAST)
    assert r.returncode == 1
    assert "refused" in r.stderr and "http and https" in r.stderr
    assert_nothing_added(berth)


def test_redirects_followed_at_most_five(berth, srv, artifact):
    digest = srv.add("/a.tar.zst", artifact)
    for i in range(5):
        srv.redirect(f"/ok{i}", srv.url(f"/ok{i + 1}" if i < 4 else "/a.tar.zst"))
    r = fetch(berth, srv.url("/ok0"), digest, *FAST)
    assert r.returncode == 0, r.stderr
    for i in range(6):
        srv.redirect(f"/bad{i}", srv.url(f"/bad{i + 1}" if i < 5 else "/a.tar.zst"))
    r = fetch(berth, srv.url("/bad0"), digest, *FAST)  # image already there: no fetch
    assert r.returncode == 0
    berth.root = berth.root + "-2"
    os.makedirs(berth.root)
    r = fetch(berth, srv.url("/bad0"), digest, *FAST)
    assert r.returncode == 1
    assert "redirect" in r.stderr.lower()


def test_404_on_first_mirror_uses_second(berth, srv, artifact):
    digest = srv.add("/mirror/a.tar.zst", artifact)
    r = fetch(berth, srv.url("/missing/a.tar.zst"), digest, "--mirror",
              srv.url("/mirror/a.tar.zst"), *FAST)
    assert r.returncode == 0, r.stderr
    assert len(srv.gets("/missing/a.tar.zst")) == 1, "a 404 is not retried"
    assert_in_store(berth, digest)


def test_all_mirrors_failing_names_each(berth, srv, artifact):
    r = fetch(berth, srv.url("/one"), "2" * 64, "--mirror", srv.url("/two"), *FAST)
    assert r.returncode == 1
    assert "/one" in r.stderr and "/two" in r.stderr and "404" in r.stderr
    assert_nothing_added(berth)


def test_netrc_credentials_sent(berth, srv, artifact, tmp_path):
    digest = srv.add("/a.tar.zst", artifact)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login deploy password s3cret\n")
    r = fetch(berth, srv.url("/a.tar.zst"), digest, "--netrc-file", str(netrc))
    assert r.returncode == 0, r.stderr
    assert srv.gets("/a.tar.zst")[0]["authorization"] == "Basic ZGVwbG95OnMzY3JldA=="


def test_unreachable_url_is_a_clear_error(berth, artifact):
    r = berth.run("fetch", "http://127.0.0.1:1/a.tar", "--digest", "sha256:" + "3" * 64,
                  "--retries", "1", "--retry-delay", "10ms")
    assert r.returncode == 1
    assert "127.0.0.1:1" in r.stderr
    assert_nothing_added(berth)


def test_bad_arguments_are_usage_errors(berth):
    assert berth.run("fetch", "http://127.0.0.1/x").returncode == 2  # no digest
    r = berth.run("fetch", "http://127.0.0.1/x", "--digest", "sha256:XYZ")
    assert r.returncode == 1 and "invalid digest" in r.stderr
    assert berth.run("fetch", "--format", "zip", "u", "--digest", "x").returncode == 2


def test_home_netrc_used_by_default(berth, srv, artifact, tmp_path):
    digest = srv.add("/a.tar.zst", artifact)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine 127.0.0.1 login root password fromhome\n")
    (home / ".netrc").chmod(0o600)
    r = berth.run("fetch", srv.url("/a.tar.zst"), "--digest", f"sha256:{digest}",
                  env=dict(os.environ, HOME=str(home)))
    assert r.returncode == 0, r.stderr
    assert srv.gets("/a.tar.zst")[0]["authorization"] == "Basic cm9vdDpmcm9taG9tZQ=="
