"""Decoder parameter penalties and GAN losses against direct computations."""

import pytest
import torch
from torch import nn

from genae_lightning.functional import discriminator_loss, generator_loss, squared_l2_norm


def test_squared_l2_norm_of_a_tiny_net_is_the_sum_of_squares() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ELU(), nn.Linear(4, 2))
    expected = sum((p.detach() ** 2).sum().item() for p in net.parameters())
    got = squared_l2_norm(net.parameters())
    assert got.item() == pytest.approx(expected, rel=1e-6)
    got.backward()
    for p in net.parameters():  # d||theta||^2 / d theta = 2 theta
        torch.testing.assert_close(p.grad, 2 * p.detach())
    assert squared_l2_norm([]).item() == 0.0


def test_gan_losses_closed_form() -> None:
    real, fake = torch.tensor([[2.0], [-1.0]]), torch.tensor([[0.5]])
    sig = torch.sigmoid
    expected_d = -(sig(real).log().mean() + (1 - sig(fake)).log().mean())
    torch.testing.assert_close(discriminator_loss(real, fake), expected_d)
    torch.testing.assert_close(generator_loss(fake), -sig(fake).log().mean())
