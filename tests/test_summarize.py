"""Guided summaries (vo_clip.archive.summarize) against a fake OpenAI-compatible server.

The server runs in a thread on 127.0.0.1 and answers each chat-completions request from
a script keyed by the abstract in the request, so the tests can return valid, invalid,
truncated and fenced JSON, or HTTP errors, and count what was asked.
"""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from astropy.table import Table
from conftest import assert_one_line_error, run_cli, write_tiny_archive

from vo_clip.archive import Archive
from vo_clip.archive.summarize import (
    FAILURES_FILE,
    InvalidOutput,
    LLMUnavailableError,
    OpenAICompatibleBackend,
    Summary,
    cache_key,
    parse_summary,
    summarize_archive,
)

N_PROPOSALS = 6  # write_tiny_archive: proposal_id = 9000 + i % 6

VALID = {"objects_and_phenomena": ["globular cluster", "blue stragglers"],
         "science_use_cases": ["stellar population ages"]}


def abstract_of(proposal: str) -> str:
    return f"We propose to observe targets of programme {proposal} with ACS. (#{proposal})"


def valid_for(proposal: str) -> dict:
    return {"objects_and_phenomena": [f"object of {proposal}", "globular cluster"],
            "science_use_cases": [f"use case of {proposal}"]}


def make_archive(root, n=12):
    """The tiny test archive plus an abstract per proposal (no summaries yet)."""
    archive = write_tiny_archive(root, n=n)
    table = Table(archive.table, copy=True)
    table["proposal_abstract"] = [abstract_of(str(p)) for p in table["proposal_id"]]
    return Archive.write(root, table, name="tiny", source="tests", extra={"kept": "yes"})


class FakeLLM:
    """Scripted answers: ``script[proposal]`` is a list of replies, one per request.

    A reply is a dict (sent as the JSON content), a str (sent verbatim as the content),
    ``("length", str)`` (content with finish_reason=length), or ``(status, body)`` with an
    int status (an HTTP error). Proposals without a script get a valid summary.
    """

    def __init__(self, script=None):
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def proposal(self, body) -> str:
        text = body["messages"][1]["content"]
        return text.split("(#")[1].split(")")[0]

    def reply(self, body):
        with self.lock:
            self.requests.append(body)
            proposal = self.proposal(body)
            queue = self.script.get(proposal)
            answer = queue.pop(0) if queue else valid_for(proposal)
        if isinstance(answer, tuple) and isinstance(answer[0], int):
            return answer
        finish, content = ("stop", answer) if not isinstance(answer, tuple) else answer
        if isinstance(content, dict):
            content = json.dumps(content)
        return 200, {"id": "x", "object": "chat.completion", "model": body["model"],
                     "choices": [{"index": 0, "finish_reason": finish,
                                  "message": {"role": "assistant", "content": content}}]}

    def requests_for(self, proposal: str) -> int:
        return sum(self.proposal(b) == proposal for b in self.requests)


@contextmanager
def fake_server(llm: FakeLLM):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length))
            if self.path != "/v1/chat/completions":
                status, payload = 404, {"error": {"message": f"no route {self.path}"}}
            else:
                status, payload = llm.reply(body)
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def backend_for(llm: FakeLLM, **kwargs):
    with fake_server(llm) as url:
        with OpenAICompatibleBackend(url, "fake-model", backoff=0.01, **kwargs) as backend:
            yield backend


def _values(column) -> list:
    """A column's values as str, masked ones as None."""
    mask = getattr(column, "mask", None)
    if mask is None:
        return [str(v) for v in column]
    return [None if m else str(v) for v, m in zip(column, mask)]


# -- parsing -------------------------------------------------------------------------------

def test_parse_accepts_fences_and_normalises_items():
    text = '```json\n{"objects_and_phenomena": ["  a; b  "], "science_use_cases": ["x"]}\n```'
    summary = parse_summary(text)
    assert summary.objects_and_phenomena == ["a, b"]
    assert summary.objects == "a, b" and summary.use_cases == "x"


