"""Tiny trained models of every task, made here by a few training steps, and a real server
(uvicorn on a free port of 127.0.0.1) in a thread for each."""

import contextlib
import http.client
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import rnnkit

from tasks.test_classify import write_reviews  # (tests/ is on sys.path: tests/conftest.py)
from tasks.test_detect import write as write_sine
from tasks.test_forecast import write_monthly
from tasks.test_tag import write_conll
from tasks.test_translate import write_pairs


def write_text(path: Path, n: int = 400, seed: int = 0) -> Path:
    """Lines of words, some "quoted" and some (bracketed): features the units panel looks for."""
    rng = np.random.default_rng(seed)
    words = ["the", "king", "said", "to", "me", '"no"', '"yes, my lord"', "(aside)", "(exit)"]
    lines = [" ".join(rng.choice(words, size=int(rng.integers(2, 8)))) for _ in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _train(tmp: Path, task: str, data: Path, **options):
    return rnnkit.train(task, tmp / task, data=str(data), quiet=True, **options)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """{task: (trained model, its directory)}, trained for a few steps each."""
    tmp = tmp_path_factory.mktemp("serve-models")
    made = {
        "lm": _train(tmp, "lm", write_text(tmp / "text.txt"), steps=10, hidden=16, embed=8, layers=2, seq_len=32,
                     batch_size=8, valid_every=10),
        "classify": _train(tmp, "classify", write_reviews(tmp / "reviews.tsv"), steps=4, hidden=8, embed=4, batch_size=8,
                           valid_every=4, pooling="attention"),
        "tag": _train(tmp, "tag", write_conll(tmp / "ner.conll", n=60), steps=4, hidden=8, embed=4, valid_every=4),
        "translate": _train(tmp, "translate", write_pairs(tmp / "pairs.tsv", n=120), steps=4, hidden=8, embed=4,
                            valid_every=4),
        "forecast": _train(tmp, "forecast", write_monthly(tmp / "sales.csv"), horizon=6, season=12, window=24, origins=2,
                           hidden=8, steps=2, valid_every=2),
        "detect": _train(tmp, "detect", write_sine(tmp / "sine.csv", n=400), window=16, hidden=8, steps=4, batch_size=16,
                         valid_every=4),
    }
    return {task: (model, tmp / task) for task, model in made.items()}


class Client:
    """Plain HTTP to one running server: JSON in, JSON out, and server-sent events."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def request(self, method: str, path: str, body=None, raw: bytes | None = None, headers=None):
        """(status, parsed JSON or text, content type)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        payload = response.read()
        kind = response.getheader("Content-Type", "")
        conn.close()
        return response.status, (json.loads(payload) if "json" in kind else payload.decode()), kind

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, body):
        return self.request("POST", path, body)

    @contextlib.contextmanager
    def stream(self, body: dict):
        """The events of a generation as they come: yields an iterator of parsed events."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", "/api/lm/generate", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200, response.read()

        def events():
            for line in response:
                if line.startswith(b"data: "):
                    yield json.loads(line[6:])

        try:
            yield events()
        finally:
            conn.close()

    def generate(self, body: dict) -> list[dict]:
        with self.stream(body) as events:
            return list(events)


@contextlib.contextmanager
def running(trained):
    """A server of ``trained`` on a free port, stopped on exit."""
    from rnnkit.serve.app import make_server  # the [serve] extra: the tests that serve skip without it

    sock = socket.create_server(("127.0.0.1", 0))
    server = make_server(trained)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    client = Client(sock.getsockname()[1])
    for _ in range(400):  # until it answers (it starts in a few ms; a loaded machine takes longer)
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="session")
def servers(models):
    """{task: Client} of a running server for each task's model."""
    with contextlib.ExitStack() as stack:
        yield {task: stack.enter_context(running(model)) for task, (model, _) in models.items()}
