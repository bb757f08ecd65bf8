"""Per-step seeding: the same step draws the same noise, other steps other noise."""

import torch

from genae_lightning.autoencoder.seeding import STAGE_CODES, seeded, step_seed


def test_step_seed_is_deterministic_and_distinct() -> None:
    base = step_seed(123, 5, 2, "train", rank=0)
    assert base == step_seed(123, 5, 2, "train", rank=0)
    others = {step_seed(123, 6, 2, "train"), step_seed(123, 5, 3, "train"),
              step_seed(123, 5, 2, "val"), step_seed(123, 5, 2, "train", rank=1),
              step_seed(124, 5, 2, "train")}
    assert base not in others and len(others) == 5
    assert 0 <= step_seed(2**62, 10**9, 10**6, "test", rank=7) < 2**63
    assert set(STAGE_CODES) == {"train", "val", "test"}


def test_seeded_block_repeats_its_draws_and_leaves_the_outer_stream() -> None:
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    expected_outer = torch.rand(3)
    torch.manual_seed(0)
    with seeded(42, cpu):
        first = torch.randn(4)
    with seeded(42, cpu):
        again = torch.randn(4)
    torch.testing.assert_close(first, again)
    torch.testing.assert_close(torch.rand(3), expected_outer)  # as if the blocks never ran
