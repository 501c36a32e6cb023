"""`corpuslab push` against a small fake Hugging Face Hub on loopback: repo create, YAML check, preupload, commit."""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from corpuslab.cli import main


class FakeHub(BaseHTTPRequestHandler):
    created: list = []
    commits: list = []
    auth: list = []

    def log_message(self, *args):
        pass

    def _reply(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        FakeHub.auth.append(self.headers.get("Authorization"))
        if self.path == "/api/repos/create":
            request = json.loads(body)
            FakeHub.created.append(request)
            owner = request.get("organization") or "me"
            return self._reply({"url": f"http://{self.headers['Host']}/{request.get('type', 'model')}s/{owner}/{request['name']}"})
        if self.path == "/api/validate-yaml":  # the hub checks a README's metadata before the commit
            return self._reply({"errors": [], "warnings": []})
        if "/preupload/" in self.path:
            files = json.loads(body)["files"]
            return self._reply({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
        if "/commit/" in self.path:
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            FakeHub.commits.append((self.path, lines))
            repo = self.path.split("/commit/")[0].replace("/api/", "/")
            return self._reply({"commitUrl": f"http://{self.headers['Host']}{repo}/commit/{'a' * 40}", "commitOid": "a" * 40,
                                "success": True})
        self._reply({"error": f"unexpected {self.path}"}, 404)

    def do_GET(self):
        self._reply({"error": f"unexpected {self.path}"}, 404)


@pytest.fixture
def hub():
    FakeHub.created, FakeHub.commits, FakeHub.auth = [], [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_push_uploads_a_dataset_folder_with_the_token(tmp_path, hub, monkeypatch, capsys):
    folder = tmp_path / "ds"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("---\nconfigs: []\n---\n# card\n")
    (folder / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 not really")
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_123")
    assert main(["push", str(folder), "--repo", "me/tiny", "--endpoint", hub]) == 0
    out = capsys.readouterr()
    assert "hf_secret_token_123" not in out.out + out.err
    assert FakeHub.created[0]["name"] == "tiny" and FakeHub.created[0]["type"] == "dataset"
    path, lines = FakeHub.commits[0]
    assert path.startswith("/api/datasets/me/tiny/commit/")
    files = {line["value"]["path"]: base64.b64decode(line["value"]["content"]) for line in lines if line["key"] == "file"}
    assert files == {"README.md": b"---\nconfigs: []\n---\n# card\n", "data/train-00000-of-00001.parquet": b"PAR1 not really"}
    assert "Bearer hf_secret_token_123" in FakeHub.auth


def test_push_refuses_a_folder_that_is_neither_model_nor_dataset(tmp_path, hub, capsys):
    (tmp_path / "x").mkdir()
    assert main(["push", str(tmp_path / "x"), "--repo", "me/x", "--endpoint", hub]) == 2
    assert "neither a model folder" in capsys.readouterr().err
