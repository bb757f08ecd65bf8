"""The README's "Use from Python" snippet (and the docs' home page one) run as written.

Only sizes are substituted (two training steps), so what the snippets say stays true.
"""

import re

import pytest
import torch

from tests.conftest import REPO, SHARED_DATA

MNIST_FILES = SHARED_DATA / "MNIST" / "raw"


SNIPPETS = {"README.md": "## Use from Python", "docs/index.md": "**A library.**"}


def snippet(page: str) -> str:
    """The first ```python block after the page's heading."""
    text = (REPO / page).read_text()
    section = text.split(SNIPPETS[page], 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"{page}'s {SNIPPETS[page]!r} section has no ```python block"
    return match.group(1)


def substitute(code: str, old: str, new: str) -> str:
    assert old in code, f"the README snippet no longer contains {old!r}: update this test"
    return code.replace(old, new)


@pytest.mark.parametrize("page", sorted(SNIPPETS))
def test_the_use_from_python_snippet_runs(page, tmp_path, monkeypatch) -> None:
    """Two training steps instead of 1000, quiet, in a temporary folder.

    The real MNIST files are used when the shared data folder has them (as in CI); elsewhere the
    snippet's ``MNIST(root="data")`` becomes 28x28 ``SyntheticImages`` of the same shape.
    """
    monkeypatch.chdir(tmp_path)
    code = substitute(snippet(page), "L.Trainer(max_steps=1000,",
                      "L.Trainer(max_steps=2, limit_val_batches=1, logger=False, "
                      "enable_checkpointing=False, enable_progress_bar=False, "
                      "enable_model_summary=False, accelerator='cpu', devices=1,")
    code = substitute(code, "FitLatentPrior()", "FitLatentPrior(max_samples=256)")
    if MNIST_FILES.is_dir():
        data = f"MNIST(root={str(SHARED_DATA)!r})"
    else:
        data = "SyntheticImages(image_shape=(1, 28, 28), num_samples=64)"
        code = "from genae_lightning.data import SyntheticImages\n" + code
    code = substitute(code, 'MNIST(root="data")', data)
    namespace: dict = {}
    exec(compile(code, f"{page} ({SNIPPETS[page]})", "exec"), namespace)
    images = namespace["images"]
    assert isinstance(images, torch.Tensor) and images.shape == (64, 1, 28, 28)
    assert torch.isfinite(images).all()
    assert "gmm" in namespace["model"].posthoc_priors
