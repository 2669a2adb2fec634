"""supcon.distributed and torchrun: the gathered loss and DDP's gradient equal the single-process
full-batch computation; a 2-process `supcon pretrain` writes one checkpoint; elastic restarts
with --auto-resume continue the run exactly; bad input fails clearly.

Two processes on gloo (CPU). The spawn-based test and the torchrun run take ~10-30 s each on a
loaded machine (mostly interpreter start-up); the elastic-restart test is marked slow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from supcon import supcon_loss
from supcon import distributed as dist_utils
from supcon.config import ConfigError, config_from_dict
from supcon.train import runtime
from supcon.train.loop import epoch_batches

WORLD = 2
# Global batch of 8 images, 4 per rank; rank 0 holds mostly class 0, rank 1 classes 1-3.
LABELS = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
BATCH, VIEWS, IN_DIM, DIM = 8, 2, 6, 5
RTOL = 1e-8


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(IN_DIM, 7), nn.Tanh(), nn.Linear(7, DIM)).double()


def _inputs() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, VIEWS, IN_DIM, generator=gen, dtype=torch.float64)


def _single_process(labels: torch.Tensor | None, chunk) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Full-batch loss, per-anchor losses (view-major) and parameter gradients, one process."""
    net = _net()
    x = _inputs()
    features = net(x.flatten(0, 1)).view(BATCH, VIEWS, DIM)
    loss = supcon_loss(features, labels, chunk_size=chunk)
    per_anchor = supcon_loss(features, labels, chunk_size=chunk, reduction="none").detach()
    grads = torch.autograd.grad(loss, list(net.parameters()))
    return loss.detach(), per_anchor, [g.detach() for g in grads]


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=RTOL, atol=1e-14)


