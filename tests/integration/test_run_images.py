"""berth run takes every image file a user has: a rootfs directory, a
rootfs tarball, an OCI layout directory, an OCI archive, a docker save
archive, sha256:DIGEST of the store and an oci:// reference. The kind is
told by content, never by the file's name (every file here has a name that
lies), and the image's config gives the defaults. Anything else is a clear
error naming what the file is."""
import os
import shutil
import zipfile

import pytest

import imagekit
from test_registry import Registry

# what the OCI image's config (imagekit.OCI_CONFIG) and the docker save
# archive's (imagekit.DOCKER_CONFIG) make of a shell that prints them
PROBE = ["/bin/sh", "-c", 'echo "$FOO$D $(pwd) $(id -u)"']


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("run-images"))
    rootfs = imagekit.busybox_rootfs(os.path.join(d, "rootfs"))
    layout = imagekit.oci_layout(rootfs, os.path.join(d, "oci"))
    out = {"rootfs-dir": rootfs, "oci-layout": layout}
    out["rootfs-tarball"] = imagekit.rootfs_tar(rootfs, os.path.join(d, "image.zip"), "zstd")
    out["oci-archive"] = imagekit.oci_archive(layout, os.path.join(d, "rootfs.tar"))
    os.makedirs(os.path.join(d, "docker"))
    out["docker-save"] = imagekit.docker_archive(rootfs, os.path.join(d, "layout.oci"),
                                                 os.path.join(d, "docker"))
    with zipfile.ZipFile(os.path.join(d, "image.tar"), "w") as z:
        z.writestr("bin/sh", b"not really")
    out["zip"] = os.path.join(d, "image.tar")
    out["empty"] = os.path.join(d, "empty.tar.zst")
    open(out["empty"], "w").close()
    return out


def run(berth, *args):
    r = berth.run("run", *args, timeout=120)
    return r.returncode, r.stdout, r.stderr


def images(berth):
    d = os.path.join(berth.root, "images")
    return sorted(n for n in os.listdir(d) if not n.startswith(".")) if os.path.isdir(d) else []


def test_rootfs_directory_runs_as_it_is(berth, files):
    rc, out, err = run(berth, files["rootfs-dir"], *PROBE)
    assert rc == 0, err
    assert out == " / 0\n"  # no config: no env, workdir /, root
    assert images(berth) == []  # a directory is not copied into the store


def test_rootfs_tarball_by_content(berth, files):
    rc, out, err = run(berth, files["rootfs-tarball"], "/bin/cat", "/srv/gone.txt")
    assert rc == 0, err
    assert out == "content of srv/gone.txt\n"
    assert images(berth) == [imagekit.sha256_file(files["rootfs-tarball"])]


@pytest.mark.parametrize("kind", ["oci-layout", "oci-archive"])
def test_oci_layout_and_archive_with_the_config_as_defaults(berth, files, kind):
    rc, out, err = run(berth, files[kind])  # no command: entrypoint + cmd
    assert rc == 0, err
    assert out == "from-oci\n"
    rc, out, err = run(berth, files[kind], *PROBE)
    assert rc == 0, err
    assert out == "bar /tmp 1000\n"  # env, workdir and user from the config
    # the layers were applied: the whiteout and the opaque directory
    rc, out, err = run(berth, files[kind], "/bin/ls", "/srv", "/opt/old")
    assert rc == 0, err
    assert "gone.txt" not in out and "kept.txt" in out and "only" in out and "sub" not in out
    # unpacked once, reused: the next run finds it in the store
    before = images(berth)
    assert len(before) == 1
    assert run(berth, files[kind], "/bin/true")[0] == 0
    assert images(berth) == before
    if kind == "oci-archive":
        assert before == [imagekit.sha256_file(files[kind])]


def test_docker_save_archive_with_its_config(berth, files):
    rc, out, err = run(berth, files["docker-save"])
    assert rc == 0, err
    assert out == "from-docker\n"
    rc, out, err = run(berth, files["docker-save"], *PROBE)
    assert rc == 0, err
    assert out == "1 /srv 0\n"
    rc, out, err = run(berth, files["docker-save"], "/bin/cat", "/etc/motd")
    assert rc == 0 and out == "layer two\n", err


def test_store_digest_of_an_imported_file(berth, files):
    hexdigest = imagekit.sha256_file(files["oci-archive"])
    rc, _, err = run(berth, f"sha256:{hexdigest}", "/bin/true")
    assert rc == 1 and "is not in the store" in err, err
    assert run(berth, files["oci-archive"], "/bin/true")[0] == 0
    rc, out, err = run(berth, f"sha256:{hexdigest}")
    assert rc == 0 and out == "from-oci\n", err


def test_registry_reference_by_tag_and_by_digest(berth, files, tmp_path):
    reg = Registry(tmp_path / "registry").start()
    try:
        reg.push(files["oci-layout"], "latest", "team/img:1")
        rc, out, err = run(berth, f"oci+http://{reg.host}/team/img:1")
        assert rc == 0, err
        assert out == "from-oci\n"
        [hexdigest] = images(berth)
        rc, out, err = run(berth, f"oci+http://{reg.host}/team/img@sha256:{hexdigest}", *PROBE)
        assert rc == 0, err
        assert out == "bar /tmp 1000\n"
        assert images(berth) == [hexdigest]
        # pulled once: the second run found the image in the store
        gets = [reg.blob_gets(h) for h in os.listdir(os.path.join(files["oci-layout"],
                                                                  "blobs/sha256"))]
        assert max(gets) == 1, gets
    finally:
        reg.stop()
    # the registry is gone: the same reference by digest still runs from the store
    rc, out, err = run(berth, f"oci+http://{reg.host}/team/img@sha256:{hexdigest}")
    assert rc == 0 and out == "from-oci\n", err


@pytest.mark.parametrize("kind,found", [("zip", "is a zip archive"),
                                        ("empty", "is an empty file")])
def test_a_file_that_is_no_image_is_named(berth, files, kind, found):
    rc, out, err = run(berth, files[kind], "/bin/true")
    assert rc == 1
    assert f"'{files[kind]}' {found}, not an image: expected a rootfs directory" in err, err
    assert out == ""
    assert images(berth) == []


def test_other_data_and_a_bare_directory(berth, files, tmp_path):
    junk = tmp_path / "data.tar"
    junk.write_bytes(os.urandom(4096))
    rc, _, err = run(berth, str(junk), "/bin/true")
    assert rc == 1
    assert f"'{junk}' is not a tar archive, nor compressed tar" in err, err
    # a layout directory that lost its index is refused, not run as a rootfs
    broken = tmp_path / "broken"
    shutil.copytree(files["oci-layout"], broken)
    os.unlink(broken / "index.json")
    rc, _, err = run(berth, str(broken), "/bin/true")
    assert rc == 1 and "without oci-layout and index.json" in err, err
    assert images(berth) == []
