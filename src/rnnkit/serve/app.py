"""The web server of `rnnkit serve DIR`: one page that adapts to the model's task, and the JSON
API behind it (README, "See inside: rnnkit serve", lists every endpoint).

Starlette (routing, streaming) on uvicorn (HTTP): a small, well-kept ASGI stack, installed by the
``[serve]`` extra so that the toolkit itself needs neither.

One model, many requests. Every computation on the model runs in a worker thread under one lock
(``ModelLock``), so the event loop stays free to accept and stream; a request's own state (a
generation's recurrent state, generator and text) lives in the request, never in the model, and
the model's layer caches are cleared before the lock is released. A generation takes the lock for
one token at a time, so several stream side by side, each exactly as it would alone; a client that
goes away ends its generation at the next token. Safe by default: sizes are bounded (a body,
texts, a prime, a generation's length, the number of generations at once), each excess a 4xx JSON
error that says which bound; no endpoint takes a path; nothing is written to the model directory.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import fields
from importlib import resources

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..api import api_wording
from ..data import DataError
from ..training.model_dir import ModelDirError
from . import lm, views

MAX_BODY = 256 * 1024  # bytes of a request body: room for 32 texts of 2000 characters, escaped
MAX_GENERATIONS = 4  # streams at once; another is refused (429) rather than queued
MAX_GENERATION_SECONDS = 600  # a generation still running after this ends with an error event
MAX_SEND_SECONDS = 60  # a stream whose client reads nothing for this long is ended (its buffers full)

#: the page and its files: fixed names, read from the package (never a path a client names)
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/static/style.css": ("style.css", "text/css; charset=utf-8")}


class RequestError(Exception):
    """A request the server refuses: its HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ModelLock:
    """The one lock every use of the model takes, in a worker thread."""

    def __init__(self):
        self._lock = threading.Lock()

    async def run(self, function, *args):
        def locked():
            with self._lock:
                return function(*args)

        # not abandoned on cancellation: a step runs to its end and releases the lock
        return await anyio.to_thread.run_sync(locked)


