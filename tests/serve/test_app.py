"""The server over plain HTTP: every endpoint on a model of its task, the bounds and refusals as
4xx JSON errors, concurrent generations each equal to the same one served alone, a client that
goes away, and a model directory left as it was."""

import http.client
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("starlette", reason="rnnkit serve needs the [serve] extra: pip install -e '.[serve]'")

from rnnkit.cli.main import main  # noqa: E402
from rnnkit.serve import app, lm, views  # noqa: E402

from conftest import running  # noqa: E402  (tests/serve/conftest.py)


def test_the_page_and_its_files_are_served_from_the_package(servers):
    client = servers["lm"]
    status, page, kind = client.get("/")
    assert status == 200 and kind.startswith("text/html") and '<script src="/static/app.js">' in page
    assert "http" not in page.replace("http-equiv", "")  # no CDN: nothing loaded from elsewhere
    status, script, kind = client.get("/static/app.js")
    assert status == 200 and "javascript" in kind and "fetch(" in script
    assert client.get("/static/style.css")[0] == 200
    status, error, _ = client.get("/static/../../config.json")
    assert status == 404 and "error" in error


def test_model_describes_the_task_and_the_lm_choices(servers, models):
    status, info, _ = servers["lm"].get("/api/model")
    assert status == 200 and info["task"] == "lm" and "2-layer" in info["description"]
    assert info["lm"]["layers"] == 2
    assert info["lm"]["signals"] == {"h": 16, "c": 16, "gate:input": 16, "gate:forget": 16, "gate:cell": 16, "gate:output": 16}
    for task in ("classify", "tag", "translate", "forecast", "detect"):
        status, info, _ = servers[task].get("/api/model")
        assert status == 200 and info["task"] == task


def test_a_stream_is_the_text_rnnkit_generate_writes_with_each_tokens_activations(servers, models):
    model, _ = models["lm"]
    body = {"prime": "the ", "length": 60, "temperature": 0.9, "top_k": 5, "top_p": 0.95, "seed": 7, "layer": 0,
            "signal": "c", "unit": 3}
    events = servers["lm"].generate(body)
    *tokens, done = events
    assert done["done"] and done["tokens"] == 60
    expected = model.generate("the ", 60, temperature=0.9, top_k=5, top_p=0.95, seed=7)
    assert done["text"] == expected == "".join(e["text"] for e in tokens)
    assert [e["prime"] for e in tokens] == [True] * 4 + [False] * 60
    assert all(len(e["values"]) == 16 and len(e["gates"]) == 4 for e in tokens)
    assert all(0 <= g <= 1 for e in tokens for g in e["gates"][:2])  # input and forget gates: sigmoids
    # the values are the layer's c after each token: a step of the model from the previous state says so
    gen = lm.Generation(model, lm.GenerateRequest(**body))
    gen.start()
    _, state, signals = lm.step(model, gen.prime_ids, None)
    assert tokens[3]["values"] == pytest.approx(signals["c"][0].tolist(), abs=1e-3)


def test_a_generation_asks_its_own_seed_and_greedy_needs_none(servers):
    a = servers["lm"].generate({"prime": "the", "length": 30, "seed": 1})[-1]["text"]
    b = servers["lm"].generate({"prime": "the", "length": 30, "seed": 2})[-1]["text"]
    assert a != b
    greedy = [servers["lm"].generate({"prime": "the", "length": 20, "temperature": 0})[-1]["text"] for _ in range(2)]
    assert greedy[0] == greedy[1]


def test_concurrent_streams_each_equal_the_same_request_served_alone(servers):
    client = servers["lm"]
    bodies = [{"prime": p, "length": 80, "seed": s, "temperature": t, "signal": sig, "layer": layer, "unit": u}
              for p, s, t, sig, layer, u in (("the ", 1, 1.0, "h", 1, 0), ("(aside", 2, 0.7, "gate:forget", 0, 5),
                                             ('"no', 3, 1.3, "c", 1, 15), ("king", 4, 0.0, "h", 0, 2))]
    alone = [client.generate(b) for b in bodies]
    with ThreadPoolExecutor(len(bodies)) as pool:
        together = list(pool.map(client.generate, bodies))
    assert together == alone
    assert len({events[-1]["text"] for events in alone}) == len(bodies)


def test_the_units_panel_finds_units_for_each_text_feature(servers):
    status, found, _ = servers["lm"].get("/api/lm/units")
    assert status == 200 and found["chars"] > 100
    by_feature = {f["feature"]: f for f in found["features"]}
    assert set(by_feature) == set(lm.FEATURES)
    for f in by_feature.values():  # every feature changes in the text the model learnt from
        assert f["present"] and len(f["units"]) == lm.TOP_UNITS
        rs = [abs(u["r"]) for u in f["units"]]
        assert rs == sorted(rs, reverse=True) and all(0 < r <= 1 for r in rs)
        assert all(u["signal"] in ("h", "c") or u["signal"].startswith("gate:") for u in f["units"])


