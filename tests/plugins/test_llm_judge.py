"""The llm_judge reward against a small OpenAI-compatible server the test starts: verdicts,
parsing, retries, timeouts, the concurrency limit, the API key, and errors that name the cause."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vidrl import Sample, Session
from vidrl.engine.scoring import RewardError, score


class Judge(BaseHTTPRequestHandler):
    """Answers "yes" when the candidate answer equals the reference; by magic words in the
    candidate: ``flaky`` fails with 503 the first time, ``slow`` sleeps 2 s, ``garbage`` is not a
    chat completion, ``maybe`` is neither yes nor no, ``score`` replies "Score: 0.75"."""

    server: "Server"

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802 (the handler's name)
        s = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        candidate = prompt.split("Candidate answer: ")[1].split("\n")[0]
        reference = prompt.split("Reference answer: ")[1].split("\n")[0]
        with s.lock:
            s.seen.append((self.path, body["model"], self.headers.get("Authorization"), candidate))
            s.active += 1
            s.peak = max(s.peak, s.active)
            first = s.attempts.get(candidate, 0) == 0
            s.attempts[candidate] = s.attempts.get(candidate, 0) + 1
        try:
            time.sleep(2.0 if candidate == "slow" else 0.05)
            if candidate == "flaky" and first:
                return self._send(503, b"busy")
            if candidate == "garbage":
                return self._send(200, b'{"nothing": 1}')
            reply = {"maybe": "perhaps", "score": "Score: 0.75"}.get(
                candidate, "yes" if candidate == reference else "no"
            )
            self._send(200, json.dumps({"choices": [{"message": {"content": reply}}]}).encode())
        finally:
            with s.lock:
                s.active -= 1

    def _send(self, code, data):
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Judge)
        self.lock, self.seen, self.attempts, self.active, self.peak = threading.Lock(), [], {}, 0, 0


@pytest.fixture
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _judge(server, **options):
    cls = Session().load().registry("reward").get("llm_judge")
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    return cls(cls.Config(base_url=base, model="judge-7b", **options))


def _samples(n, answer="a red square"):
    return [Sample(f"s{i}", "What moves?", answer, task_type="free_form") for i in range(n)]


def test_verdicts_and_what_reaches_the_endpoint(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    responses = ["<answer>a red square</answer>", "<answer>a blue circle</answer>", "a red square", "maybe"]
    assert _judge(server)(responses, _samples(4)) == [1.0, 0.0, 1.0, None]  # "perhaps": no opinion
    paths, models, keys, candidates = zip(*server.seen, strict=True)
    assert (
        set(paths) == {"/v1/chat/completions"}
        and set(models) == {"judge-7b"}
        and set(keys) == {"Bearer sk-test"}
    )
    assert sorted(candidates) == sorted(["a red square", "a blue circle", "a red square", "maybe"])


def test_number_replies_are_clipped_scores(server):
    assert _judge(server, parse="number")(["score", "a red square"], _samples(2)) == [0.75, None]


def test_a_failed_request_is_retried_and_concurrency_is_limited(server):
    out = _judge(server, concurrency=2)(["flaky"] + ["x"] * 7, _samples(8))
    assert out == [0.0] * 8 and server.attempts["flaky"] == 2 and server.peak == 2


def test_a_request_that_times_out_fails_after_its_retries(server):
    judge = _judge(server, timeout=0.3, retries=1)
    t = time.perf_counter()
    with pytest.raises(RewardError, match=r"reward 'j' .* raised .*did not answer within 0.3 s"):
        score([("j", 1.0, judge)], ["slow"], _samples(1))
    assert server.attempts["slow"] == 2 and time.perf_counter() - t < 1.9  # not waiting out the 2 s replies
    lenient = _judge(server, timeout=0.3, retries=0, on_error="none")
    assert lenient(["slow", "a red square"], _samples(2)) == [None, 1.0]


def test_a_reply_that_is_not_a_completion_is_not_retried(server):
    with pytest.raises(RewardError, match="not a chat completion"):
        score([("j", 1.0, _judge(server, retries=3))], ["garbage"], _samples(1))
    assert server.attempts["garbage"] == 1


def test_an_unreachable_endpoint_names_itself():
    cls = Session().load().registry("reward").get("llm_judge")
    judge = cls(cls.Config(base_url="http://127.0.0.1:9/v1", model="m", retries=0, timeout=1))
    with pytest.raises(RewardError, match=r"http://127.0.0.1:9/v1/chat/completions did not answer"):
        score([("j", 1.0, judge)], ["x"], _samples(1))


def test_tasks_limit_what_it_scores_and_options_are_checked(server):
    judge = _judge(server, tasks=("free_form",))
    other = Sample("n", "How many?", "3", task_type="numeric")
    out = score([("j", 1.0, judge)], ["<answer>a red square</answer>", "3"], [*_samples(1), other])
    assert out.per_reward["j"][0] == 1.0 and not out.scored[1]
    cls = type(judge)
    with pytest.raises(ValueError, match="base_url must start with http"):
        cls.Config(base_url="localhost:8000", model="m")
    with pytest.raises(ValueError, match=r"template must contain \{question\} and \{response\}"):
        cls.Config(base_url="http://x", model="m", template="Grade {answer}")