@pytest.mark.parametrize("text, reason", [
    ('{"objects_and_phenomena": [], "science_use_cases": ["x"]}', "at least 1 item"),
    ('{"objects_and_phenomena": ["a"], "science_use_cases": ["x"], "notes": "n"}', "notes"),
    ('{"objects_and_phenomena": ["a", "b", "c", "d", "e", "f"], "science_use_cases": ["x"]}',
     "at most 5"),
    ('{"objects_and_phenomena": ["' + "x" * 81 + '"], "science_use_cases": ["x"]}',
     "at most 80"),
    ('{"objects_and_phenomena": ["a"], "science_use_cases": ["  "]}', "science_use_cases.0"),
    ('{"objects_and_phenomena": ["glob', "not valid JSON"),
    ("I cannot help with that.", "no JSON object"),
])
def test_parse_rejects(text, reason):
    with pytest.raises(InvalidOutput, match=reason):
        parse_summary(text)


def test_truncation_is_named():
    with pytest.raises(InvalidOutput, match="truncated"):
        parse_summary('{"objects_and_phenomena": ["glob', finish_reason="length")


def test_schema_forbids_extra_keys():
    schema = Summary.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["objects_and_phenomena"]["maxItems"] == 5


# -- an archive ------------------------------------------------------------------------------

def test_summaries_stored_failures_reported_and_cached(tmp_path):
    archive = make_archive(tmp_path / "archive")
    truncated = json.dumps(VALID)[:30]
    script = {
        "9000": [VALID],                                        # valid at once
        "9001": [{"objects_and_phenomena": [], "science_use_cases": ["x"]},
                 {**VALID, "extra": 1}, truncated],             # invalid thrice: fails
        "9002": [("length", truncated), "```json\n" + json.dumps(VALID) + "\n```"],
        "9003": [(500, {"error": "busy"}), VALID],             # transport retry
        "9004": ["no json here", "still none", "nope"],         # fails
    }
    llm = FakeLLM(script)
    cache = tmp_path / "cache"
    with backend_for(llm) as backend:
        report = summarize_archive(archive.root, backend, retries=3, cache_dir=cache,
                                   progress=False)
    assert (report.proposals, report.summarized, report.cached, report.failed) == \
        (N_PROPOSALS, 4, 0, 2)
    assert llm.requests_for("9000") == 1
    assert llm.requests_for("9001") == 3 and llm.requests_for("9004") == 3
    assert llm.requests_for("9002") == 2 and llm.requests_for("9003") == 2
    assert report.requests == 1 + 3 + 2 + 1 + 3 + 1  # transport retries are not counted
    failed = {f.proposal_id: f for f in report.failures}
    assert set(failed) == {"9001", "9004"}
    assert "not valid JSON" in failed["9001"].reason and failed["9001"].requests == 3
    assert failed["9004"].raw_excerpt == "nope"

    stored = Archive.open(archive.root)
    assert stored.metadata["kept"] == "yes" and stored.metadata["source"] == "tests"
    assert stored.metadata["summaries"]["model"] == backend.model_id
    assert len(stored) == len(archive)
    rows = {str(o): (str(p), str(a), s, u) for o, p, a, s, u in zip(
        stored.table["obs_id"], stored.table["proposal_id"], stored.table["proposal_abstract"],
        _values(stored.table["summary_objects"]), _values(stored.table["summary_use_cases"]))}
    for obs_id, (proposal, abstract, objects, use_cases) in rows.items():
        assert abstract == abstract_of(proposal)
        if proposal in ("9000", "9002", "9003"):
            assert (objects, use_cases) == ("globular cluster; blue stragglers",
                                            "stellar population ages")
        elif proposal in ("9001", "9004"):
            assert (objects, use_cases) == (None, None)  # NULL in the table
        else:
            assert (objects, use_cases) == ("object of 9005; globular cluster",
                                            "use case of 9005")
    assert report.rows_updated == sum(p[0] not in ("9001", "9004") for p in rows.values())
    listed = json.loads((archive.root / FAILURES_FILE).read_text())
    assert {f["proposal_id"] for f in listed} == {"9001", "9004"}

    # a second run asks only for the failures (the script is exhausted: now valid)
    llm.requests.clear()
    with fake_server(llm) as url, OpenAICompatibleBackend(url, "fake-model") as again:
        second = summarize_archive(archive.root, again, cache_dir=cache, progress=False)
    assert (second.summarized, second.cached, second.failed) == (2, 4, 0)
    assert {llm.proposal(b) for b in llm.requests} == {"9001", "9004"}
    assert not (archive.root / FAILURES_FILE).exists()
    final = Archive.open(archive.root)
    assert all(_values(final.table["summary_objects"]))

    # a third asks nothing at all
    llm.requests.clear()
    with fake_server(llm) as url, OpenAICompatibleBackend(url, "fake-model") as third:
        report3 = summarize_archive(archive.root, third, cache_dir=cache, progress=False)
    assert (report3.cached, report3.requests, llm.requests) == (6, 0, [])


