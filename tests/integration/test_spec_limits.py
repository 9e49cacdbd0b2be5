"""Bad input never crashes and never hangs: `berth validate` ends quickly,
with one clear error, on an alias bomb, a 100 MB file, 10,000-deep nesting and
binary garbage."""
import os
import subprocess
import time
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
BERTH = os.environ.get("BERTH_BIN", str(TOP / "build" / "berth"))
LIMIT_S = 5  # generous for sanitizer builds; release builds take milliseconds


def validate(path):
    t0 = time.monotonic()
    r = subprocess.run([BERTH, "validate", str(path)], capture_output=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.returncode == 1, r.stderr
    assert elapsed < LIMIT_S, f"took {elapsed:.1f} s"
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}:")
    return lines[0]


def test_alias_bomb(tmp_path):
    f = tmp_path / "bomb.yaml"
    text = "version: 1\nservices:\n  a: &a [" + ",".join(["lol"] * 10) + "]\n"
    prev = "a"
    for name in "bcdefghijklmnop":
        text += f"  {name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]\n"
        prev = name
    f.write_text(text)
    assert "alias bomb" in validate(f)


def test_100mb_file(tmp_path):
    f = tmp_path / "huge.yaml"
    with open(f, "wb") as out:
        out.write(b"version: 1\nservices:\n")
        chunk = b"  # padding padding padding padding padding padding padding padding\n" * 16384
        while out.tell() < 100 * 1024 * 1024:
            out.write(chunk)
    assert "larger than" in validate(f)


def test_deep_nesting(tmp_path):
    f = tmp_path / "deep.yaml"
    f.write_text("version: 1\nservices: " + "[" * 10000 + "]" * 10000 + "\n")
    assert "nesting deeper than" in validate(f)
    g = tmp_path / "deep-block.yaml"
    g.write_text("version: 1\nservices:\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 3000)))
    assert "nesting deeper than" in validate(g)


@pytest.mark.parametrize("seed", range(5))
def test_binary_garbage(tmp_path, seed):
    f = tmp_path / f"garbage-{seed}.bin"
    f.write_bytes(os.urandom(1 << 20) if seed else bytes(range(256)) * 64)
    validate(f)


def test_many_errors_are_bounded(tmp_path):
    f = tmp_path / "errors.yaml"
    f.write_text("version: 1\nservices:\n" + "".join(f"  S{i}: 1\n" for i in range(5000)))
    r = subprocess.run([BERTH, "validate", str(f)], capture_output=True, timeout=60)
    assert r.returncode == 1
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1001
    assert "too many errors" in lines[0]
