"""Faults under a stream: a TorchServe backend worker killed, and the whole server restarted
(new keys, same address), while the stream client replays two imagers' minutes. The client
retries, renews its key from the key file, resumes; the ledger ends with every frame exactly
once. Real TorchServe on free 127.0.0.1 ports, stopped at the end of each test."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from arcscan.ops.stream import FAILED, RESULTS, StreamConfig, StreamSummary, read_ledger, run_stream
from arcscan.core.synth import write_minute
from serving import serve
from servers import random_model_archive

pytestmark = pytest.mark.slow
FRAMES = 20  # per minute file


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return random_model_archive(tmp_path_factory.mktemp("faults"), "faults-1")


@pytest.fixture(scope="module")
def minutes(tmp_path_factory) -> list[Path]:
    """Two imagers' minutes of 20 frames: 40 frames."""
    folder = tmp_path_factory.mktemp("minutes")
    start = datetime(2026, 2, 1, 6, tzinfo=timezone.utc)
    return [write_minute(folder, seed, start, FRAMES, site=site, imager=f"themis{seed}")[0] for seed, site in ((1, "fa01"), (2, "fa02"))]


@dataclass(frozen=True)
class Deployment:
    """Where one test's TorchServe runs: started and restarted on the same address."""

    archive: Path
    config: Path
    run_dir: Path

    def start(self) -> serve.Server:
        return serve.start(self.archive.parent, self.config, self.run_dir, models=(f"{serve.MODEL}={self.archive.name}",))


@pytest.fixture
def deployment(archive, tmp_path):
    deployment = Deployment(archive, serve.free_port_config(tmp_path / "config.properties"), tmp_path / "run")
    try:
        yield deployment
    finally:
        serve.stop(deployment.run_dir)


def _stream(server: serve.Server, minutes: list[Path], output: Path) -> Future:
    """run_stream in a thread, as an operator would run it: token from the key file, renewal
    through the management API, retries with backoff up to 4 s."""
    config = StreamConfig(
        url=server.predictions_url(), token=server.key(), output=output, concurrency=4, retries=10,
        backoff=0.5, max_backoff=4.0, timeout=60.0, token_file=server.key_file, renew_url=server.management_url,
    )
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(run_stream(config, replay=minutes))
        except BaseException as error:  # noqa: BLE001 - handed to the test
            future.set_exception(error)

    threading.Thread(target=work, daemon=True).start()
    return future


def _wait_for_results(output: Path, count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(read_ledger(output / RESULTS)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} results after {timeout} s"
        time.sleep(0.1)


def assert_exactly_once(output: Path, minutes: list[Path]) -> list[dict]:
    results = read_ledger(output / RESULTS)
    keys = [(entry["file"], entry["index"]) for entry in results]
    assert len(keys) == len(set(keys)), "a frame was answered twice"
    assert set(keys) == {(path.name, index) for path in minutes for index in range(FRAMES)}
    return results


def test_a_worker_killed_mid_stream_loses_no_frame(deployment, minutes, tmp_path):
    server = deployment.start()
    output = tmp_path / "ledger"
    running = _stream(server, minutes, output)
    _wait_for_results(output, 5)
    victim = server.workers()[0]
    victim.kill()
    summary: StreamSummary = running.result(timeout=300)

    assert (summary.sent, summary.succeeded, summary.failed) == (2 * FRAMES, 2 * FRAMES, 0)
    assert not read_ledger(output / FAILED)
    results = assert_exactly_once(output, minutes)
    retried = [entry["attempts"] for entry in results if entry["attempts"] > 1]
    print(f"\nworker killed: {len(retried)} frames retried (attempts {retried}), none lost or doubled")
    assert retried, "the killed worker's request was not retried"
    serve.wait_ready(server, timeout_s=120)  # TorchServe replaced the worker
    assert victim.pid not in {p.pid for p in server.workers()} and len(server.workers()) == 2


def test_a_server_restart_mid_stream_loses_no_frame(deployment, minutes, tmp_path):
    server = deployment.start()
    old_key = server.key()
    output = tmp_path / "ledger"
    running = _stream(server, minutes, output)
    _wait_for_results(output, 5)
    serve.stop(deployment.run_dir)
    time.sleep(1.0)
    restarted = deployment.start()
    summary: StreamSummary = running.result(timeout=300)

    assert restarted.key() != old_key  # TorchServe made new keys: the client renewed from the key file
    assert restarted.inference_url == server.inference_url
    failed = read_ledger(output / FAILED)
    assert summary.failed == len(failed)
    if failed:  # retries ran out while the server was down: the next run sends exactly those
        again = _stream(restarted, minutes, output).result(timeout=300)
        assert again.sent == len({(entry["file"], entry["index"]) for entry in failed}) and again.failed == 0
    results = assert_exactly_once(output, minutes)
    retried = [entry["attempts"] for entry in results if entry["attempts"] > 1]
    print(f"\nserver restarted: {len(retried)} frames retried (attempts {retried}), {len(failed)} left for a second run")
