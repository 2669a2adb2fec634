"""Benchmark of the SupCon loss against its peers: forward+backward time and peak memory per N.

Compares, in one run, for N rows (batch N/2 samples x 2 views, 100 classes, dim 128, float32):

* ``default``: ``supcon_loss(features, labels)``, whatever ``chunk_size="auto"`` picks
  (the path it took is printed next to it);
* ``dense``: ``chunk_size=None`` (on the default options: one saved matrix of exponentials and a
  hand-written three-matmul backward);
* ``tiled``: ``chunk_size=1024`` (``--chunk``) on the PyTorch tiled path
  (``SUPCON_DISABLE_TRITON=1``); ``triton``: the same call on CUDA with the fused Triton kernel;
* the peers of :mod:`loss_peers`: ``supcontrast`` (the SupContrast reference's style: every
  N x N mask and intermediate kept), ``pml`` (pytorch-metric-learning's SupConLoss, skipped with
  a note where it is not installed: ``pip install -e '.[bench]'``) and ``lightly`` (a two-view
  NT-Xent as cross-entropy with the other view as the target: one positive per anchor, labels
  ignored, the floor of a softmax-over-similarities loss rather than the same loss);
* ``matmul`` (CUDA only): one bf16 (N x dim) @ (dim x N) matmul, the shape of the similarity
  matrix; ``4 x matmul`` bounds any exact SupCon forward+backward from below.

Each (path, N) runs in ``--processes`` fresh subprocesses (the time is their median); in each,
one warm-up pass, then at least ``--repeats`` timed passes and at least ``--min-time`` seconds of
them (small N gets more passes), the median ("best": the fastest pass of all, less
disturbed by other work on a shared machine). Timing runs under glibc's default allocator. Peak
memory is one more pass, after the timing: on CPU, the resident set's peak (VmHWM, reset first)
minus the resident size then, with glibc's mmap threshold fixed at 64 KiB for that pass so that
freed tensors leave the resident set; on CUDA, ``torch.cuda.max_memory_allocated`` above the
allocation then. The ratios are against ``default``. A peer whose N x N matrices would not fit
in the available memory is skipped with a note. The script prints numbers and never asserts
timings; on a shared machine, note the load average it prints.

Usage::

    python benchmarks/loss.py --device cpu --threads 1          # 256 .. 16384, every path
    python benchmarks/loss.py --device cpu --sizes 512 2048 --processes 3
    python benchmarks/loss.py --quick --device cpu              # seconds: N = 512, one process
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loss_peers import PEERS, pml_available  # noqa: E402  (the peers live next to this script)

OURS = ("default", "dense", "tiled", "triton")
PATHS = OURS + tuple(PEERS) + ("matmul",)
#: Paths that compute the supervised loss itself (their values must agree); lightly does not.
SAME_LOSS = OURS + ("supcontrast", "pml")
DEFAULT_SIZES = (256, 512, 1024, 2048, 4096, 8192, 16384)
TILED_CHUNK = 1024
MATMUL_REPEATS = 10
MAX_TIMED_PASSES = 200
WORKER_TIMEOUT_S = 3600
#: Peak bytes per (N x N) entry of each peer (measured here at N = 2048: 34, 47 and 28), with
#: a margin, to skip a peer that would not fit rather than let the kernel kill a process.
PEER_BYTES_PER_ENTRY = {"supcontrast": 8 * 4 * 1.1, "pml": 12 * 4 * 1.1, "lightly": 7 * 4 * 1.1}

SRC = Path(__file__).resolve().parents[1] / "src"
_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


# ---------------------------------------------------------------------------------------------
# One measurement (runs in its own subprocess)
# ---------------------------------------------------------------------------------------------


def _rss_bytes() -> tuple[int | None, int | None]:
    """(current RSS, peak RSS since the last reset) of this process, from /proc (Linux)."""
    current = peak = None
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    current = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
    except OSError:
        pass
    return current, peak


def _reset_peak_rss() -> bool:
    """Resets VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _fix_mmap_threshold() -> bool:
    """glibc: blocks of 64 KiB and more are mmap'ed and unmapped when freed from now on, so that
    the resident size follows the live tensors; the heap is trimmed first. False elsewhere."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 65536) == 1
        libc.malloc_trim(0)
        return ok
    except (OSError, AttributeError):
        return False


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), or None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _make_inputs(n: int, dim: int, classes: int, device, seed: int = 0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    batch = n // 2
    features = torch.randn(batch, 2, dim, generator=generator).to(device)
    labels = torch.randint(0, classes, (batch,), generator=generator).to(device)
    return features, labels


def _loss_fn(path: str, chunk: int):
    from supcon.losses import supcon_loss

    if path == "default":
        return lambda f, y: supcon_loss(f, y)
    if path == "dense":
        return lambda f, y: supcon_loss(f, y, chunk_size=None)
    if path in ("tiled", "triton"):
        return lambda f, y: supcon_loss(f, y, chunk_size=chunk)
    if path in PEERS:
        return PEERS[path]
    raise ValueError(f"path must be one of {PATHS}, got {path!r}")


def _auto_choice(features, labels) -> str:
    """What ``chunk_size="auto"`` picks for these inputs, in words."""
    from supcon.losses.supcon import _choose_path

    rows = features.reshape(-1, features.shape[-1])
    path, chunk = _choose_path("auto", rows, rows.shape[0], True)
    if path == "tiled" and _triton_used(features, labels):
        return f"triton {chunk}"
    return "dense" if path.startswith("dense") else f"tiled {chunk}"


def _triton_used(features, labels) -> bool:
    """Whether supcon_loss would run the fused kernel for these inputs."""
    import torch

    from supcon import kernels
    from supcon.losses import PositiveSpec

    rows = features.transpose(0, 1).reshape(-1, features.shape[-1])
    groups = labels.repeat(features.shape[1]).long()
    spec = PositiveSpec(torch.arange(rows.shape[0], device=rows.device), groups, groups)
    return kernels.triton_applicable(rows, spec, "out", "all")


def _skip_reason(path: str, n: int, cuda: bool, features, labels) -> str | None:
    if path == "pml" and not pml_available():
        return "not installed (pip install -e '.[bench]')"
    if path == "triton" and not (cuda and _triton_used(features, labels)):
        return "needs CUDA and the Triton kernel"
    if path == "matmul" and not cuda:
        return "CUDA only"
    if path in PEER_BYTES_PER_ENTRY and not cuda:
        need, have = PEER_BYTES_PER_ENTRY[path] * n * n, available_bytes()
        if have is not None and need > 0.8 * have:
            return f"needs ~{need / 2**30:.0f} GiB, {have / 2**30:.0f} GiB available"
    return None


def measure(path: str, n: int, dim: int, classes: int, device_name: str, repeats: int,
            min_time: float, chunk: int = TILED_CHUNK) -> dict:
    """Times forward+backward passes of one path at one size, then measures its peak memory."""
    import torch

    device = torch.device(device_name)
    cuda = device.type == "cuda"
    features, labels = _make_inputs(n, dim, classes, device)
    result = {"path": path, "n": n, "device": device_name, "threads": torch.get_num_threads(),
              "torch": torch.__version__}
    # The tiled path is PyTorch's on request; the Triton path is whatever supcon_loss picks.
    if path == "tiled":
        os.environ["SUPCON_DISABLE_TRITON"] = "1"
    else:
        os.environ.pop("SUPCON_DISABLE_TRITON", None)
    skipped = _skip_reason(path, n, cuda, features, labels)
    if skipped:
        return {**result, "skipped": skipped}
    if path == "default":
        result["choice"] = _auto_choice(features, labels)
    if path == "matmul":
        a = features.reshape(n, dim).to(torch.bfloat16)
        b = a.T.contiguous()
        product = torch.empty(n, n, dtype=torch.bfloat16, device=device)

        def step() -> None:  # one matmul is short: time MATMUL_REPEATS of them, report one
            for _ in range(MATMUL_REPEATS):
                torch.matmul(a, b, out=product)
    else:
        loss_fn = _loss_fn(path, chunk)
        features.requires_grad_(True)
        last_loss = [None]

        def step() -> None:
            features.grad = None
            loss = loss_fn(features, labels)
            loss.backward()
            last_loss[0] = loss.detach()

    def timed() -> float:
        if cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            stop.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(stop) / 1000.0
        begin = time.perf_counter()
        step()
        return time.perf_counter() - begin

    first = timed()  # warm-up: lazy initialisation, library code paged in, kernels compiled
    passes = min(MAX_TIMED_PASSES, max(repeats, math.ceil(min_time / max(first, 1e-6))))
    times = [timed() for _ in range(passes)]
    result["passes"] = passes
    if cuda:
        torch.cuda.synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - baseline
    else:
        gc.collect()
        result["exact_peak"] = _fix_mmap_threshold()
        baseline, _ = _rss_bytes()
        result["exact_peak"] &= _reset_peak_rss()
        step()
        peak = (_rss_bytes()[1] or 0) - (baseline or 0)
    if path == "matmul":
        times = [t / MATMUL_REPEATS for t in times]
    else:
        result["loss"] = float(last_loss[0])
    return {**result, "time_s": statistics.median(times), "best_s": min(times),
            "peak_bytes": max(peak, 0)}


def _run_worker(path: str, n: int, args: argparse.Namespace, device: str) -> dict:
    """Runs :func:`measure` in ``args.processes`` fresh interpreters; the median time."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", path, str(n),
        "--dim", str(args.dim), "--classes", str(args.classes), "--device", device,
        "--repeats", str(args.repeats), "--min-time", str(args.min_time),
        "--threads", str(args.threads), "--chunk", str(args.chunk),
    ]
    runs = []
    for _ in range(args.processes):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=WORKER_TIMEOUT_S)
            stdout = done.stdout
            why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        except subprocess.TimeoutExpired:
            stdout, why = "", f"timed out after {WORKER_TIMEOUT_S} s"
        lines = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
        if not lines:
            return {"path": path, "n": n, "failed": why[:80]}
        runs.append(lines[-1])
        if "time_s" not in runs[-1]:
            return runs[-1]  # skipped: the same in every process
    result = dict(runs[0])
    result["time_s"] = statistics.median(r["time_s"] for r in runs)
    result["best_s"] = min(r.get("best_s", r["time_s"]) for r in runs)
    result["peak_bytes"] = statistics.median(r["peak_bytes"] for r in runs)
    result["processes"] = len(runs)
    return result


