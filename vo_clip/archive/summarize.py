"""Guided summaries of proposal abstracts, written by a language model.

PAPERCLIP (arXiv:2403.08851) trains on *guided summaries* of the proposal
abstracts rather than on the abstracts themselves: an LLM lists the objects and
phenomena a proposal observes and the science it is meant for, and those short lists
caption every observation of the proposal. Abstracts are long, full of motivation and
technique that no preview shows; the summaries keep what an image can match.

This module produces those summaries for an archive: one JSON object per distinct
abstract, ``{"objects_and_phenomena": [...], "science_use_cases": [...]}`` with 1-5
short items each, validated by :class:`Summary` (pydantic), and written into the
``summary_objects`` / ``summary_use_cases`` columns ('; '-separated, as
:mod:`vo_clip.ml.pairs` reads them). The prompt is the project's own, not PAPERCLIP's.

The model is behind a small backend interface: any OpenAI-compatible chat endpoint (a
local vLLM or llama.cpp server, or a hosted one) or a local transformers model. Outputs
that do not validate are retried with the validation error fed back, then recorded as
failures. Every valid summary is cached on disk under the sha256 of the abstract, the
prompt version and the model, so a re-run (or a run resumed after a crash) asks the
model only for what it has not answered yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Protocol

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from ..errors import ArchiveError, VoClipError
from .archive import Archive

__all__ = [
    "FAILURES_FILE",
    "MAX_ITEM_CHARS",
    "PROMPT_VERSION",
    "SYSTEM_PROMPT",
    "USER_PROMPT",
    "Attempts",
    "Completion",
    "InvalidOutput",
    "LLMError",
    "LLMUnavailableError",
    "OpenAICompatibleBackend",
    "Summary",
    "SummaryBackend",
    "SummaryFailure",
    "SummaryReport",
    "TransformersBackend",
    "cache_key",
    "parse_summary",
    "summarize_abstract",
    "summarize_archive",
    "summary_messages",
    "summary_schema",
]

#: Bump whenever the prompt or the schema changes: it is part of every cache key.
PROMPT_VERSION = "1"
#: Longest item accepted: a caption phrase, not a sentence.
MAX_ITEM_CHARS = 80
#: Where the proposals that could not be summarized are listed, in the archive directory.
FAILURES_FILE = "summaries-failures.json"

SYSTEM_PROMPT = (
    "You are an astronomer cataloguing Hubble Space Telescope observing proposals. "
    "From a proposal abstract you extract two short lists that will caption the "
    "proposal's images in a search engine:\n"
    "- objects_and_phenomena: the astronomical objects, object classes and physical "
    "phenomena the proposal observes (e.g. \"globular cluster\", \"Type Ia supernova\", "
    "\"gravitational lensing\");\n"
    "- science_use_cases: what the observations are for (e.g. \"measuring the Hubble "
    "constant\", \"star formation history\").\n"
    f"Give 1 to 5 items in each list, each a noun phrase of at most {MAX_ITEM_CHARS} "
    "characters, without semicolons, in English, taken from what the abstract says; "
    "do not invent targets. Answer with one JSON object and nothing else, following "
    "this JSON schema:\n{schema}"
)

USER_PROMPT = "Proposal abstract:\n\n{abstract}\n\nThe JSON object:"

RETRY_PROMPT = (
    "That answer was not valid: {error}. Reply again with only the JSON object, "
    "following the schema."
)


def _normalise_item(value):
    if not isinstance(value, str):
        return value
    return re.sub(r"\s+", " ", value.replace(";", ",")).strip()


Item = Annotated[str, BeforeValidator(_normalise_item),
                 StringConstraints(min_length=1, max_length=MAX_ITEM_CHARS)]
Items = Annotated[list[Item], Field(min_length=1, max_length=5)]


class Summary(BaseModel):
    """A guided summary: what a proposal observes, and what for.

    Items are stripped, runs of whitespace collapsed and semicolons (the archive's
    list separator) turned into commas; empty or over-long items are invalid.
    """

    model_config = ConfigDict(extra="forbid")

    objects_and_phenomena: Items = Field(
        description="Astronomical objects and phenomena the proposal observes")
    science_use_cases: Items = Field(
        description="What the observations are meant to find out or measure")

    @property
    def objects(self) -> str:
        """The objects as the archive stores them, '; '-separated."""
        return "; ".join(self.objects_and_phenomena)

    @property
    def use_cases(self) -> str:
        """The use cases as the archive stores them, '; '-separated."""
        return "; ".join(self.science_use_cases)


def summary_schema() -> dict:
    """The JSON schema a summary follows (sent to the model and to the server)."""
    schema = Summary.model_json_schema()
    schema["title"] = "ProposalSummary"
    schema["description"] = "A guided summary of an HST proposal abstract"
    return schema


def summary_messages(abstract: str) -> list[dict]:
    """The chat messages asking for the summary of ``abstract``."""
    schema = json.dumps(summary_schema(), separators=(",", ":"))
    return [{"role": "system", "content": SYSTEM_PROMPT.format(schema=schema)},
            {"role": "user", "content": USER_PROMPT.format(abstract=abstract.strip())}]


# -- errors ------------------------------------------------------------------------------

class LLMUnavailableError(VoClipError):
    """The language model cannot be reached or refuses every request: stop the run."""


class LLMError(VoClipError):
    """One request was refused (e.g. the abstract is too long): that proposal fails."""


class InvalidOutput(ValueError):
    """A model's answer is not a valid summary; ``reason`` says why, in a line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# -- parsing -----------------------------------------------------------------------------

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def parse_summary(text: str, finish_reason: str | None = None) -> Summary:
    """The :class:`Summary` in a model's answer.

    Code fences and text around the outermost ``{...}`` are tolerated.

    Raises
    ------
    InvalidOutput
        If the answer holds no JSON object, a truncated one, or one that does not
        validate.
    """
    body = (text or "").strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    start, end = body.find("{"), body.rfind("}")
    if start < 0:
        raise InvalidOutput("no JSON object in the answer")
    candidate = body[start:end + 1] if end > start else body[start:]
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError as exc:
        cut = " (truncated: the model hit its token limit)" if finish_reason == "length" \
            else ""
        raise InvalidOutput(f"not valid JSON{cut}: {exc.msg} at character {exc.pos}") from None
    try:
        return Summary.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the object"
        raise InvalidOutput(f"{where}: {first['msg']} ({exc.error_count()} error(s))") from None


