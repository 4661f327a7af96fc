"""Optional sampling profiles of the engine during a measurement, with py-spy (not a dependency).

`--py-spy DIR` on a benchmark records each engine process for the measured stretch into
`DIR/<name>-<pid>.txt` (py-spy's "raw" collapsed stacks, one line per stack and its sample count) and
prints the functions with the most samples (self and inclusive). Get py-spy with, e.g.,
`pip install --target /tmp/pyspy py-spy` and pass `--py-spy-bin /tmp/pyspy/bin/py-spy`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a benchmark that records with py-spy: `--py-spy DIR`, `--py-spy-bin PATH`."""
    parser.add_argument("--py-spy", metavar="DIR", help="record the engine with py-spy into DIR (spy.py)")
    parser.add_argument("--py-spy-bin", metavar="PATH", help="the py-spy executable (default: on PATH)")


def find(binary: str | None) -> str | None:
    return binary or shutil.which("py-spy")


def _prepare(out_dir: str, exe: str) -> dict[str, str]:
    """Make the output folder; the environment py-spy runs in (its --target install on PYTHONPATH)."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PYTHONPATH": str(Path(exe).resolve().parent.parent)}


@contextlib.asynccontextmanager
async def recording(
    binary: str | None, out_dir: str | None, name: str, pids: Sequence[int], seconds: float
) -> AsyncIterator[None]:
    """Record `pids` for up to `seconds` while the block runs (nothing when `out_dir` is None); when the
    block ends first, the recording stops there (py-spy writes its file on SIGINT)."""
    exe = find(binary)
    if out_dir is None or exe is None:
        if out_dir is not None:
            print("py-spy not found: no profile recorded (--py-spy-bin)", flush=True)
        yield
        return
    env = _prepare(out_dir, exe)
    procs = []
    for pid in pids:
        out = Path(out_dir) / f"{name}-{pid}.txt"
        procs.append(
            (
                out,
                await asyncio.create_subprocess_exec(
                    exe, "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "250", "-f", "raw",
                    "-o", str(out), "--nonblocking", env=env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                ),
            )
        )  # fmt: skip
    try:
        yield
    finally:
        for _, proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGINT)
        for out, proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), seconds + 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            if out.exists():
                print(summary(out), flush=True)


def summary(path: Path, top: int = 25) -> str:
    """The functions with the most samples in a py-spy raw file: self, and inclusive (on the stack)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.strip() for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    lines = [f"py-spy {path.name}: {total} samples (busy only)", "  self:"]
    lines += [f"    {n / total:6.1%}  {f[:140]}" for f, n in own.most_common(top)]
    lines.append("  inclusive:")
    lines += [f"    {n / total:6.1%}  {f[:140]}" for f, n in inclusive.most_common(top + 15)]
    return "\n".join(lines)