async def read_json(request: Request) -> dict:
    """The request's JSON object, read up to MAX_BODY bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise RequestError(413, f"body: {declared} bytes; at most {MAX_BODY} are read")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise RequestError(413, f"body: more than {MAX_BODY} bytes; at most {MAX_BODY} are read")
    try:
        value = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, f"body: expected a JSON object, got invalid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RequestError(400, f"body: expected a JSON object, got {type(value).__name__}")
    return value


def only(body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise RequestError(400, f"body: unknown field {unknown[0]!r}; this endpoint takes {', '.join(sorted(allowed))}")


_KINDS = {"int": (int,), "float": (int, float), "str": (str,)}


def generate_request(body: dict) -> lm.GenerateRequest:
    """The fields of a generation, each of its declared type (an int where a float is asked is fine)."""
    known = {f.name: f.type for f in fields(lm.GenerateRequest)}
    only(body, set(known))
    for name, value in body.items():
        kind = known[name].split(" | ")
        if value is None and "None" in kind:
            continue
        if isinstance(value, bool) or not isinstance(value, _KINDS[kind[0]]):
            raise RequestError(400, f"{name}: expected {'a number' if kind[0] != 'str' else 'a string'}"
                                    f"{' or null' if 'None' in kind else ''}, got {json.dumps(value)[:40]}")
    if body.get("seed") is not None and not 0 <= body["seed"] < 2**63:
        raise RequestError(400, f"seed: expected an integer from 0 to 2**63-1, got {body['seed']}")
    return lm.GenerateRequest(**body)


def create_app(trained) -> Starlette:
    """The server of one loaded model (``rnnkit.load(DIR)``)."""
    task = trained.config["task"]
    model_lock = ModelLock()
    generations = {"active": 0}
    units_cache: dict = {}

    def needs(name: str) -> None:
        if task != name:
            raise RequestError(404, f"this server's model is a {task!r} model; this endpoint needs a {name!r} model")

    async def page(request: Request) -> Response:
        name, media = STATIC[request.url.path]
        return Response(resources.files(__package__).joinpath("static", name).read_bytes(), media_type=media,
                        headers={"Cache-Control": "no-store"})

    async def model_info(request: Request) -> Response:
        info = views.describe(trained)
        if task == "lm":
            info["lm"] = lm.describe_model(trained)
        if task == "classify":  # texts or series: what the page's input box takes
            info["input"] = trained.encoding["input"]
        return JSONResponse(info)

    async def status(request: Request) -> Response:
        return JSONResponse({"generations": generations["active"], "max_generations": MAX_GENERATIONS})

    async def generate(request: Request) -> Response:
        needs("lm")
        body = await read_json(request)
        generation = lm.Generation(trained, generate_request(body))  # the request's checks, before a slot is taken
        if generations["active"] >= MAX_GENERATIONS:
            raise RequestError(429, f"generations: {MAX_GENERATIONS} are running, the most at once; try again when one ends")
        generations["active"] += 1

        async def events():
            started = time.monotonic()
            for event in await model_lock.run(generation.start):
                yield sse(event)
            for _ in range(generation.request.length):
                if time.monotonic() - started > MAX_GENERATION_SECONDS:
                    yield sse({"error": f"generation: stopped after {MAX_GENERATION_SECONDS} s, the most one may take"})
                    return
                yield sse(await model_lock.run(generation.next))
            yield sse({"done": True, "text": generation.text, "tokens": generation.done})

        def release() -> None:
            generations["active"] -= 1

        return EventStream(events(), release)

    async def units(request: Request) -> Response:
        needs("lm")

        def found() -> dict:  # under the lock: a second request waits for the first one's answer
            if "result" not in units_cache:
                units_cache["result"] = lm.feature_units(trained)
            return units_cache["result"]

        return JSONResponse(await model_lock.run(found))

    def action(name: str, view, takes: tuple[str, ...] = ()):
        """The endpoint of a task's view: a POST of a body with the fields ``takes`` (each
        optional, passed in that order), or a GET where it takes none."""

        async def endpoint(request: Request) -> Response:
            needs(name)
            body = await read_json(request) if takes else {}
            only(body, set(takes))
            return JSONResponse(await model_lock.run(view, trained, *(body.get(field) for field in takes)))

        return Route(f"/api/{name}", endpoint, methods=["POST" if takes else "GET"])

    async def refused(request: Request, exc: Exception) -> Response:
        if isinstance(exc, RequestError):
            status, message = exc.status, str(exc)
        elif isinstance(exc, HTTPException):
            status, message = exc.status_code, f"{request.method} {request.url.path}: {exc.detail}"
        else:  # the model's own checks: a prime it cannot read, a text with no known token …
            status, message = 400, api_wording(str(exc), task)
        return JSONResponse({"error": message}, status_code=status)

    routes = [Route(path, page, methods=["GET"]) for path in STATIC]
    routes += [Route("/api/model", model_info, methods=["GET"]), Route("/api/status", status, methods=["GET"]),
               Route("/api/lm/generate", generate, methods=["POST"]), Route("/api/lm/units", units, methods=["GET"]),
               action("classify", views.classify, ("texts", "series")), action("tag", views.tag, ("texts",)),
               action("translate", views.translate, ("texts", "beam")), action("forecast", views.forecast),
               action("detect", views.detect)]
    handlers = {RequestError: refused, HTTPException: refused, ValueError: refused, DataError: refused,
                ModelDirError: refused}
    return Starlette(routes=routes, exception_handlers=handlers)


class EventStream(StreamingResponse):
    """Server-sent events; ``release`` is called once the response ends, however it ends: done,
    the client gone mid-stream (the stream is cancelled at its next token), or gone before the
    first event (when the events' own code never ran)."""

    def __init__(self, events, release):
        super().__init__(events, media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        self.release = release

    async def __call__(self, scope, receive, send):
        async def send_in_time(message):  # a client that stops reading gives its slot back
            with anyio.fail_after(MAX_SEND_SECONDS):
                await send(message)

        try:
            await super().__call__(scope, receive, send_in_time)
        except TimeoutError:  # the connection is closed with the response unfinished
            pass
        finally:
            self.release()


def sse(event: dict) -> str:
    """One server-sent event."""
    return f"data: {json.dumps(event, separators=(',', ':'))}\n\n"


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: it may resolve anywhere
        return False


def make_server(trained, host: str = "127.0.0.1", port: int = 8000):
    """The uvicorn server of ``trained``: ``.run()`` serves until interrupted (``.run(sockets=[sock])``
    on a socket already bound, as the tests do with port 0); ``should_exit = True`` stops it."""
    import uvicorn

    config = uvicorn.Config(create_app(trained), host=host, port=port, log_level="warning", lifespan="off",
                            timeout_graceful_shutdown=2)
    return uvicorn.Server(config)
