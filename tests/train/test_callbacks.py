"""Training hands finished runs to callbacks (plots live in the report layer, never imported by training)."""

from __future__ import annotations

from supcon.train.callbacks import RunEnd
from supcon.train.methods import pretrain, train_ce, train_linear


def test_every_method_calls_its_callbacks_once_with_what_it_trained(tmp_path, tiny_config):
    seen: list[RunEnd] = []
    cfg = tiny_config()
    pretrain(cfg, tmp_path / "pre", callbacks=[seen.append])
    train_linear(cfg, tmp_path / "pre" / "checkpoint.pt", tmp_path / "lin", callbacks=[seen.append])
    train_ce(cfg, tmp_path / "ce", callbacks=[seen.append, seen.append])
    assert [e.kind for e in seen] == ["pretrain", "linear", "ce", "ce"]
    pre, lin, ce = seen[0], seen[1], seen[2]
    assert pre.run_dir == tmp_path / "pre" and pre.title == "supcon" and (pre.run_dir / "metrics.json").is_file()
    assert pre.test_features.shape == (32, 128) and pre.test_labels.shape == (32,)
    assert lin.test_features is None and lin.classes == pre.classes
    assert ce.title == "cross-entropy" and ce.test_features.shape[0] == 32


def test_training_imports_no_plotting():
    import subprocess
    import sys

    code = ("import sys; import supcon.train.methods, supcon.eval.pipeline; "
            "print('matplotlib' in sys.modules, any(m.startswith('supcon.report') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