# ---------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def _label(r: dict) -> str:
    return f"default ({r['choice']})" if r.get("choice") else r["path"]


def format_table(results: list[dict]) -> str:
    """Markdown: N | path | time ms | best ms | peak MiB | time / default | memory / default."""
    lines = ["| N | path | time ms | best ms | peak MiB | time / default | memory / default |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    reference = {r["n"]: r for r in results if r["path"] == "default" and "time_s" in r}
    for r in results:
        ref = reference.get(r["n"], {})
        if "time_s" not in r:
            note = r.get("skipped") or f"failed: {r.get('failed')}"
            lines.append(f"| {r['n']} | {r['path']} | {note} | - | - | - | - |")
            continue
        ms, mib = r["time_s"] * 1000, r["peak_bytes"] / 2**20
        if r["path"] == "matmul":
            lines.append(f"| {r['n']} | matmul (1 bf16 N x d @ d x N) | {ms:.3f} | - | - | "
                         f"{_ratio(r['time_s'], ref.get('time_s'))} | - |")
            lines.append(f"| {r['n']} | matmul bound (4 x) | {4 * ms:.3f} | - | - | "
                         f"{_ratio(4 * r['time_s'], ref.get('time_s'))} | - |")
            continue
        best = r.get("best_s", r["time_s"]) * 1000
        lines.append(f"| {r['n']} | {_label(r)} | {ms:.{1 if ms >= 10 else 2}f} | "
                     f"{best:.{1 if best >= 10 else 2}f} | {mib:.1f} | "
                     f"{_ratio(r['time_s'], ref.get('time_s'))} | "
                     f"{_ratio(r['peak_bytes'], ref.get('peak_bytes'))} |")
    return "\n".join(lines)


def format_summary(results: list[dict]) -> str:
    """Markdown: one row per N, time ms per path, and which measured path was fastest."""
    paths = [p for p in PATHS if any(r["path"] == p and "time_s" in r for r in results)]
    lines = ["| N | " + " | ".join(paths) + " | fastest |",
             "|---:|" + "---:|" * len(paths) + "---|"]
    for n in sorted({r["n"] for r in results}):
        row = {r["path"]: r for r in results if r["n"] == n and "time_s" in r}
        cells = [f"{row[p]['time_s'] * 1000:.{1 if row[p]['time_s'] >= 0.01 else 2}f}"
                 if p in row else "-" for p in paths]
        timed = {p: r["time_s"] for p, r in row.items() if p != "matmul"}
        fastest = min(timed, key=timed.get) if timed else "-"
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {fastest} |")
    return "\n".join(lines)


def _resolve_device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help="numbers of rows N (batch N/2 x 2 views)")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument("--classes", type=int, default=100, help="number of label classes")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="at least this many timed passes")
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="and at least this many seconds of timed passes (at most 200)")
    parser.add_argument("--processes", type=int, default=1,
                        help="fresh processes per (path, N); the median of their times")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--chunk", type=int, default=TILED_CHUNK,
                        help="chunk_size of the tiled and triton paths")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads per worker (0: torch's default)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: N = 512, one process, one timed pass")
    parser.add_argument("--worker", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        if args.threads > 0:
            import torch

            torch.set_num_threads(args.threads)
        result = measure(args.worker[0], int(args.worker[1]), args.dim, args.classes,
                         args.device, args.repeats, args.min_time, args.chunk)
        print(json.dumps(result), flush=True)
        return

    device = _resolve_device(args.device)
    sizes = [512] if args.quick else sorted(set(args.sizes))
    if args.quick:
        args.repeats, args.min_time, args.processes = 1, 0.0, 1
    if any(n < 4 or n % 2 for n in sizes):
        parser.error(f"--sizes must be even and >= 4, got {sizes}")
    paths = [p for p in PATHS if p in args.paths]
    if device != "cuda":
        paths = [p for p in paths if p not in ("triton", "matmul")]
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    print(f"# supcon loss benchmark: device {device}, float32, dim {args.dim}, {args.classes} "
          f"classes, 2 views, tiled chunk {args.chunk}; per (path, N) {args.processes} fresh "
          f"process(es), median of >= {args.repeats} passes and >= {args.min_time:g} s after a "
          f"warm-up; load average at start {load}, {os.cpu_count()} CPUs", flush=True)
    results = []
    for n in sizes:
        for path in paths:
            result = _run_worker(path, n, args, device)
            results.append(result)
            shown = f"{result['time_s'] * 1000:.2f} ms" if "time_s" in result else (
                result.get("skipped") or result.get("failed"))
            print(f"#   N = {n:>6} {path:<12} {shown}", file=sys.stderr, flush=True)
    info = next((r for r in results if "torch" in r), None)
    if info:
        print(f"# torch {info['torch']}, {info['threads']} intra-op thread(s) per worker")
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    print(f"# load average at the end {load}")
    print(f"# command: python {' '.join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])}")
    print()
    print(format_table(results))
    print()
    print(format_summary(results))
    losses: dict[int, list[float]] = {}
    for r in results:
        if "loss" in r and r["path"] in SAME_LOSS:
            losses.setdefault(r["n"], []).append(r["loss"])
    spread = max((max(v) - min(v) for v in losses.values()), default=0.0)
    print()
    print(f"The supervised-loss values agree across paths to {spread:.2e} (largest spread at one "
          "N; lightly computes NT-Xent, a different loss).")


if __name__ == "__main__":
    main()