def test_classify_tag_and_translate_answer_with_their_pictures(servers, models):
    status, out, _ = servers["classify"].post("/api/classify", {"texts": ["the film was great", "awful plot"]})
    assert status == 200 and len(out["results"]) == 2
    for r in out["results"]:
        assert set(r["probabilities"]) == set(out["labels"]) and sum(r["probabilities"].values()) == pytest.approx(1)
    expected = models["classify"][0].classify(["the film was great", "awful plot"])
    assert [{"label": r["label"], "probabilities": r["probabilities"]} for r in out["results"]] == expected
    for r in out["results"]:  # attention pooling: a weight per token
        assert len(r["weights"]) == len(r["tokens"]) and sum(r["weights"]) == pytest.approx(1, abs=1e-3)
    assert out["results"][0]["tokens"] == ["the", "film", "was", "great"]

    status, out, _ = servers["tag"].post("/api/tag", {"texts": ["alice smith went to paris"]})
    r = out["results"][0]
    assert status == 200 and r["tokens"] == ["alice", "smith", "went", "to", "paris"] and len(r["tags"]) == 5
    assert r["tags"] == models["tag"][0].tag(["alice smith went to paris"])[0]["tags"]

    status, out, _ = servers["translate"].post("/api/translate", {"texts": ["the dog sees a red cat"], "beam": 2})
    r = out["results"][0]
    assert status == 200 and r["source_tokens"][:6] == ["the", "dog", "sees", "a", "red", "cat"]
    assert len(r["attention"]) == len(r["tokens"]) and all(len(row) == len(r["source_tokens"]) for row in r["attention"])
    assert all(sum(row) == pytest.approx(1, abs=1e-3) for row in r["attention"])


def test_forecast_and_detect_show_the_models_own_series(servers, models):
    status, out, _ = servers["forecast"].get("/api/forecast")
    f = out["forecast"]
    assert status == 200 and out["columns"] == ["sales"] and out["horizon"] == 6 and len(f["time"]) == 6
    assert f["time"][0] == "2010-01-01T00:00:00" and out["history"]["time"][-1] == "2009-12-01T00:00:00"
    assert all(lo[0] <= m[0] <= hi[0] for lo, m, hi in zip(f["lower"], f["mean"], f["upper"]))
    assert [m[0] for m in f["mean"]] == pytest.approx(models["forecast"][0].forecast()["mean"][:, 0], abs=1e-4)

    status, out, _ = servers["detect"].get("/api/detect")
    assert status == 200 and len(out["scores"]) == len(out["values"]) == len(out["time"]) and out["first"] == 0
    flagged = [i for i, s in enumerate(out["scores"]) if out["scored"][i] and s > out["threshold"]]
    assert [i for a, b in out["ranges"] for i in range(a, b)] == flagged


@pytest.mark.parametrize("path, body, status, words", [
    ("/api/lm/generate", {"length": lm.MAX_LENGTH + 1}, 400, "length: expected 1 to 2000"),
    ("/api/lm/generate", {"prime": "x" * (lm.MAX_PRIME + 1)}, 400, "prime: expected 1 to 1000 characters"),
    ("/api/lm/generate", {"prime": "the Zebra"}, 400, "prime: characters not in the model's vocabulary"),
    ("/api/lm/generate", {"temperature": "hot"}, 400, "temperature: expected a number"),
    ("/api/lm/generate", {"top_p": 0}, 400, "top_p: expected a number in (0, 1]"),
    ("/api/lm/generate", {"seed": -1}, 400, "seed: expected an integer from 0"),
    ("/api/lm/generate", {"layer": 2}, 400, "layer: expected 0 to 1"),
    ("/api/lm/generate", {"signal": "gate:reset"}, 400, "signal: expected one of h, c, gate:input"),
    ("/api/lm/generate", {"unit": 16}, 400, "unit: expected 0 to 15"),
    ("/api/lm/generate", {"condition": "comedy"}, 400, "condition: "),
    ("/api/lm/generate", {"path": "/etc/passwd"}, 400, "body: unknown field 'path'"),
    ("/api/lm/generate", [1, 2], 400, "body: expected a JSON object, got list"),
    ("/api/classify", {"texts": ["x"]}, 404, "this server's model is a 'lm' model; this endpoint needs a 'classify'"),
    ("/api/forecast", None, 404, "needs a 'forecast' model"),
    ("/api/data?path=/etc/passwd", None, 404, "GET /api/data: Not Found"),
])
def test_bad_requests_are_4xx_json_errors_naming_the_field(servers, path, body, status, words):
    got, out, kind = servers["lm"].request("GET" if body is None else "POST", path, body)
    assert (got, kind) == (status, "application/json") and words in out["error"] and "\n" not in out["error"]