# -- backends ----------------------------------------------------------------------------

@dataclass
class Completion:
    """One answer of a backend: its text and why generation stopped."""

    text: str
    finish_reason: str | None = None


class SummaryBackend(Protocol):
    """What :func:`summarize_archive` needs of a language model."""

    #: Identifies the model in cache keys and reports (e.g. ``openai:MODEL``).
    model_id: str

    def complete(self, messages: list[dict], schema: dict) -> Completion:
        """Answer the chat ``messages``; ``schema`` is the JSON schema wanted."""

    def close(self) -> None:
        """Release connections or memory."""


class OpenAICompatibleBackend:
    """A chat-completions endpoint: OpenAI, vLLM, llama.cpp's server, Ollama, ...

    Parameters
    ----------
    base_url : str
        The API root, e.g. ``http://127.0.0.1:8000/v1``; requests go to
        ``{base_url}/chat/completions``.
    model : str
        The model name the server knows.
    api_key : str, optional
        Sent as a bearer token; defaults to ``$VO_CLIP_LLM_API_KEY`` or
        ``$OPENAI_API_KEY`` (local servers usually need none).
    timeout : float
        Seconds to wait for one answer.
    max_tokens : int
        Longest answer asked for.
    transport_retries : int
        Extra attempts after a connection error or an HTTP 5xx, with exponential backoff
        starting at ``backoff`` seconds.

    Notes
    -----
    The request asks for structured output with ``response_format`` of type
    ``json_schema``; a server that refuses it (HTTP 400/422) is asked again with
    ``json_object``, then with no ``response_format``, and the first form it accepts is
    kept for the rest of the run. Cache keys name the model, not the URL: a server
    that serves other weights under the same name needs another cache directory.
    """

    _FORMATS = ("json_schema", "json_object", None)

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 timeout: float = 120.0, max_tokens: int = 512, transport_retries: int = 2,
                 backoff: float = 0.5):
        import requests

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.model_id = f"openai:{model}"  # the served model, wherever it is served
        self.api_key = api_key or os.environ.get("VO_CLIP_LLM_API_KEY") \
            or os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.max_tokens = max_tokens
        self.transport_retries = transport_retries
        self.backoff = backoff
        self._format = 0
        self._session = requests.Session()

    def close(self) -> None:
        self._session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request_body(self, messages: list[dict], schema: dict) -> dict:
        """The JSON body of a chat-completions request in the current format."""
        body = {"model": self.model, "messages": messages, "temperature": 0,
                "max_tokens": self.max_tokens}
        kind = self._FORMATS[self._format]
        if kind == "json_schema":
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "proposal_summary", "schema": schema, "strict": True}}
        elif kind == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def complete(self, messages: list[dict], schema: dict) -> Completion:
        """POST the messages; the first choice's content.

        Raises
        ------
        LLMUnavailableError
            If the endpoint cannot be reached, keeps failing (5xx), or refuses the
            credentials, the URL or the model (401, 403, 404).
        LLMError
            If it refuses this request in every format (another 4xx).
        """
        first_refusal, start = None, self._format
        while True:
            response = self._post(self.request_body(messages, schema))
            if response.status_code in (400, 422) and self._format < len(self._FORMATS) - 1:
                first_refusal = first_refusal or response
                self._format += 1
                continue
            if response.status_code >= 400:
                self._format = start  # refused in every format: the format was not why
                self._raise_for(first_refusal or response)
            return self._completion(response)

    def _post(self, body: dict):
        import requests

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url = f"{self.base_url}/chat/completions"
        for attempt in range(self.transport_retries + 1):
            try:
                response = self._session.post(url, json=body, headers=headers,
                                              timeout=self.timeout)
            except requests.RequestException as exc:
                if attempt == self.transport_retries:
                    raise LLMUnavailableError(
                        f"cannot reach the LLM endpoint at {self.base_url}: "
                        f"{type(exc).__name__}",
                        hint="start the server or check --llm-url") from None
            else:
                if response.status_code < 500 or attempt == self.transport_retries:
                    return response
            time.sleep(self.backoff * 2 ** attempt)

    def _raise_for(self, response) -> None:
        excerpt = " ".join(response.text.split())[:200]
        message = (f"the LLM endpoint at {self.base_url} answered HTTP "
                   f"{response.status_code}: {excerpt}")
        if response.status_code in (401, 403, 404) or response.status_code >= 500:
            raise LLMUnavailableError(message, hint="check --llm-url (often ending in /v1), "
                                      "--llm-model and $VO_CLIP_LLM_API_KEY")
        raise LLMError(message)

    def _completion(self, response) -> Completion:
        try:
            choice = response.json()["choices"][0]
            return Completion(choice["message"]["content"] or "", choice.get("finish_reason"))
        except (ValueError, KeyError, IndexError, TypeError):
            raise LLMError(f"the LLM endpoint at {self.base_url} answered something other "
                           f"than a chat completion: {response.text[:200]!r}") from None


