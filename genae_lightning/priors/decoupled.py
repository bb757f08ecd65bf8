"""The decoupled prior of dpVAE: a RealNVP bijection g between z and z0 ~ N(0, I).

The representation space z (where the encoder's posteriors and the regularisers live) and the
generation space z0 (where samples are drawn) are tied by an invertible map ``z0 = g(z)`` of
affine coupling layers (nflows), so that by the change of variables (the paper's eq. 2)::

    log p(z) = log N(g(z); 0, I) + log |det dg/dz|

and sampling draws z0 ~ N(0, I) and returns z = g^{-1}(z0). Each coupling layer k transforms one
half of the coordinates given the other, ``z_k -> b * z_k + (1 - b) * (z_k * exp(s(b * z_k)) +
t(b * z_k))`` (eq. 3), with masks b alternating between the first ceil(d/2) and the last floor(d/2)
coordinates, so d = 2 and odd d work. ``s`` is bounded by tanh and the last layer of every
coupling network starts at zero, so an untrained prior is exactly N(0, I).
"""

import torch
from nflows.transforms import AffineCouplingTransform, CompositeTransform
from torch import Tensor, nn

from genae_lightning.functional.precision import at_least_float32
from genae_lightning.priors.base import Prior
from genae_lightning.priors.gaussian import StandardNormal


class _CouplingNet(nn.Module):
    """MLP giving the shift and log-scale of a coupling layer from the untouched coordinates."""

    def __init__(self, in_features: int, out_features: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.LeakyReLU(),
            nn.Linear(hidden, hidden), nn.LeakyReLU(),
            nn.Linear(hidden, out_features),
        )
        nn.init.zeros_(self.net[-1].weight)  # identity coupling at initialisation
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """(B, in_features) -> (B, out_features); ``context`` is unused (nflows' signature)."""
        return self.net(x)


class _ExpAffineCoupling(AffineCouplingTransform):
    """nflows' affine coupling with the paper's scale exp(s), s = tanh(raw) in (-1, 1).

    nflows' default scale, sigmoid(raw + 2) + 1e-3, can only shrink in the forward direction;
    exp(tanh(.)) lets g both expand and contract and is 1 (the identity) at raw = 0.
    """

    def _scale_and_shift(self, transform_params: Tensor) -> tuple[Tensor, Tensor]:
        n = self.num_transform_features
        shift, raw_scale = transform_params[:, :n], transform_params[:, n:]
        return torch.exp(torch.tanh(raw_scale)), shift


def half_masks(dim: int, layers: int) -> list[Tensor]:
    """Binary masks (1 = transformed) alternating between the two halves of ``dim`` coordinates.

    Examples:
        >>> [m.tolist() for m in half_masks(3, 2)]
        [[1, 1, 0], [0, 0, 1]]
    """
    first = torch.zeros(dim, dtype=torch.long)
    first[: (dim + 1) // 2] = 1
    return [first if k % 2 == 0 else 1 - first for k in range(layers)]


class DecoupledPrior(Prior):
    """p(z) = N(g(z); 0, I) |det dg/dz| with g a RealNVP of ``flow_layers`` affine couplings.

    Args:
        dim: Latent dimension d (>= 2: a coupling layer needs coordinates on both sides); None
            when a method sets it to its ``latent_dim`` (``VAE(prior=DecoupledPrior())``).
        flow_layers: Number K of affine coupling layers (the paper's reference code: 6).
        flow_hidden: Width of the two hidden layers of every coupling network.

    Reference:
        Bhalodia, Lee & Elhabian, "dpVAEs: Fixing Sample Generation for Regularized VAEs",
        ACCV 2020, section 4.2; Dinh, Sohl-Dickstein & Bengio, "Density estimation using
        Real NVP", ICLR 2017.
    """

    paper = ("Bhalodia, Lee & Elhabian, *dpVAEs: Fixing Sample Generation for Regularized "
             "VAEs*, ACCV 2020")

    def __init__(self, dim: int | None = None, flow_layers: int = 6, flow_hidden: int = 64) -> None:
        if flow_layers < 1 or flow_hidden < 1:
            raise ValueError(
                f"flow_layers and flow_hidden must be >= 1, got {flow_layers}, {flow_hidden}"
            )
        self.flow_layers, self.flow_hidden = flow_layers, flow_hidden
        super().__init__(dim)

    def _set_dim(self, dim: int) -> None:
        """Build the flow for latents of dimension ``dim``."""
        if dim < 2:
            raise ValueError(
                f"the decoupled prior needs latent_dim >= 2 (a coupling layer splits the "
                f"coordinates in two), got {dim}; use prior=StandardNormal() for a 1-D latent"
            )
        super()._set_dim(dim)
        hidden = self.flow_hidden
        self.transform = CompositeTransform([
            _ExpAffineCoupling(mask, lambda n_in, n_out: _CouplingNet(n_in, n_out, hidden))
            for mask in half_masks(dim, self.flow_layers)
        ])
        self.base = StandardNormal(dim)

    def init_args(self) -> dict[str, int]:
        """``flow_layers`` and ``flow_hidden``."""
        return {"flow_layers": self.flow_layers, "flow_hidden": self.flow_hidden}

    def to_base(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """z0 = g(z) and log|det dg/dz|, shapes (B, d) and (B,)."""
        self._check(z)
        with torch.autocast(z.device.type, enabled=False):  # tiny nets: float32, exact log-dets
            return self.transform(*at_least_float32(z))

    def from_base(self, z0: Tensor) -> tuple[Tensor, Tensor]:
        """Inverse map z = g^{-1}(z0) and log|det dg^{-1}/dz0|, shapes (B, d) and (B,)."""
        self._check(z0)
        with torch.autocast(z0.device.type, enabled=False):
            return self.transform.inverse(*at_least_float32(z0))

    def log_prob(self, z: Tensor) -> Tensor:
        """Log-density log N(g(z); 0, I) + log|det dg/dz|, (B,), differentiable in z and g."""
        z0, logdet = self.to_base(z)
        return self.base.log_prob(z0) + logdet

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """g^{-1}(z0) for n draws z0 ~ N(0, I), shape (n, d); differentiable in the flow."""
        return self.from_base(self._randn(n, self.bound_dim(), generator=generator))[0]