def test_bad_texts_and_bodies_are_refused(servers):
    client = servers["classify"]
    status, out, _ = client.post("/api/classify", {"texts": ["a"] * (views.MAX_TEXTS + 1)})
    assert status == 400 and out["error"] == f"texts: expected a list of 1 to {views.MAX_TEXTS} strings"
    status, out, _ = client.post("/api/classify", {"texts": ["a" * (views.MAX_TEXT_CHARS + 1)]})
    assert status == 400 and "longer than 2000 characters" in out["error"]
    status, out, _ = client.post("/api/classify", {"series": [[1, 2]]})
    assert status == 400 and out["error"] == "series: this model reads texts; send texts"
    status, out, _ = client.request("POST", "/api/classify", raw=b"{not json")
    assert status == 400 and out["error"].startswith("body: expected a JSON object, got invalid JSON")
    status, out, _ = client.request("POST", "/api/classify", raw=b"x" * (app.MAX_BODY + 1))
    assert status == 413 and out["error"] == f"body: {app.MAX_BODY + 1} bytes; at most {app.MAX_BODY} are read"
    status, out, _ = servers["translate"].post("/api/translate", {"texts": ["the dog"], "beam": 0})
    assert status == 400 and out["error"] == "beam: expected a width from 1 to 16, got 0"
    status, out, _ = client.request("GET", "/api/classify")
    assert status == 405 and "error" in out


def wait_for(condition, what: str, seconds: float = 60):
    """Poll ``condition`` until it holds (a bound on a wait, not a timing)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_generations_at_once_are_bounded_and_a_vanished_client_frees_its_slot(servers):
    client = servers["lm"]
    streams = []
    for _ in range(app.MAX_GENERATIONS):  # each reads one event, then leaves its stream unread
        conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=60)
        conn.request("POST", "/api/lm/generate", json.dumps({"length": lm.MAX_LENGTH, "seed": 0}),
                     {"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200 and response.readline().startswith(b"data: ")
        streams.append((conn, response))
    assert client.get("/api/status")[1] == {"generations": app.MAX_GENERATIONS, "max_generations": app.MAX_GENERATIONS}
    status, out, _ = client.post("/api/lm/generate", {"length": 5})
    assert status == 429 and out["error"].startswith(f"generations: {app.MAX_GENERATIONS} are running")
    # the other endpoints still answer while the streams wait on their readers
    assert client.get("/api/model")[0] == 200
    for conn, response in streams:  # the clients go away mid-stream
        response.close()
        conn.close()
    wait_for(lambda: client.get("/api/status")[1]["generations"] == 0, "a closed stream kept its generation")
    assert client.generate({"length": 5, "seed": 0})[-1]["done"]


def snapshot(directory):
    return {p.relative_to(directory): (p.stat().st_size, p.stat().st_mtime_ns) for p in directory.rglob("*")}


def test_serving_writes_nothing_into_the_model_directory(models):
    for task in ("lm", "detect"):
        model, directory = models[task]
        before = snapshot(directory)
        with running(model) as client:
            for path in ("/", "/api/model", "/api/lm/units", "/api/detect"):
                client.get(path)
            if task == "lm":
                assert client.generate({"length": 5})[-1]["done"]
        assert snapshot(directory) == before


def test_the_command_refuses_a_bad_port_and_a_port_in_use(models, capsys):
    _, directory = models["lm"]
    assert main(["serve", str(directory), "--port", "70000"]) == 2
    assert capsys.readouterr().err == "rnnkit: error: --port: expected a port from 1 to 65535, got 70000\n"
    with running(models["lm"][0]) as client:
        assert main(["serve", str(directory), "--port", str(client.port)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"rnnkit: error: --host 127.0.0.1 --port {client.port}: cannot listen there") and err.count("\n") == 1


def test_the_command_prints_the_url_and_warns_off_loopback(models, tmp_path):
    """`rnnkit serve` as a user runs it: a real process, its first lines, then Ctrl-C."""
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a port free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, directory = models["lm"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-m", "rnnkit.cli.main", "serve", str(directory), "--host", "0.0.0.0", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line == f"rnnkit: serving {directory} at http://0.0.0.0:{port}/ (Ctrl-C stops)\n"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        wait_for(lambda: _answers(conn), "the server did not answer")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert "rnnkit: warning: --host 0.0.0.0: the page and its API are open to every machine" in err


def _answers(conn) -> bool:
    try:
        conn.request("GET", "/api/status")
        return conn.getresponse().read() != b""
    except OSError:
        conn.close()
        return False