class TransformersBackend:
    """A local causal language model run with transformers (greedy decoding).

    By default decoding is *constrained* to the summary's JSON schema (xgrammar compiles
    the schema into a grammar and masks, at every step, the tokens that would leave it):
    the answer always parses, even from a weak model, and only its content can be
    wrong. Unconstrained, the answer is steered instead — started with
    ``{"objects_and_phenomena": ["`` — and validated like any other backend's answer,
    with retries. No weights are downloaded unless ``model_name_or_path`` is a hub name
    and the hub is reachable.

    Parameters
    ----------
    model_name_or_path : str
        A local directory or a hub name of a causal LM (ideally an instruction-tuned
        one with a chat template).
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    max_new_tokens : int
        Longest answer generated.
    constrained : bool
        Constrain decoding to the JSON schema (needs the ``local-llm`` extra).

    Raises
    ------
    LLMUnavailableError
        If the model cannot be loaded, or constrained decoding is asked without xgrammar.
    """

    PREFIX = '{"objects_and_phenomena": ["'

    def __init__(self, model_name_or_path: str, *, device: str = "auto",
                 max_new_tokens: int = 384, constrained: bool = True):
        self.model_id = f"transformers:{model_name_or_path}"
        self.max_new_tokens = max_new_tokens
        self.constrained = constrained
        if constrained:
            _require_xgrammar()
        self._tokenizer, self._model = _load_causal_lm(model_name_or_path, device)
        self._grammar = None  # (schema text, compiled grammar): compiled once per schema

    def close(self) -> None:
        self._model = None

    def prompt(self, messages: list[dict]) -> str:
        """The text the model continues: its chat template, else plain turns."""
        template = getattr(self._tokenizer, "chat_template", None)
        if template:
            text = self._tokenizer.apply_chat_template(messages, tokenize=False,
                                                       add_generation_prompt=True)
        else:
            text = "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages)
            text += "\n\nASSISTANT: "
        return text if self.constrained else text + self.PREFIX

    def complete(self, messages: list[dict], schema: dict) -> Completion:
        import torch

        inputs = self._tokenizer(self.prompt(messages), return_tensors="pt",
                                 add_special_tokens=False).to(self._model.device)
        pad = self._tokenizer.pad_token_id
        if pad is None:
            pad = self._tokenizer.eos_token_id
        processors = [self._schema_processor(schema)] if self.constrained else []
        with torch.no_grad():
            output = self._model.generate(**inputs, max_new_tokens=self.max_new_tokens,
                                          do_sample=False, pad_token_id=pad,
                                          logits_processor=processors)
        new = output[0, inputs["input_ids"].shape[1]:]
        text = self._tokenizer.decode(new, skip_special_tokens=True)
        finish = "length" if len(new) >= self.max_new_tokens else "stop"
        return Completion(text if self.constrained else self.PREFIX + text, finish)

    def _schema_processor(self, schema: dict):
        """A fresh logits processor (it keeps the parse state of one answer) for ``schema``.

        Whitespace between JSON tokens is not allowed: a weak model could otherwise
        spend every remaining token on spaces.
        """
        import xgrammar

        text = json.dumps(schema, sort_keys=True)
        if self._grammar is None or self._grammar[0] != text:
            vocab = self._model.get_output_embeddings().weight.shape[0]
            info = xgrammar.TokenizerInfo.from_huggingface(self._tokenizer, vocab_size=vocab)
            grammar = xgrammar.GrammarCompiler(info).compile_json_schema(text,
                                                                        any_whitespace=False)
            self._grammar = (text, grammar)
        return xgrammar.contrib.hf.LogitsProcessor(self._grammar[1])


