"""bench/gpu_check.sh --dry-run: the GPU check's code path runs on the CPU and prints its table."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow  # runs bench/gpu_check.sh in subprocesses: pytest -m slow
def test_gpu_check_dry_run_prints_the_summary_table() -> None:
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "| check | status | steps/s | minutes per 100k steps | detail |" in out
    table = out[out.index("## GPU check: CPU dry run"):]
    assert "| pytest -m gpu | skipped |" in table
    for method in ("AE", "InjFlow"):
        assert f"| {method} 32-true | ok" in table
        assert f"| {method} bf16-mixed in_memory | ok" in table
        assert f"| {method} 16-mixed | skipped |" in table
        assert f"| {method} 32-true in_memory compile | skipped |" in table
    assert "| DDP 2 GPUs (nccl) | skipped |  |  | needs 2 GPUs, found 0 |" in table
    assert "FAILED" not in table