def test_interrupted_run_resumes(tmp_path):
    archive = make_archive(tmp_path / "archive")
    cache = tmp_path / "cache"
    llm = FakeLLM({"9002": [(401, {"error": {"message": "bad key"}})]})
    with backend_for(llm) as backend:
        with pytest.raises(LLMUnavailableError, match="HTTP 401"):
            summarize_archive(archive.root, backend, cache_dir=cache, progress=False)
    written = _values(Archive.open(archive.root).table["summary_objects"])
    proposals = [str(p) for p in archive.table["proposal_id"]]
    assert {p for p, s in zip(proposals, written) if s} == {"9000", "9001"}
    llm.requests.clear()
    with backend_for(llm) as backend:
        report = summarize_archive(archive.root, backend, cache_dir=cache, progress=False)
    assert (report.cached, report.summarized, len(llm.requests)) == (2, 4, 4)


def test_request_body_and_retry_feedback(tmp_path):
    archive = make_archive(tmp_path / "archive")
    llm = FakeLLM({"9000": [{"objects_and_phenomena": [], "science_use_cases": ["x"]}]})
    with backend_for(llm, max_tokens=300) as backend:
        report = summarize_archive(archive.root, backend, progress=False, limit=1)
    assert (report.proposals, report.summarized) == (1, 1)
    first, second = llm.requests
    assert first["model"] == "fake-model" and first["temperature"] == 0
    assert first["max_tokens"] == 300
    fmt = first["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["required"] == ["objects_and_phenomena",
                                                         "science_use_cases"]
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert "objects_and_phenomena" in first["messages"][0]["content"]
    assert abstract_of("9000") in first["messages"][1]["content"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert "at least 1 item" in second["messages"][3]["content"]


def test_falls_back_to_json_object(tmp_path):
    archive = make_archive(tmp_path / "archive")
    refusal = (400, {"error": {"message": "response_format json_schema is not supported"}})
    llm = FakeLLM({"9000": [refusal]})
    with backend_for(llm) as backend:
        report = summarize_archive(archive.root, backend, progress=False, limit=2)
    assert report.summarized == 2
    formats = [b.get("response_format", {}).get("type") for b in llm.requests]
    assert formats == ["json_schema", "json_object", "json_object"]


def test_request_refused_in_every_format_fails_that_proposal_only(tmp_path):
    archive = make_archive(tmp_path / "archive")
    too_long = (400, {"error": {"message": "maximum context length exceeded"}})
    llm = FakeLLM({"9000": [too_long] * 3})
    with backend_for(llm) as backend:
        report = summarize_archive(archive.root, backend, progress=False, limit=2)
    assert (report.summarized, report.failed) == (1, 1)
    assert "context length" in report.failures[0].reason
    formats = [b.get("response_format", {}).get("type") for b in llm.requests]
    assert formats == ["json_schema", "json_object", None, "json_schema"]


def test_cache_key_depends_on_abstract_and_model():
    assert cache_key("a", "m") == cache_key(" a ", "m")
    assert len({cache_key("a", "m"), cache_key("b", "m"), cache_key("a", "n")}) == 3


def test_archive_without_abstracts_is_refused(tmp_path):
    from vo_clip.errors import ArchiveError

    archive = write_tiny_archive(tmp_path / "archive", n=4)
    with OpenAICompatibleBackend("http://127.0.0.1:9/v1", "m") as backend:
        with pytest.raises(ArchiveError, match="proposal_abstract"):
            summarize_archive(archive.root, backend, progress=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_server_keeps_nothing_half_written(tmp_path):
    archive = make_archive(tmp_path / "archive")
    before = (archive.root / "observations.ecsv").read_bytes()
    url = f"http://127.0.0.1:{_free_port()}/v1"
    with OpenAICompatibleBackend(url, "m", backoff=0.01) as backend:
        with pytest.raises(LLMUnavailableError, match="cannot reach the LLM endpoint at"):
            summarize_archive(archive.root, backend, progress=False)
    assert (archive.root / "observations.ecsv").read_bytes() == before


def test_wrong_route_stops_the_run(tmp_path):
    archive = make_archive(tmp_path / "archive")
    llm = FakeLLM()
    with fake_server(llm) as url:
        with OpenAICompatibleBackend(url.removesuffix("/v1"), "m") as backend:
            with pytest.raises(LLMUnavailableError, match="HTTP 404"):
                summarize_archive(archive.root, backend, progress=False)


# -- the command line --------------------------------------------------------------------------

def test_cli_summarize(tmp_path):
    archive = make_archive(tmp_path / "archive")
    llm = FakeLLM({"9005": ["bad", "bad", "bad"]})
    with fake_server(llm) as url:
        result = run_cli("summarize", "--archive", str(archive.root), "--llm-url", url,
                         "--llm-model", "fake-model", "--retries", "3", home=tmp_path / "home")
    assert "5 new, 0 cached, 1 failed" in result.stdout, result.stdout
    assert "failed 9005 after 3 request(s)" in result.stdout
    assert llm.requests_for("9005") == 3
    stored = Archive.open(archive.root)
    assert "object of 9000; globular cluster" in [str(s) for s in stored.table["summary_objects"]]


def test_cli_unreachable_endpoint(tmp_path):
    archive = make_archive(tmp_path / "archive")
    url = f"http://127.0.0.1:{_free_port()}/v1"
    result = run_cli("summarize", "--archive", str(archive.root), "--llm-url", url,
                     "--llm-model", "m", home=tmp_path / "home", check=False)
    assert_one_line_error(result, f"cannot reach the LLM endpoint at {url}")


# -- a local transformers model ----------------------------------------------------------------

def _tiny_causal_lm(folder) -> str:
    """A random one-layer GPT-2 with a byte-level BPE trained here: nothing downloaded."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["objects and phenomena; globular cluster"], vocab_size=300,
                            min_frequency=1, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
    eos = tokenizer.eos_token_id
    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=2048,
                        vocab_size=len(tokenizer), bos_token_id=eos, eos_token_id=eos)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return str(folder)


def test_constrained_decoding_makes_even_random_weights_answer_in_the_schema(tmp_path):
    from vo_clip.archive.summarize import MAX_ITEM_CHARS, TransformersBackend, summarize_abstract

    backend = TransformersBackend(_tiny_causal_lm(tmp_path / "lm"), device="cpu",
                                  max_new_tokens=1200)
    assert not backend.prompt([{"role": "user", "content": "hi"}]).endswith(backend.PREFIX)
    attempts = summarize_abstract("We observe a globular cluster.", backend, retries=1)
    # the weights are random: only the grammar can make the answer valid, first time
    assert attempts.summary is not None and attempts.requests == 1, attempts.reason
    items = attempts.summary.objects_and_phenomena + attempts.summary.science_use_cases
    assert 2 <= len(items) <= 10 and all(0 < len(item) <= MAX_ITEM_CHARS for item in items)
    backend.close()


def test_unconstrained_output_is_validated_and_retried(tmp_path):
    from vo_clip.archive.summarize import TransformersBackend, summarize_abstract

    backend = TransformersBackend(_tiny_causal_lm(tmp_path / "lm"), device="cpu",
                                  max_new_tokens=12, constrained=False)
    assert backend.prompt([{"role": "user", "content": "hi"}]).endswith(backend.PREFIX)
    attempts = summarize_abstract("We observe a globular cluster.", backend, retries=2)
    # random weights never write a valid summary: retried, then reported with the output
    assert attempts.summary is None and attempts.requests == 2
    assert attempts.raw.startswith(backend.PREFIX) and attempts.reason
    backend.close()


def test_transformers_backend_names_a_missing_model(tmp_path):
    from vo_clip.archive.summarize import TransformersBackend

    with pytest.raises(LLMUnavailableError, match="cannot load the language model"):
        TransformersBackend(str(tmp_path / "nothing-here"))
