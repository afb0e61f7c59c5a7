"""The processes a benchmark run starts, and what they cost (psutil)."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

LOOPBACK = "127.0.0.1"
STOP_GRACE_S = 20.0


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class Service:
    """One child process, its output in a log file, stopped with SIGTERM (then SIGKILL)."""

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_dir: Path
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own commands, no shell
            list(argv), env=dict(env), stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait_ready(self, url: str, timeout_s: float = 30.0) -> None:
        """Until ``url`` answers 200; raises if the process dies or time runs out."""
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log_path}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                        if r.status == 200:
                            return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready after {timeout_s} s")
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def child_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any ``GATEWAY_`` setting, plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(overrides)
    return env


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@dataclass
class Meter:
    """CPU seconds and resident memory of the processes of one system under test, summed,
    sampled in the background; with ``server`` (a process name, ``postgres``), also the
    CPU seconds of that database server's processes."""

    pids: Sequence[int]
    server: str | None = None
    interval_s: float = 0.2
    samples: list[tuple[float, int]] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._processes = [psutil.Process(pid) for pid in self.pids]

    def cpu_seconds(self) -> float:
        return sum(_cpu(p) for p in self._processes)

    def server_cpu(self) -> dict[int, float] | None:
        """CPU seconds of each of the server's processes alive now."""
        if self.server is None:
            return None
        spent = {}
        for p in psutil.process_iter(["name"]):
            if p.info["name"] == self.server:
                with contextlib.suppress(psutil.Error):
                    spent[p.pid] = _cpu(p)
        return spent

    def rss(self) -> int:
        return sum(int(p.memory_info().rss) for p in self._processes)

    def start(self) -> None:
        self.samples.clear()
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def peak_rss(self) -> int:
        return max((rss for _, rss in self.samples), default=self.rss())

    async def _sample(self) -> None:
        while True:
            self.samples.append((time.monotonic(), self.rss()))
            await asyncio.sleep(self.interval_s)


def server_cpu_between(before: dict[int, float], after: dict[int, float]) -> float:
    """What the server's processes spent between two ``Meter.server_cpu`` readings; a
    process that ended in between takes its share along (it is not counted)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