def _worker(rank: int, init_file: str) -> None:
    """One rank: DDP over the tiny net, gather_contrast, and checks against one process."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        b = BATCH // WORLD
        mine = slice(rank * b, (rank + 1) * b)
        for supervised in (True, False):
            for chunk in (None, 3):  # dense path, tiled path
                labels = LABELS if supervised else None
                ref_loss, ref_rows, ref_grads = _single_process(labels, chunk)
                torch.manual_seed(100 + rank)  # a different init per rank: DDP must broadcast rank 0's
                net = _net() if rank == 0 else nn.Sequential(
                    nn.Linear(IN_DIM, 7), nn.Tanh(), nn.Linear(7, DIM)).double()
                ddp = nn.parallel.DistributedDataParallel(net)
                x = _inputs()[mine]
                local_labels = None if labels is None else labels[mine]
                features = ddp(x.flatten(0, 1)).view(b, VIEWS, DIM)
                contrast = dist_utils.gather_contrast(features, local_labels)
                assert contrast["contrast_features"].shape == ((WORLD - 1) * b * VIEWS, DIM)
                loss = supcon_loss(features, local_labels, **contrast, chunk_size=chunk)
                rows = supcon_loss(features, local_labels, **contrast, chunk_size=chunk,
                                   reduction="none").detach()
                loss.backward()
                where = f"rank {rank}, supervised={supervised}, chunk={chunk}"
                # Per-anchor losses: local row v*b + j is global row v*BATCH + rank*b + j.
                expected_rows = ref_rows.view(VIEWS, BATCH)[:, mine].reshape(-1)
                assert _close(rows, expected_rows), f"per-anchor losses differ ({where})"
                mean = dist_utils.all_reduce_mean(loss.detach())
                assert _close(mean, ref_loss), f"loss {mean.item()} != {ref_loss.item()} ({where})"
                for (name, p), g in zip(net.named_parameters(), ref_grads):
                    assert _close(p.grad, g), (
                        f"gradient of {name} differs ({where}): max |diff| "
                        f"{(p.grad - g).abs().max().item():.3g}")
        # The queue's enqueue gathers every rank's keys, in rank order: identical queues everywhere.
        from supcon.memory import MomentumQueue

        mq = MomentumQueue(_net(), 16, 0.9, DIM, batch_size=BATCH, dtype=torch.float64)
        keys = torch.nn.functional.normalize(_inputs()[mine, 0, :DIM], dim=1)
        mq.contrast_inputs(keys, LABELS[mine])
        mq.enqueue_last()
        feats, labels = mq.queue.get()
        assert torch.equal(labels, LABELS), f"rank {rank}: queue labels {labels.tolist()}"
        assert torch.equal(feats, torch.nn.functional.normalize(_inputs()[:, 0, :DIM], dim=1))
        # Both ranks finish every collective before either tears gloo down: a rank that destroys the
        # group while the other still talks to it can abort ("terminate called without an active
        # exception", seen once in CI).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_gathered_loss_and_ddp_gradients_equal_the_full_batch(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "pg_init"),), nprocs=WORLD, join=True)


def test_single_process_helpers_are_no_ops():
    x = torch.randn(4, 2, 3)
    assert dist_utils.gather_contrast(x, torch.arange(4)) == {}
    assert dist_utils.world_size() == 1 and dist_utils.rank() == 0
    assert torch.equal(dist_utils.all_gather_no_grad(x), x)
    assert dist_utils.all_gather_object({"a": 1}) == [{"a": 1}]
    assert dist_utils.init_from_env("cpu") == (0, 1, 0)


# ---------------------------------------------------------------------------------------------
# Sampler and bad input
# ---------------------------------------------------------------------------------------------


def test_ranks_get_equal_disjoint_slices_that_reshuffle_every_epoch():
    n, batch = 50, 12  # 50 % 12 != 0: drop_last keeps every rank's batches equal
    for world in (1, 2, 3, 4):
        epochs = []
        for epoch in range(2):
            per_rank = [epoch_batches(n, batch, epoch, 0, r, world) for r in range(world)]
            assert all(len(b) == n // batch for b in per_rank)
            assert all(len(x) == batch // world for b in per_rank for x in b)
            for step in range(n // batch):
                together = torch.cat([per_rank[r][step] for r in range(world)])
                assert together.unique().numel() == batch  # disjoint, and the whole global batch
            epochs.append(torch.cat([torch.cat(b) for b in per_rank]))
        assert not torch.equal(epochs[0], epochs[1])


def test_world_size_that_does_not_divide_the_batch_is_a_config_error():
    with pytest.raises(ConfigError, match=r"batch_size \(32\) must be divisible by the world size \(3\)"):
        epoch_batches(100, 32, 0, 0, rank=0, world_size=3)


def test_sync_bn_on_cpu_is_a_config_error():
    cfg = config_from_dict({"sync_bn": True, "device": "cpu", "arch": "small"})
    rt = runtime.Runtime(device=torch.device("cpu"), amp_dtype=None, rank=0, world_size=2)
    with pytest.raises(ConfigError, match="sync_bn needs CUDA"):
        runtime.wrap(nn.BatchNorm1d(3), cfg, rt)


# ---------------------------------------------------------------------------------------------
# torchrun
# ---------------------------------------------------------------------------------------------


def _torchrun(args: list[str], cwd: Path, env: dict[str, str] | None = None,
              timeout: float = 240) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 ARGS`` (the launcher of this interpreter)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def test_torchrun_pretrain_writes_one_checkpoint(tmp_path, tiny_flags):
    out = tmp_path / "run"
    proc = _torchrun(["-m", "supcon", "pretrain", *tiny_flags(queue_size=32, online_probe=True),
                      "--out", str(out)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in out.iterdir()) == [".supcon-run.json", "checkpoint.pt", "config.yaml",
                                                     "metrics.csv", "metrics.json"]
    assert proc.stdout.count("pretrain (supcon)") == 1  # rank 0 alone reports
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1 and len(state["rng_per_rank"]) == WORLD
    # Each rank draws its own augmentations: the saved RNG streams differ.
    assert not torch.equal(state["rng_per_rank"][0]["torch"], state["rng_per_rank"][1]["torch"])
    # 64 images / global batch 16 = 4 steps, each enqueueing the global batch's 16 keys.
    assert state["extra"]["queue"]["filled"] == 32 and (state["extra"]["queue"]["labels"] >= 0).all()


def test_torchrun_run_trains_every_stage_and_rank_zero_alone_reports(tmp_path, tiny_flags):
    """`supcon run` under torchrun: CE, pretraining and the linear probe all run under DDP; rank 0
    alone clears the --overwrite folder and writes and prints the summary."""
    out = tmp_path / "run"
    stale = out / "simclr"  # a stage of an earlier `supcon run` in this folder
    stale.mkdir(parents=True)
    (out / "summary.json").write_text("{}")
    (stale / "config.yaml").write_text("epochs: 1\n")
    proc = _torchrun(["-m", "supcon", "run", "--methods", "supcon,ce", *tiny_flags(),
                      "--overwrite", "--out", str(out)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not stale.exists()
    for ckpt in ("ce/checkpoint.pt", "supcon/checkpoint.pt", "supcon/linear/checkpoint.pt"):
        assert (out / ckpt).is_file(), ckpt
    assert (out / "summary.md").read_text().count("| supcon |") == 1
    assert proc.stdout.count("Results on") == 1  # one table, from rank 0


_PREEMPTED = textwrap.dedent("""
    import os, sys
    from supcon import cli
    from supcon.train import loop
    real_save = loop.save_checkpoint
    def save_then_die(state, path):
        real_save(state, path)
        if state["epoch"] == 1:
            os._exit(17)  # preempted right after the first checkpoint
    loop.save_checkpoint = save_then_die
    sys.exit(cli.main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_elastic_restart_with_auto_resume_continues_exactly(tmp_path, tiny_flags):
    flags = [*tiny_flags(epochs=2, queue_size=32, online_probe=True), "--auto-resume"]
    straight = _torchrun(["-m", "supcon", "pretrain", *flags, "--out", str(tmp_path / "a")], cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-4000:]
    script = tmp_path / "preempted.py"
    script.write_text(_PREEMPTED)
    # The agent must not share its rendezvous store with the workers across restarts, or the
    # restarted gloo group can read the dead workers' addresses (pytorch/pytorch#135712).
    restarted = _torchrun(["--max-restarts=1", str(script), "pretrain", *flags, "--out", str(tmp_path / "b")],
                          cwd=tmp_path, env={"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"})
    assert restarted.returncode == 0, restarted.stderr[-4000:]
    assert "resumed" in restarted.stderr
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for part in ("model", "probe"):
        for key, value in a["model"][part].items():
            assert torch.equal(value, b["model"][part][key]), f"{part}.{key}"
    for key, value in a["extra"]["key_encoder"].items():
        assert torch.equal(value, b["extra"]["key_encoder"][key]), key
    assert torch.equal(a["extra"]["queue"]["features"], b["extra"]["queue"]["features"])
    assert [r["loss"] for r in a["history"]] == [r["loss"] for r in b["history"]]


# ---------------------------------------------------------------------------------------------
# --auto-resume (single process)
# ---------------------------------------------------------------------------------------------


def test_auto_resume_starts_continues_and_replaces_only_an_unfinished_run(tmp_path, tiny_flags):
    from supcon import cli

    out = tmp_path / "run"
    assert cli.main(["pretrain", *tiny_flags(epochs=1), "--auto-resume", "--out", str(out)]) == 0
    assert cli.main(["pretrain", *tiny_flags(epochs=2), "--auto-resume", "--out", str(out)]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]) == 2  # continued, not restarted
    # A run killed before its first checkpoint leaves only config.yaml: started afresh.
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.yaml").write_text("epochs: 1\n")
    assert cli.main(["pretrain", *tiny_flags(), "--auto-resume", "--out", str(partial)]) == 0
    assert torch.load(partial / "checkpoint.pt", weights_only=True)["epoch"] == 1
    # Anything else in a folder without a checkpoint is not ours to replace.
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.yaml").write_text("epochs: 1\n")
    (other / "notes.txt").write_text("mine")
    (other / "metrics.csv").write_text("epoch\n")
    assert cli.main(["pretrain", *tiny_flags(), "--auto-resume", "--out", str(other)]) == 2
    assert (other / "notes.txt").exists()
