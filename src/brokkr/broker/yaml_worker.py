"""Deployment-object bodies are decoded and checked in worker processes.

Parsing YAML is CPU-bound: near the body limit it takes seconds even with
libyaml. On the event loop that would stall every other request (heartbeats,
target-state polls, probes), and a thread would still hold the GIL, so the body
(JSON or raw YAML) is examined in a small pool of worker processes:

- libyaml's loader (CSafeLoader) when PyYAML was built with it, else the pure
  Python one;
- nesting deeper than `MAX_YAML_DEPTH`, and aliases that expand to more than
  `yamlbounds.MAX_ALIAS_NODES` nodes, are refused from the event stream before
  anything is composed (`brokkr.common.yamlbounds`; libyaml's composer recurses
  in C and overflows the stack on deep input, its scanner slows down
  quadratically with flow depth, and an alias bomb takes down whoever expands it);
- each job has a CPU-time budget (ITIMER_PROF in the worker); past it the answer
  is 413 `yaml_too_complex`;
- at most `workers * QUEUE_PER_WORKER` bodies wait or run at once; more get
  503 `yaml_parser_busy` with Retry-After, so uploads cannot pile up memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

import yaml

from brokkr.broker.bodies import decode_json, validate
from brokkr.broker.errors import ApiError, bad_request
from brokkr.broker.schemas import CreateDeploymentObjectRequest
from brokkr.common import yamlbounds

log = logging.getLogger(__name__)

MAX_YAML_DEPTH = yamlbounds.MAX_DEPTH
_PR_SET_PDEATHSIG = 1
QUEUE_PER_WORKER = 4
LOADER: Any = yamlbounds.LOADER


@dataclass(frozen=True)
class Outcome:
    """What a worker sends back: the accepted content, or an error to answer with."""

    content: str = ""
    deletion_marker: bool = False
    error: tuple[int, str, str, dict[str, Any] | None] | None = None

    def result(self) -> tuple[str, bool]:
        if self.error is not None:
            raise ApiError(*self.error)
        return self.content, self.deletion_marker


class _OutOfTime(Exception):
    pass


# Set while a job runs, so a SIGPROF that lands after the job ended is ignored.
_budget = {"armed": False}


def _on_cpu_budget(signum: int, frame: object) -> None:
    if _budget["armed"]:
        raise _OutOfTime


def _die_with_parent(parent: int) -> None:
    """Exit when the broker process dies, even by SIGKILL (Linux: PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(0)


def _init_worker(parent: int) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGPROF, _on_cpu_budget)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server handles Ctrl-C


def check_yaml(content: str, *, deletion_marker: bool) -> None:
    """400 unless `content` is YAML of Kubernetes objects (may be empty for a marker)."""
    try:
        yamlbounds.check(content, LOADER)
        documents = [d for d in yaml.load_all(content, Loader=LOADER) if d is not None]
    except yamlbounds.YamlBoundError as exc:
        raise bad_request(exc.code, exc.message, exc.details) from None
    except yaml.YAMLError as exc:
        raise bad_request("invalid_yaml", f"yaml_content is not valid YAML: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # For example an integer of thousands of digits or a date like 2024-13-45.
        raise bad_request(
            "invalid_yaml", f"yaml_content holds a value that cannot be read: {exc}"
        ) from None
    if not documents:
        if deletion_marker:
            return
        raise bad_request(
            "empty_yaml",
            "yaml_content holds no Kubernetes object; send at least one document "
            "(or set is_deletion_marker to remove the stack's objects)",
        )
    for index, document in enumerate(documents):
        if (
            not isinstance(document, dict)
            or not isinstance(document.get("apiVersion"), str)
            or (not isinstance(document.get("kind"), str))
        ):
            raise bad_request(
                "invalid_yaml",
                f"document {index + 1} of yaml_content is not a Kubernetes object "
                "(a mapping with string apiVersion and kind)",
                {"document": index + 1},
            )


def examine(raw: bytes, as_json: bool, marker: bool) -> tuple[str, bool]:
    """Decode a deployment-object body (JSON or raw YAML) and check its YAML."""
    if as_json:
        body = validate(CreateDeploymentObjectRequest, decode_json(raw))
        content, marker = body.yaml_content, body.is_deletion_marker
    else:
        try:
            content = raw.decode()
        except UnicodeDecodeError:
            raise bad_request("invalid_yaml", "the YAML body is not UTF-8 text") from None
    check_yaml(content, deletion_marker=marker)
    return content, marker


def _job(raw: bytes, as_json: bool, marker: bool, cpu_seconds: float) -> Outcome:
    """Runs in a worker: `examine` within a CPU-time budget."""
    _budget["armed"] = True
    signal.setitimer(signal.ITIMER_PROF, cpu_seconds)
    try:
        content, marker = examine(raw, as_json, marker)
        return Outcome(content, marker)
    except ApiError as exc:
        return Outcome(error=(exc.status, exc.code, exc.message, exc.details))
    except _OutOfTime:
        return Outcome(
            error=(
                413,
                "yaml_too_complex",
                f"parsing the body took more than {cpu_seconds:g} s of CPU time; split the "
                "stack or simplify its YAML (BROKKR__BROKER__YAML_CPU_SECONDS)",
                {"cpu_seconds": cpu_seconds},
            )
        )
    finally:
        _budget["armed"] = False
        signal.setitimer(signal.ITIMER_PROF, 0)


class YamlWorkers:
    """A process pool for deployment-object bodies, started at the first upload
    (not at start-up, where it would compete with the server for CPU)."""

    def __init__(self, workers: int, cpu_seconds: float) -> None:
        self.workers = workers
        self.cpu_seconds = cpu_seconds
        self._executor: ProcessPoolExecutor | None = None
        self._in_flight = 0

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn: a fresh interpreter, never a fork of the threaded event loop.
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
        return self._executor

    async def examine(self, raw: bytes, *, as_json: bool, marker: bool) -> tuple[str, bool]:
        """`examine` in a worker; raises the ApiError to answer with."""
        if self._in_flight >= self.workers * QUEUE_PER_WORKER:
            raise ApiError(
                503,
                "yaml_parser_busy",
                "too many deployment objects are being parsed right now; retry shortly",
                headers={"Retry-After": "2"},
            )
        self._in_flight += 1
        try:
            future = self._pool().submit(_job, raw, as_json, marker, self.cpu_seconds)
            outcome: Outcome = await asyncio.wrap_future(future)
        except BrokenProcessPool:
            log.error("a YAML worker process died; starting new ones")
            self.close()
            raise ApiError(
                503, "yaml_parser_unavailable", "the YAML parser restarted; retry the request"
            ) from None
        finally:
            self._in_flight -= 1
        return outcome.result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
