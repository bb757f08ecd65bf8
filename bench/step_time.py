"""Mean training-step time of AE vs InjFlow (each J v mode) on the MNIST ConvBackbone.

One step = loss on a batch of 128 MNIST-shaped images, backward, Adam step (what the Trainer runs
per batch, without its bookkeeping). Forward mode is also timed with ``jac_fraction`` < 1 (the
Jacobian term on a random sub-batch; ``--fractions``). Prints a markdown table for
docs/benchmarks.md.

    python bench/step_time.py [--widths 1.0 0.25] [--steps 10] [--warmup 3] [--threads N] \
        [--fractions 0.5 0.25] [--only-forward]
"""

import argparse
import platform
import time
from typing import Any

import torch

from genae_lightning.backbones import ConvBackbone
from genae_lightning.methods import AE, InjFlow

CASES = [
    ("AE", lambda bb: AE(latent_dim=32, backbone=bb)),
    ("InjFlow forward", lambda bb: InjFlow(latent_dim=32, backbone=bb, jvp="forward")),
    ("InjFlow finite_difference",
     lambda bb: InjFlow(latent_dim=32, backbone=bb, jvp="finite_difference")),
    ("InjFlow reverse", lambda bb: InjFlow(latent_dim=32, backbone=bb, jvp="reverse")),
]


def cases(fractions: list[float], only_forward: bool) -> list[tuple[str, Any]]:
    """AE, InjFlow in each J v mode, and forward mode at each ``jac_fraction`` below 1."""
    chosen = [c for c in CASES if not only_forward or c[0] in ("AE", "InjFlow forward")]
    for fraction in fractions:
        if fraction < 1:
            chosen.append((f"InjFlow forward, jac_fraction {fraction:g}",
                           lambda bb, f=fraction: InjFlow(latent_dim=32, backbone=bb,
                                                         jvp="forward", jac_fraction=f)))
    return chosen


def step_time(model: torch.nn.Module, x: torch.Tensor, steps: int, warmup: int) -> float:
    """Mean seconds per (loss, backward, optimizer step) after ``warmup`` untimed steps."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        model.loss(x).total.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.25])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--fractions", type=float, nargs="*", default=[0.5, 0.25],
                        help="jac_fraction values below 1 to time in forward mode")
    parser.add_argument("--only-forward", action="store_true",
                        help="time AE and forward mode only (skip finite_difference, reverse)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.rand(args.batch, 1, 28, 28)
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads, torch {torch.__version__}, batch {args.batch}, {args.steps} timed steps "
          f"after {args.warmup} warm-up")
    print("\n| width | method | ms / step | x AE |\n|---|---|---|---|")
    for width in args.widths:
        base = None
        for name, make in cases(args.fractions, args.only_forward):
            torch.manual_seed(0)
            seconds = step_time(make(ConvBackbone(preset="mnist", width=width)), x, args.steps,
                                args.warmup)
            base = base or seconds
            print(f"| {width} | {name} | {1000 * seconds:.0f} | {seconds / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
