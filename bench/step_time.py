"""Mean training-step time of AE vs InjFlow (each J v mode) on the MNIST ConvBackbone.

One step = loss on a batch of 128 MNIST-shaped images, backward, Adam step (what the Trainer runs
per batch, without its bookkeeping). Forward mode is also timed with ``jac_fraction`` < 1 (the
Jacobian term on a random sub-batch; ``--fractions``). Prints a markdown table for
docs/benchmarks.md.

    python bench/step_time.py [--widths 1.0 0.25] [--steps 10] [--warmup 3] [--threads N] \
        [--fractions 0.5 0.25] [--only-forward] [--interleave]
"""

import argparse
import platform
import statistics
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
    """AE, InjFlow in each J v mode, and forward / finite differences at each fraction < 1."""
    chosen = [c for c in CASES if not only_forward or c[0] in ("AE", "InjFlow forward")]
    for mode in ("forward", "finite_difference"):
        for fraction in fractions:
            if fraction < 1:
                chosen.append((f"InjFlow {mode}, jac_fraction {fraction:g}",
                               lambda bb, f=fraction, m=mode: InjFlow(
                                   latent_dim=32, backbone=bb, jvp=m, jac_fraction=f)))
    return chosen


def step_time(model: torch.nn.Module, x: torch.Tensor, steps: int, warmup: int) -> float:
    """Mean seconds per (loss, backward, optimizer step) after ``warmup`` untimed steps."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    times = [one_step(model, opt, x) for _ in range(warmup + steps)][warmup:]
    return sum(times) / len(times)


def one_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor) -> float:
    """Seconds of one (loss, backward, optimizer step)."""
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    model.loss(x).total.backward()
    opt.step()
    return time.perf_counter() - start


def interleaved_medians(models: list[torch.nn.Module], x: torch.Tensor, steps: int,
                        warmup: int) -> list[float]:
    """Median seconds per step of each model, their steps taken in turn (round robin).

    On a shared, loaded machine the load drifts; taking the models' steps in turn exposes them
    to the same load, and the median discards the steps a burst of load hit.
    """
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]
    for m in models:
        m.train()
    times: list[list[float]] = [[] for _ in models]
    for i in range(warmup + steps):
        for j, (m, opt) in enumerate(zip(models, opts, strict=True)):
            seconds = one_step(m, opt, x)
            if i >= warmup:
                times[j].append(seconds)
    return [statistics.median(t) for t in times]


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
                        help="time AE and forward mode at fraction 1 only (skip the full-batch "
                        "finite_difference and reverse)")
    parser.add_argument("--interleave", action="store_true",
                        help="take the methods' steps in turn and report medians (loaded "
                        "machines); default: each method's steps in a row, mean")
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
        if args.interleave:
            chosen = cases(args.fractions, args.only_forward)
            models = []
            for _, make in chosen:
                torch.manual_seed(0)
                models.append(make(ConvBackbone(preset="mnist", width=width)))
            medians = interleaved_medians(models, x, args.steps, args.warmup)
            for (name, _), seconds in zip(chosen, medians, strict=True):
                base = base or seconds
                print(f"| {width} | {name} | {1000 * seconds:.0f} | {seconds / base:.2f} |",
                      flush=True)
            continue
        for name, make in cases(args.fractions, args.only_forward):
            torch.manual_seed(0)
            seconds = step_time(make(ConvBackbone(preset="mnist", width=width)), x, args.steps,
                                args.warmup)
            base = base or seconds
            print(f"| {width} | {name} | {1000 * seconds:.0f} | {seconds / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
