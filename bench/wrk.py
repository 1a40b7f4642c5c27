"""Drive a server with wrk: a Lua script that sends each pre-signed event exactly once.

The bodies and their ``Stripe-Signature`` headers go to a file (two lines per request: JSON
has no raw newlines); the script formats every request up front, hands them out in order, and
stops the thread when they run out, so no event is ever sent twice; it then says so on stdout
and the runner interrupts wrk, which ends the clock. ``done`` prints the figures as one JSON
line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.procs import Children

LUA = r"""
local path = os.getenv("BENCH_REQUESTS_FILE")
local target = os.getenv("BENCH_PATH")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local requests_list = {}
local n = 0
local i = 0

function init(args)
  local f = assert(io.open(path, "rb"))
  while true do
    local sig = f:read("*l")
    if not sig then break end
    local body = f:read("*l")
    n = n + 1
    requests_list[n] = wrk.format("POST", target, {
      ["Content-Type"] = "application/json",
      ["Stripe-Signature"] = sig,
    }, body)
  end
  f:close()
end

function request()
  i = i + 1
  if i == n then
    -- wrk's main thread sleeps for -d regardless; the runner sends SIGINT on this line.
    io.write("exhausted\n")
    io.flush()
    wrk.thread:stop()
  end
  if i > n then
    -- Never sent: the thread stops before this is written. Stay distinct anyway.
    return requests_list[n]
  end
  return requests_list[i]
end

-- A paced run (a rate below the maximum): each connection waits before its next request.
if pause > 0 then
  function delay()
    return pause
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
    '"errors_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
"""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non_2xx: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def available() -> bool:
    return shutil.which("wrk") is not None


def write_requests(path: Path, signed: list[tuple[bytes, str]]) -> None:
    with path.open("wb") as f:
        for body, header in signed:
            assert b"\n" not in body
            f.write(header.encode() + b"\n" + body + b"\n")


def run(
    children: Children,
    name: str,
    *,
    url_base: str,
    path: str,
    requests_file: Path,
    connections: int,
    cpu: int,
    max_seconds: int = 120,
    delay_ms: int = 0,
) -> LoadResult:
    script = children.logdir / "cycle.lua"
    script.write_text(LUA)
    env = {
        "BENCH_REQUESTS_FILE": str(requests_file),
        "BENCH_PATH": path,
        "BENCH_DELAY_MS": str(delay_ms),
        "PATH": "/usr/bin:/bin",
    }
    proc = children.start(
        name,
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max_seconds}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            url_base,
        ],
        env=env,
        cpus={cpu},
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = None
    for raw in proc.stdout:
        text = raw.decode().strip()
        if text == "exhausted":
            os.kill(proc.pid, signal.SIGINT)
        elif text.startswith("{"):
            line = text
    proc.wait(timeout=60)
    children.procs.remove(proc)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {children.log_tail(name)}")
    data = json.loads(line)
    errors = sum(
        data[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_timeout")
    )
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=errors,
        non_2xx=data["errors_status"],
    )
