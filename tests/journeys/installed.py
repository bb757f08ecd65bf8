"""A plain (non-editable) ``pip install`` of this working tree into a throwaway venv.

The venv reuses this interpreter's packages (torch, lightning, ...) through a ``.pth`` file, so
only genae-lightning itself is built and installed: about 10 s. Commands run with the installed
copy only (no ``PYTHONPATH``), from a folder outside the repository.
"""

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


# What an earlier test in the same pytest worker may have left in os.environ that must not reach
# a fresh command: this copy's path, the worker's W&B service (wandb.init sets WANDB_SERVICE;
# a child would log into the worker's service), Lightning's seed, a verbose console.
LEAKED = ("PYTHONPATH", "WANDB_SERVICE", "PL_GLOBAL_SEED", "PL_SEED_WORKERS", "GENAE_VERBOSE")


def command_environment(**env: str) -> dict[str, str]:
    """The environment of a fresh command: this one's, less :data:`LEAKED`, plus ``env``."""
    environment = {k: v for k, v in os.environ.items() if k not in LEAKED}
    environment.update(env)
    return environment


def run(args: list, cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """Run ``args`` in ``cwd`` without ``PYTHONPATH``; fail with its output when it fails."""
    environment = command_environment(**env)
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout, env=environment)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def install_copy(folder: Path) -> Path:
    """Install a copy of the working tree (tracked and untracked, not ignored files) into a new
    venv under ``folder``; return the venv's ``bin`` folder."""
    source = folder / "source"  # a copy: building in place would leave build/ in the repo
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], REPO).stdout
    for name in files.splitlines():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    venv = folder / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], folder)
    # the dependencies (torch, ...) and the build backend come from this interpreter's packages
    (next(venv.glob("lib/python*/site-packages")) / "deps.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n")
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps",
         "--no-build-isolation", source], folder)
    return venv / "bin"
