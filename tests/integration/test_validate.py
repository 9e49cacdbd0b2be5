"""berth validate and the JSON Schema agree on every example file.

Valid examples pass both berth and python3-jsonschema (Draft 2020-12, files
loaded with PyYAML as editors would). Invalid examples fail both, and berth's
first error matches the `# expect: LINE:COLUMN: fragment` comment at the top
of the file. The few files that a JSON Schema cannot judge are listed in
BERTH_ONLY with the reason.
"""
import json
import os
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
SCHEMA_DIR = TOP / "manifests-schema"
EXAMPLES = SCHEMA_DIR / "examples"
BERTH = os.environ.get("BERTH_BIN", str(TOP / "build" / "berth"))

# Invalid for berth, but PyYAML (which keeps the last duplicate and expands
# merge keys) hands jsonschema a valid document: the schema cannot see these.
BERTH_ONLY = {
    "duplicate-key.yaml": "PyYAML keeps the last value of a duplicated key",
    "duplicate-service.yaml": "PyYAML keeps the last service of a duplicated name",
    "merge-key.yaml": "PyYAML expands '<<' merge keys; berth rejects them",
    "seccomp-missing-file.yaml": "a schema cannot know whether a profile file exists",
    "registry-digest-mismatch.yaml": "a schema cannot compare the URL's digest with digest",
}

VALID = sorted((EXAMPLES / "valid").glob("*.yaml"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))


def schema():
    with open(SCHEMA_DIR / "berth.schema.json") as f:
        return json.load(f)


def schema_accepts(path):
    """None when PyYAML cannot load the file (a YAML-level error)."""
    try:
        with open(path, "rb") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError:
        return None
    return jsonschema.Draft202012Validator(schema()).is_valid(as_json(data, {}))


def as_json(v, seen):
    """The JSON data model: string keys, dates as strings. Shared (aliased)
    nodes are converted once, so an alias bomb stays a small graph."""
    if id(v) in seen:
        return seen[id(v)]
    if isinstance(v, dict):
        out = seen[id(v)] = {}
        for k, x in v.items():
            key = json.dumps(k) if isinstance(k, (bool, type(None))) else str(k)
            out[key] = as_json(x, seen)
    elif isinstance(v, list):
        out = seen[id(v)] = []
        out.extend(as_json(x, seen) for x in v)
    elif isinstance(v, (str, int, float, bool)) or v is None:
        return v
    else:
        return str(v)
    return out


def validate(*args, stdin=None):
    return subprocess.run([BERTH, "validate", *args], input=stdin, capture_output=True,
                          timeout=30)


def expectation(path):
    first = path.read_text(errors="replace").splitlines()[0]
    m = re.match(r"# expect: (\d+):(\d+): (.+)$", first)
    assert m, f"{path.name}: first line must be '# expect: LINE:COLUMN: fragment'"
    return int(m.group(1)), int(m.group(2)), m.group(3)


def test_enough_examples():
    assert len(VALID) >= 3
    assert len(INVALID) >= 40


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_example(path):
    r = validate(str(path))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stderr == b""
    assert schema_accepts(path) is True


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_example(path):
    line, col, fragment = expectation(path)
    r = validate("--json", str(path))
    assert r.returncode == 1, r.stdout.decode()
    report = json.loads(r.stdout)
    assert report["valid"] is False
    first = report["errors"][0]
    assert (first["line"], first["column"]) == (line, col), report
    assert fragment in first["message"], report
    assert first["file"] == str(path)
    if path.name in BERTH_ONLY:
        assert schema_accepts(path) is True, "remove it from BERTH_ONLY"
    else:
        assert schema_accepts(path) in (False, None)


def test_text_errors_format(tmp_path):
    f = tmp_path / "whatever.tmp"  # puppet's validate_cmd uses temp names
    f.write_text("version: 1\nservices:\n  web:\n    image: {url: ftp://x, digest: sha256:0}\n"
                 "    limits: {memory: lots}\n")
    r = validate(str(f))
    assert r.returncode == 1
    lines = r.stderr.decode().splitlines()
    assert lines == [
        f"{f}:4:18: services.web.image.url: invalid url 'ftp://x': expected an http:// or "
        "https:// url",
        f"{f}:4:35: services.web.image.digest: invalid digest 'sha256:0': expected 'sha256:' "
        "and 64 lowercase hex digits",
        f"{f}:5:22: services.web.limits.memory: invalid size 'lots': expected a positive number "
        "with an optional K, M, G or T suffix, such as 512M",
    ]


def test_stdin():
    ok = (EXAMPLES / "valid" / "full.yaml").read_bytes()
    assert validate("-", stdin=ok).returncode == 0
    r = validate("-", stdin=b"version: 1\nservices: []\n")
    assert r.returncode == 1
    assert r.stderr.decode().startswith("<stdin>:2:11: services: ")


def test_json_valid():
    r = validate("--json", str(EXAMPLES / "valid" / "full.yaml"))
    assert r.returncode == 0
    assert json.loads(r.stdout) == {"valid": True, "errors": []}


def test_missing_file(tmp_path):
    r = validate("--json", str(tmp_path / "nope.yaml"))
    assert r.returncode == 1
    err = json.loads(r.stdout)["errors"][0]
    assert err["line"] == 0 and "No such file" in err["message"]


def test_usage():
    assert validate("a", "b").returncode == 2
    assert validate("--bogus").returncode == 2
    assert validate("--help").returncode == 0


def test_schema_is_embedded():
    r = subprocess.run([BERTH, "schema"], capture_output=True, timeout=10)
    assert r.returncode == 0
    assert r.stdout == (SCHEMA_DIR / "berth.schema.json").read_bytes()
    jsonschema.Draft202012Validator.check_schema(json.loads(r.stdout))


def test_schema_documents_every_property():
    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                assert "description" in sub or "$ref" in sub, f"{where}.{name}"
                walk(sub, f"{where}.{name}")
            for key in ("$defs",):
                for name, sub in node.get(key, {}).items():
                    walk(sub, name)
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, where
    walk(schema(), "")