def _require_xgrammar() -> None:
    try:
        import xgrammar  # noqa: F401
    except ImportError:
        raise LLMUnavailableError(
            "constrained decoding of a local model needs xgrammar, which is not installed",
            hint="pip install 'vo_clip[local-llm]'") from None


def _load_causal_lm(name: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForCausalLM.from_pretrained(name)
    except (OSError, ValueError) as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise LLMUnavailableError(f"cannot load the language model {name}: {first_line}",
                                  hint="pass a local model directory to --model-path") from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return tokenizer, model.to(device).eval()


# -- one abstract --------------------------------------------------------------------------

@dataclass
class Attempts:
    """The outcome of summarizing one abstract: a summary, or why not."""

    summary: Summary | None
    requests: int
    reason: str | None = None
    raw: str | None = None


def summarize_abstract(abstract: str, backend: SummaryBackend, *, retries: int = 3) -> Attempts:
    """Ask ``backend`` for the summary of ``abstract``, up to ``retries`` times.

    After an invalid answer the conversation continues with that answer and what was
    wrong with it, so a deterministic (temperature 0) model can correct itself.

    Raises
    ------
    LLMUnavailableError
        If the backend cannot be used at all.
    """
    messages = summary_messages(abstract)
    schema = summary_schema()
    reason = raw = None
    for attempt in range(1, retries + 1):
        try:
            answer = backend.complete(messages, schema)
        except LLMUnavailableError:
            raise
        except LLMError as exc:
            return Attempts(None, attempt, exc.message, raw)
        raw = answer.text
        try:
            return Attempts(parse_summary(answer.text, answer.finish_reason), attempt)
        except InvalidOutput as exc:
            reason = exc.reason
        messages = [*messages[:2], {"role": "assistant", "content": answer.text[:4000]},
                    {"role": "user", "content": RETRY_PROMPT.format(error=reason)}]
    return Attempts(None, retries, reason, raw)


# -- the cache -----------------------------------------------------------------------------

def cache_key(abstract: str, model_id: str) -> str:
    """sha256 of the abstract, the prompt version and the model."""
    text = "\0".join((PROMPT_VERSION, model_id, abstract.strip()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Cache:
    """One JSON file per summary, ``DIR/ab/abcdef....json``, written atomically."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Summary | None:
        path = self._path(key)
        try:
            return Summary.model_validate(json.loads(path.read_text())["summary"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, or from an older schema: ask again

    def put(self, key: str, summary: Summary, model_id: str) -> None:
        record = {"key": key, "model": model_id, "prompt_version": PROMPT_VERSION,
                  "summary": summary.model_dump()}
        _write_atomically(self._path(key), json.dumps(record, indent=1) + "\n")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- an archive ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SummaryFailure:
    """A proposal whose abstract got no valid summary."""

    proposal_id: str
    reason: str
    requests: int
    raw_excerpt: str | None = None

    def as_dict(self) -> dict:
        return {"proposal_id": self.proposal_id, "reason": self.reason,
                "requests": self.requests, "raw_excerpt": self.raw_excerpt}


@dataclass
class SummaryReport:
    """What :func:`summarize_archive` did."""

    archive: str
    model: str
    proposals: int = 0
    summarized: int = 0
    cached: int = 0
    skipped: int = 0
    requests: int = 0
    rows_updated: int = 0
    failures: list[SummaryFailure] = field(default_factory=list)
    failures_file: str | None = None

    @property
    def failed(self) -> int:
        return len(self.failures)

    def as_dict(self) -> dict:
        return {"archive": self.archive, "model": self.model, "proposals": self.proposals,
                "summarized": self.summarized, "cached": self.cached,
                "failed": self.failed, "skipped": self.skipped, "requests": self.requests,
                "rows_updated": self.rows_updated,
                "failures": [f.as_dict() for f in self.failures],
                "failures_file": self.failures_file}

    def lines(self) -> list[str]:
        """The report as a user reads it."""
        out = [f"summarized {self.proposals} proposal(s) of {self.archive} with {self.model}: "
               f"{self.summarized} new, {self.cached} cached, {self.failed} failed, "
               f"{self.skipped} without an abstract ({self.requests} request(s), "
               f"{self.rows_updated} row(s) updated)"]
        for failure in self.failures:
            out.append(f"  failed {failure.proposal_id} after {failure.requests} "
                       f"request(s): {failure.reason}")
        if self.failures_file:
            out.append(f"failures listed in {self.failures_file}")
        return out


def summarize_archive(archive_dir, backend: SummaryBackend, *, retries: int = 3,
                      cache_dir=None, progress: bool = True,
                      limit: int | None = None) -> SummaryReport:
    """Summarize every distinct proposal abstract of an archive, in place.

    Parameters
    ----------
    archive_dir : path-like or Archive
        The archive; its table needs ``proposal_id`` and ``proposal_abstract``.
    backend : SummaryBackend
        The language model.
    retries : int
        Requests per abstract before it is recorded as a failure.
    cache_dir : path-like, optional
        Where valid summaries are kept (default ``ARCHIVE/summaries-cache``).
    progress : bool
        Show a progress bar (standard error).
    limit : int, optional
        Only the first ``limit`` proposals, in table order.

    Returns
    -------
    SummaryReport
        Counts, and the failures (also written to ``ARCHIVE/summaries-failures.json``).

    Raises
    ------
    ArchiveError
        If the archive lacks the columns.
    LLMUnavailableError
        If the model cannot be used; summaries obtained so far are kept in the cache
        and written to the archive before the error propagates.
    """
    from tqdm.auto import tqdm

    archive = archive_dir if isinstance(archive_dir, Archive) else Archive.open(archive_dir)
    abstracts = _proposal_abstracts(archive)
    if limit is not None:
        abstracts = dict(list(abstracts.items())[:limit])
    cache = _Cache(Path(cache_dir) if cache_dir else archive.root / "summaries-cache")
    report = SummaryReport(archive=archive.name, model=backend.model_id,
                           proposals=len(abstracts))
    done: dict[str, Summary] = {}
    seen: set[str] = set()
    try:
        for proposal, abstract in tqdm(abstracts.items(), desc="summarizing",
                                       unit="proposal", disable=not progress):
            seen.add(proposal)
            _summarize_proposal(proposal, abstract, backend, cache, retries, report, done)
    finally:
        if done:
            report.rows_updated = _write_summaries(archive, done, backend.model_id)
        report.failures_file = _write_failures(archive.root, report.failures, seen)
    return report


def _summarize_proposal(proposal, abstract, backend, cache, retries, report, done) -> None:
    if not abstract:
        report.skipped += 1
        return
    key = cache_key(abstract, backend.model_id)
    cached = cache.get(key)
    if cached is not None:
        report.cached += 1
        done[proposal] = cached
        return
    attempts = summarize_abstract(abstract, backend, retries=retries)
    report.requests += attempts.requests
    if attempts.summary is None:
        excerpt = None if attempts.raw is None else attempts.raw[:300]
        report.failures.append(SummaryFailure(proposal, attempts.reason or "unknown",
                                              attempts.requests, excerpt))
        return
    cache.put(key, attempts.summary, backend.model_id)
    report.summarized += 1
    done[proposal] = attempts.summary


def _proposal_abstracts(archive: Archive) -> dict[str, str]:
    """proposal_id -> abstract (the first non-empty one of its rows), in table order."""
    table = archive.table
    missing = [c for c in ("proposal_id", "proposal_abstract") if c not in table.colnames]
    if missing:
        raise ArchiveError(f"archive {archive.name} lacks {', '.join(missing)}, needed to "
                           "summarize proposal abstracts")
    abstracts: dict[str, str] = {}
    for proposal, abstract in zip(_strings(table["proposal_id"]),
                                  _strings(table["proposal_abstract"])):
        if not abstracts.get(proposal):
            abstracts[proposal] = abstract.strip()
    return abstracts


def _strings(column) -> list[str]:
    """A column's values as str, masked values as ''."""
    mask = getattr(column, "mask", None)
    values = [str(v) for v in column.tolist()] if mask is None else \
        ["" if m else str(v) for v, m in zip(column.tolist(), mask)]
    return ["" if v in ("None", "--") else v for v in values]


def _write_summaries(archive: Archive, done: dict[str, Summary], model_id: str) -> int:
    """Write the summaries into the archive table, atomically; rows changed."""
    from astropy.table import MaskedColumn

    archive = Archive.open(archive.root)  # the table as it is now on disk
    table = archive.table.copy()
    proposals = _strings(table["proposal_id"])
    updated = 0
    for name, attribute in (("summary_objects", "objects"), ("summary_use_cases", "use_cases")):
        values = _strings(table[name]) if name in table.colnames else [""] * len(table)
        for row, proposal in enumerate(proposals):
            if proposal in done:
                values[row] = getattr(done[proposal], attribute)
        # a new column (no fixed-width truncation); rows without a summary are NULL
        table[name] = MaskedColumn(values, name=name, dtype=str,
                                   mask=[not v for v in values])
    updated = sum(p in done for p in proposals)
    metadata = dict(archive.metadata)
    extra = {k: v for k, v in metadata.items() if k not in ("name", "source")}
    extra["summaries"] = {"model": model_id, "prompt_version": PROMPT_VERSION,
                          "source": "vo_clip.archive.summarize (guided summaries, "
                                    "arXiv:2403.08851)"}
    Archive.write(archive.root, table, name=archive.name,
                  source=metadata.get("source", "unknown"), extra=extra)
    return updated


def _write_failures(root: Path, failures: list[SummaryFailure], seen: set[str]) -> str | None:
    """Update the failures file: this run's failures, and earlier ones it did not retry."""
    path = Path(root) / FAILURES_FILE
    try:
        earlier = [f for f in json.loads(path.read_text()) if f["proposal_id"] not in seen]
    except (OSError, ValueError, KeyError, TypeError):
        earlier = []
    records = earlier + [f.as_dict() for f in failures]
    if not records:
        path.unlink(missing_ok=True)
        return None
    _write_atomically(path, json.dumps(records, indent=2) + "\n")
    return str(path)
