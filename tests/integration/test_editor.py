"""The editor set-up of the README (issue 11): yaml-language-server, the
server VS Code's YAML extension and Neovim's lspconfig run, set up as the
README says (the schema for the file, `yaml.yamlVersion: "1.1"`), driven
over LSP (JSON-RPC on stdio) against every example file: it accepts the
valid ones and flags each invalid one at the line of berth's first error,
except those the README's editor section lists as checked by berth only.

The server is installed with npm (the registry must be reachable) into
/var/cache/berth-tests/yamlls, once; node and npm are Debian's (tests/run).
"""
import json
import os
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
SCHEMA = TOP / "manifests-schema" / "berth.schema.json"
EXAMPLES = TOP / "manifests-schema" / "examples"
CACHE = Path("/var/cache/berth-tests/yamlls")
VERSION = "1.25.0"  # yaml-language-server, pinned: what the README was checked with


def readme_section():
    text = (TOP / "README.md").read_text()
    m = re.search(r"^## Editors\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no '## Editors' section"
    return m.group(1)


def berth_only():
    """The files the README lists under 'checked by berth only'."""
    sec = readme_section()
    m = re.search(r"checked by berth only[^\n]*\n((?:[-\s].*\n)+)", sec)
    assert m, "the editor section lists no files checked by berth only"
    return set(re.findall(r"`([a-z0-9-]+\.yaml)`", m.group(1)))


def readme_settings():
    """The yaml.* settings of the README's VS Code set-up (a JSON block)."""
    sec = readme_section()
    m = re.search(r"```json\n(.*?)```", sec, re.S)
    assert m, "the editor section has no settings.json block"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def server():
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (Debian's nodejs and npm; tests/run installs them)")
    main = CACHE / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
    pkg = CACHE / "node_modules" / "yaml-language-server" / "package.json"
    if not main.exists() or json.loads(pkg.read_text())["version"] != VERSION:
        CACHE.mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(CACHE),
                            f"yaml-language-server@{VERSION}"], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
    return ["node", str(main), "--stdio"]


class Lsp:
    """A minimal LSP client: Content-Length framed JSON-RPC over pipes."""

    def __init__(self, argv, settings):
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.settings = settings
        self.buf = b""
        self.next_id = 1
        self.diagnostics = {}

    def send(self, msg):
        body = json.dumps({"jsonrpc": "2.0", **msg}).encode()
        self.p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.p.stdin.flush()

    def read(self, deadline):
        while True:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if sep:
                n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
                if len(rest) >= n:
                    self.buf = rest[n:]
                    return json.loads(rest[:n])
            left = deadline - time.monotonic()
            assert left > 0, "yaml-language-server did not answer in time"
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 1 << 16)
                assert chunk, "yaml-language-server exited"
                self.buf += chunk

    def handle(self, msg):
        """Server-to-client traffic: answer requests, keep diagnostics."""
        if msg.get("method") == "textDocument/publishDiagnostics":
            self.diagnostics.setdefault(msg["params"]["uri"], []).append(msg["params"])
        elif "method" in msg and "id" in msg:
            result = None
            if msg["method"] == "workspace/configuration":
                result = [self.settings.get(i.get("section", ""), None)
                          if i.get("section") != "yaml" else self.settings["yaml"]
                          for i in msg["params"]["items"]]
            self.send({"id": msg["id"], "result": result})

    def request(self, method, params, timeout=60):
        rid = self.next_id
        self.next_id += 1
        self.send({"id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            msg = self.read(deadline)
            if msg.get("id") == rid and "method" not in msg:
                assert "error" not in msg, msg
                return msg["result"]
            self.handle(msg)

    def notify(self, method, params):
        self.send({"method": method, "params": params})

    def wait_diagnostics(self, uri, timeout=60):
        deadline = time.monotonic() + timeout
        while uri not in self.diagnostics:
            self.handle(self.read(deadline))
        return self.diagnostics[uri][-1]["diagnostics"]

    def close(self):
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            self.p.wait(timeout=10)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()


def settings_for(schema_uri, yaml_version):
    s = dict(readme_settings())
    yaml = {k[len("yaml."):]: v for k, v in s.items() if k.startswith("yaml.")}
    # the README's schema path is the installed one; here the tree's copy
    yaml["schemas"] = {schema_uri: ["*.yaml"]}
    if yaml_version:
        yaml["yamlVersion"] = yaml_version
    yaml.setdefault("validate", True)
    return {"yaml": yaml}


def run_server(server, tmp_path, files, yaml_version=None):
    """{name: diagnostics} for each (name, text) in files, opened in a
    workspace at tmp_path."""
    schema = tmp_path / "berth.schema.json"
    shutil.copy(SCHEMA, schema)
    settings = settings_for(schema.as_uri(), yaml_version)
    lsp = Lsp(server, settings)
    try:
        lsp.request("initialize", {
            "processId": os.getpid(), "rootUri": tmp_path.as_uri(),
            "capabilities": {"workspace": {"configuration": True},
                             "textDocument": {"publishDiagnostics": {}}},
            "workspaceFolders": [{"uri": tmp_path.as_uri(), "name": "w"}]})
        lsp.notify("initialized", {})
        lsp.notify("workspace/didChangeConfiguration", {"settings": settings})
        out = {}
        for name, text in files:
            uri = (tmp_path / name).as_uri()
            lsp.diagnostics.pop(uri, None)
            lsp.notify("textDocument/didOpen", {"textDocument": {
                "uri": uri, "languageId": "yaml", "version": 1, "text": text}})
            out[name] = lsp.wait_diagnostics(uri)
        return out
    finally:
        lsp.close()


def expectation(path):
    m = re.match(r"# expect: (\d+):(\d+): (.+)$", path.read_text().splitlines()[0])
    assert m, f"{path.name} has no '# expect: LINE:COLUMN: message' first line"
    return int(m.group(1))


def at_line(diags, line):
    """Some diagnostic (an error or a warning) covers berth's LINE (1-based;
    0 means the whole file: any diagnostic). A missing key: the server marks
    the key whose mapping lacks it, the line above the mapping's first,
    which is berth's (the README says so)."""
    if line == 0:
        return bool(diags)
    for d in diags:
        if d.get("severity", 1) > 2:
            continue
        first, last = d["range"]["start"]["line"], d["range"]["end"]["line"]
        if d["message"].startswith("Missing property") and first == line - 2:
            return True
        if first <= line - 1 <= last:
            return True
    return False


def test_the_readme_setup_agrees_with_berth_on_every_example(server, tmp_path):
    valid = sorted((EXAMPLES / "valid").glob("*.yaml"))
    invalid = sorted((EXAMPLES / "invalid").glob("*.yaml"))
    only = berth_only()
    assert only <= {p.name for p in invalid}, only - {p.name for p in invalid}
    files = [(p.name, p.read_text()) for p in valid + invalid]
    got = run_server(server, tmp_path, files, yaml_version=None)

    wrong = []
    for p in valid:
        errors = [d for d in got[p.name] if d.get("severity", 1) == 1]
        if errors:
            wrong.append(f"valid {p.name} flagged: {[d['message'] for d in errors]}")
    for p in invalid:
        line = expectation(p)
        flagged = at_line(got[p.name], line)
        if p.name in only and flagged:
            wrong.append(f"{p.name} is listed as berth-only but the server flags it at {line}")
        elif p.name not in only and not flagged:
            wrong.append(f"invalid {p.name} not flagged at line {line}: "
                         f"{[(d['range']['start']['line'] + 1, d['message']) for d in got[p.name]]}")
    assert not wrong, "\n".join(wrong)
    # berth agrees on each file: the examples are what test_validate checks
    berth = os.environ.get("BERTH_BIN", str(TOP / "build" / "berth"))
    for p in valid:
        assert subprocess.run([berth, "validate", str(p)], capture_output=True).returncode == 0
    for p in invalid:
        assert subprocess.run([berth, "validate", str(p)], capture_output=True).returncode == 1


def test_yes_is_a_string_without_the_setting(server, tmp_path):
    """Why the README sets YAML 1.1: without it the server types `yes` as a
    string (YAML 1.2) and flags what berth (YAML 1.1, like PyYAML and Puppet's
    Psych) reads as true. With the setting, `yes` passes, and a quoted
    "yes" is flagged by both."""
    base = (EXAMPLES / "valid" / "minimal.yaml").read_text().rstrip("\n")
    assert "enabled" not in base
    files = [("yes.yaml", base + "\n    enabled: yes\n"),
             ("quoted.yaml", base + '\n    enabled: "yes"\n')]
    n = len(files[0][1].splitlines())
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    bare = run_server(server, tmp_path / "a", files, yaml_version="1.2")
    assert at_line(bare["yes.yaml"], n), bare  # 1.2: a string, flagged
    set11 = run_server(server, tmp_path / "b", files, yaml_version=None)
    assert not [d for d in set11["yes.yaml"] if d.get("severity", 1) == 1], set11
    assert at_line(set11["quoted.yaml"], n), set11
    berth = os.environ.get("BERTH_BIN", str(TOP / "build" / "berth"))
    for name, text in files:
        r = subprocess.run([berth, "validate", "-"], input=text.encode(), capture_output=True)
        assert r.returncode == (0 if name == "yes.yaml" else 1), (name, r.stderr)
