"""Benchmark of the SupCon loss paths: forward+backward time and peak memory per size.

Compares, for N views (batch N/2 samples x 2 views, 100 classes, dim 128):

* ``dense``: ``supcon_loss(..., chunk_size=None)`` (the N x N matrix, autograd backward);
* ``tiled``: ``supcon_loss(..., chunk_size=1024)`` (``--chunk``) on the PyTorch tiled path
  (``SUPCON_DISABLE_TRITON=1``);
* ``triton``: the same call on CUDA with the fused Triton kernel (skipped where unavailable);
* ``allmatrices``: a plain implementation in the style of most research code, written here from
  the paper's eq. 2: label-equality mask tiled over the views, logits minus the (detached) row
  max, every N x N intermediate kept alive for autograd;
* ``matmul`` (CUDA only): one bf16 (N x dim) @ (dim x N) matmul, the shape of the similarity
  matrix. Forward+backward of any exact SupCon needs about four such products (one forward,
  one recomputation, two for the gradients), so ``4 x matmul`` is the bound the table uses.

Each (path, N) runs in a fresh subprocess: time is the median of ``--repeats`` forward+backward
passes after one warm-up pass. Peak memory covers the timed passes: on CPU, the process's peak
resident set size (VmHWM, reset after the warm-up) minus the resident size then, with glibc's
mmap threshold fixed at 64 KiB so that freed tensors leave the resident set; on CUDA,
``torch.cuda.max_memory_allocated`` minus the allocation after the warm-up. The script prints
numbers and never asserts timings; on a shared machine, note the load average it prints.

Usage::

    python benchmarks/loss.py                         # 1024 4096 8192 16384, auto device
    python benchmarks/loss.py --device cpu --sizes 4096 8192 --repeats 5
    python benchmarks/loss.py --quick --device cpu    # a seconds-long smoke run (N = 512)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

PATHS = ("dense", "tiled", "triton", "allmatrices", "matmul")
DEFAULT_SIZES = (1024, 4096, 16384)
TARGET_SIZE = 8192
TILED_CHUNK = 1024
MATMUL_REPEATS = 10
WORKER_TIMEOUT_S = 1800

SRC = Path(__file__).resolve().parents[1] / "src"


# ---------------------------------------------------------------------------------------------
# The research-code baseline, from the paper (eq. 2, L_out), all N x N matrices materialised
# ---------------------------------------------------------------------------------------------


def allmatrices_supcon_loss(features, labels, temperature: float = 0.1):
    """L_out of Khosla et al. (2020) the way most research repositories write it.

    Args:
        features: (batch, views, dim) embeddings (L2-normalised here).
        labels: (batch,) integer classes.
        temperature: softmax temperature.

    Returns:
        The scalar mean loss over all ``batch * views`` anchors.
    """
    import torch
    import torch.nn.functional as F

    batch, views, _ = features.shape
    n = batch * views
    features = F.normalize(features, dim=2)
    # View-major stacking: row v * batch + b is view v of sample b.
    stacked = torch.cat(torch.unbind(features, dim=1), dim=0)
    same_label = torch.eq(labels[:, None], labels[None, :]).float()
    same_label = same_label.repeat(views, views)
    # 1 everywhere but the diagonal: an anchor is neither its own positive nor in the denominator.
    not_self = torch.scatter(
        torch.ones_like(same_label), 1, torch.arange(n, device=features.device)[:, None], 0
    )
    positives = same_label * not_self
    logits = torch.matmul(stacked, stacked.T) / temperature
    row_max, _ = torch.max(logits, dim=1, keepdim=True)
    logits = logits - row_max.detach()
    exp_logits = torch.exp(logits) * not_self
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    mean_log_prob_pos = (positives * log_prob).sum(1) / positives.sum(1)
    return -mean_log_prob_pos.mean()


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


def _make_inputs(n: int, dim: int, classes: int, device, seed: int = 0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    batch = n // 2
    features = torch.randn(batch, 2, dim, generator=generator).to(device)
    labels = torch.randint(0, classes, (batch,), generator=generator).to(device)
    return features, labels


def _loss_fn(path: str, chunk: int):
    from supcon.losses import supcon_loss

    if path == "dense":
        return lambda f, y: supcon_loss(f, y, chunk_size=None)
    if path in ("tiled", "triton"):
        return lambda f, y: supcon_loss(f, y, chunk_size=chunk)
    if path == "allmatrices":
        return allmatrices_supcon_loss
    raise ValueError(f"path must be one of {PATHS}, got {path!r}")


def _triton_used(features, labels) -> bool:
    """Whether supcon_loss would run the fused kernel for these inputs."""
    import torch

    from supcon import kernels
    from supcon.losses import PositiveSpec

    rows = features.transpose(0, 1).reshape(-1, features.shape[-1])
    groups = labels.repeat(features.shape[1]).long()
    spec = PositiveSpec(torch.arange(rows.shape[0], device=rows.device), groups, groups)
    return kernels.triton_applicable(rows, spec, "out", "all")


def measure(
    path: str, n: int, dim: int, classes: int, device_name: str, repeats: int, chunk: int = 1024,
) -> dict:
    """Times ``repeats`` forward+backward passes of one path at one size, after a warm-up."""
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
    if path == "triton" and not (cuda and _triton_used(features, labels)):
        return {**result, "skipped": "needs CUDA and the Triton kernel"}
    if path == "matmul":
        if not cuda:
            return {**result, "skipped": "CUDA only"}
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

    step()  # warm-up: lazy initialisation, library code paged in, kernels compiled
    if cuda:
        torch.cuda.synchronize(device)
        baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        gc.collect()
        baseline, _ = _rss_bytes()
        exact_peak = _reset_peak_rss()
        if not exact_peak:
            baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for _ in range(repeats):
        if cuda:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            stop.record()
            torch.cuda.synchronize(device)
            elapsed = start.elapsed_time(stop) / 1000.0
        else:
            begin = time.perf_counter()
            step()
            elapsed = time.perf_counter() - begin
        times.append(elapsed)
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) - baseline
    elif exact_peak:
        peak = _rss_bytes()[1] - baseline
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    if path == "matmul":
        times = [t / MATMUL_REPEATS for t in times]
    else:
        result["loss"] = float(last_loss[0])
    return {**result, "time_s": statistics.median(times), "peak_bytes": max(peak, 0)}


def _run_worker(paths: list[str], n: int, args: argparse.Namespace, device: str) -> list[dict]:
    """Runs :func:`measure` for ``paths`` at size ``n`` in a fresh interpreter, in order."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    # Fixed glibc mmap threshold: blocks of 64 KiB and more go back to the OS when freed, so
    # the resident size follows the live tensors (the adaptive default keeps up to 32 MiB).
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "65536")
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", ",".join(paths), str(n),
        "--dim", str(args.dim), "--classes", str(args.classes), "--device", device,
        "--repeats", str(args.repeats), "--threads", str(args.threads), "--chunk", str(args.chunk),
    ]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
        stdout, why = done.stdout, (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
    except subprocess.TimeoutExpired as timeout:
        stdout, why = timeout.stdout or "", f"timed out after {WORKER_TIMEOUT_S} s"
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
    measured = {r["path"]: r for r in map(json.loads, (x for x in stdout.splitlines() if x.startswith("{")))}
    return [measured.get(path, {"path": path, "n": n, "failed": why[:80]}) for path in paths]


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return "-"
    return f"{value / reference:.3f}x"


def format_table(results: list[dict]) -> str:
    """Markdown table: N | path | time ms | peak MiB | time vs allmatrices | memory vs allmatrices."""
    lines = [
        "| N | path | time ms | peak MiB | time vs allmatrices | memory vs allmatrices |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    reference = {r["n"]: r for r in results if r["path"] == "allmatrices" and "time_s" in r}
    for r in results:
        ref = reference.get(r["n"], {})
        if "time_s" not in r:
            note = r.get("skipped") or f"failed: {r.get('failed')}"
            lines.append(f"| {r['n']} | {r['path']} | {note} | - | - | - |")
            continue
        ms = r["time_s"] * 1000
        mib = r["peak_bytes"] / 2**20
        if r["path"] == "matmul":
            lines.append(
                f"| {r['n']} | matmul (1 bf16 N x d @ d x N) | {ms:.3f} | - | "
                f"{_ratio(r['time_s'], ref.get('time_s'))} | - |"
            )
            lines.append(
                f"| {r['n']} | matmul bound (4 x, used) | {4 * ms:.3f} | - | "
                f"{_ratio(4 * r['time_s'], ref.get('time_s'))} | - |"
            )
            continue
        lines.append(
            f"| {r['n']} | {r['path']} | {ms:.1f} | {mib:.1f} | "
            f"{_ratio(r['time_s'], ref.get('time_s'))} | "
            f"{_ratio(r['peak_bytes'], ref.get('peak_bytes'))} |"
        )
    return "\n".join(lines)


def _target_line(results: list[dict], device: str) -> str | None:
    by_path = {r["path"]: r for r in results if r["n"] == TARGET_SIZE and "time_s" in r}
    tiled, reference = by_path.get("tiled"), by_path.get("allmatrices")
    if tiled is None or reference is None:
        return None
    time_ratio = tiled["time_s"] / reference["time_s"]
    memory_ratio = tiled["peak_bytes"] / max(reference["peak_bytes"], 1)
    return (
        f"Target at N = {TARGET_SIZE} on {device}: tiled time {time_ratio:.3f}x allmatrices "
        f"(goal <= 1: {'met' if time_ratio <= 1 else 'missed'}), peak memory {memory_ratio:.3f}x "
        f"(goal <= 0.125: {'met' if memory_ratio <= 0.125 else 'missed'})."
    )


def _resolve_device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES),
                        help=f"numbers of views N (batch N/2 x 2 views); {TARGET_SIZE} is always added")
    parser.add_argument("--dim", type=int, default=128, help="embedding dimension")
    parser.add_argument("--classes", type=int, default=100, help="number of label classes")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes after one warm-up")
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--chunk", type=int, default=TILED_CHUNK,
                        help="chunk_size of the tiled and triton paths")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads per worker (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="smoke run: N = 512, 1 timed pass")
    parser.add_argument("--worker", nargs=2, metavar=("PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        if args.threads > 0:
            import torch

            torch.set_num_threads(args.threads)
        for path in args.worker[0].split(","):
            result = measure(path, int(args.worker[1]), args.dim, args.classes, args.device,
                             args.repeats, args.chunk)
            print(json.dumps(result), flush=True)
            gc.collect()
        return

    device = _resolve_device(args.device)
    if args.quick:
        sizes, args.repeats = [512], 1
    else:
        sizes = sorted(set(args.sizes) | {TARGET_SIZE})
    if any(n < 4 or n % 2 for n in sizes):
        parser.error(f"--sizes must be even and >= 4, got {sizes}")
    # The reference goes first at each size so that the ratios have a denominator.
    paths = sorted(args.paths, key=lambda p: (p != "allmatrices", PATHS.index(p)))
    if device != "cuda":
        paths = [p for p in paths if p not in ("triton", "matmul")]

    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    print(f"# supcon loss benchmark: device {device}, dim {args.dim}, {args.classes} classes, "
          f"2 views, tiled chunk {args.chunk}, median of {args.repeats} after a warm-up, "
          f"load average {load}, "
          f"{os.cpu_count()} CPUs", flush=True)
    results = []
    # One fresh process per (path, N); the smoke run shares one process to save the imports.
    batches = [(paths, n) for n in sizes] if args.quick else [([p], n) for n in sizes for p in paths]
    for batch_paths, n in batches:
        for result in _run_worker(batch_paths, n, args, device):
            results.append(result)
            path = result["path"]
            shown = f"{result['time_s'] * 1000:.1f} ms" if "time_s" in result else (
                result.get("skipped") or result.get("failed"))
            print(f"#   N = {n:>6} {path:<12} {shown}", file=sys.stderr, flush=True)
    info = next((r for r in results if "torch" in r), None)
    if info:
        print(f"# torch {info['torch']}, {info['threads']} intra-op threads per worker")
    print(f"# command: python {' '.join([Path(sys.argv[0]).as_posix()] + sys.argv[1:])}")
    print()
    print(format_table(results))
    losses = {}
    for r in results:
        if "loss" in r:
            losses.setdefault(r["n"], []).append(r["loss"])
    spread = max((max(v) - min(v) for v in losses.values()), default=0.0)
    print()
    print(f"Loss values agree across paths to {spread:.2e} (max spread at one N).")
    target = _target_line(results, device)
    if target:
        print()
        print(target)


if __name__ == "__main__":
    main()
