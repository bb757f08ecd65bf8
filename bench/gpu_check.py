"""The first-GPU check: timings of AE and InjFlow per precision, in_memory and compile, DDP smoke.

Driven by ``bench/gpu_check.sh`` (which also runs ``pytest -m gpu``). Each case trains
``--steps`` optimizer steps of batch ``--batch-size`` on synthetic MNIST-shaped data (no
download) with the paper's ConvBackbone at ``--width``, times the steps after ``--warmup``
warm-up steps (compilation and cuDNN autotuning happen there) and extrapolates to 100k steps.
The paper's budget is 100k MNIST steps in at most 10 minutes (about 170 steps/s at batch 128).

Cases: every method x precision x in_memory without compile, and every method x precision with
in_memory and ``CompileModules`` (compiling is the slow part of the check; it is timed on the
fastest data path only). ``--dry-run`` runs the same code on the CPU with tiny sizes; cases a
CPU cannot run (16-mixed AMP, compile, the 2-GPU DDP smoke test) are printed as skipped with the
reason.

    python bench/gpu_check.py                 # on a GPU machine (bench/gpu_check.sh does this)
    python bench/gpu_check.py --dry-run       # CPU, a few steps
"""

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch

from genae_lightning.backbones import ConvBackbone
from genae_lightning.callbacks import CompileModules
from genae_lightning.data import SyntheticImages
from genae_lightning.methods import AE, InjFlow

METHODS = ("AE", "InjFlow")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
TARGET_STEPS, TARGET_SECONDS = 100_000, 600.0


@dataclass
class Row:
    """One line of the summary table."""

    check: str
    status: str
    steps_per_s: float | None = None
    detail: str = ""

    def line(self) -> str:
        rate = "" if self.steps_per_s is None else f"{self.steps_per_s:.1f}"
        minutes = ("" if not self.steps_per_s
                   else f"{TARGET_STEPS / self.steps_per_s / 60:.1f}")
        return f"| {self.check} | {self.status} | {rate} | {minutes} | {self.detail} |"


class StepTimer(L.Callback):
    """Wall time of the training steps after ``warmup`` steps (synchronised on CUDA)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.timed = warmup, 0.0, 0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_: object
                           ) -> None:
        if trainer.global_step == self.warmup:
            self._sync(pl_module)
            self.start = time.perf_counter()
        elif trainer.global_step > self.warmup:
            self.timed = trainer.global_step - self.warmup

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sync(pl_module)
        self.seconds = time.perf_counter() - self.start


def build(method: str, width: float) -> L.LightningModule:
    backbone = ConvBackbone(preset="mnist", width=width)
    if method == "AE":
        return AE(image_shape=(1, 28, 28), latent_dim=32, backbone=backbone)
    return InjFlow(image_shape=(1, 28, 28), latent_dim=32, backbone=backbone)


def time_case(args: argparse.Namespace, method: str, precision: str, in_memory: bool,
              compile_: bool) -> Row:
    """Train one case; its steps/s after warm-up, or why it was skipped or failed."""
    name = (f"{method} {precision}{' in_memory' if in_memory else ''}"
            f"{' compile' if compile_ else ''}")
    if args.accelerator == "cpu" and precision == "16-mixed":
        return Row(name, "skipped", detail="fp16 AMP needs a CUDA device")
    if args.accelerator == "cpu" and compile_:
        return Row(name, "skipped", detail="compile is timed on the GPU only")
    L.seed_everything(0, verbose=False)
    timer = StepTimer(args.warmup)
    callbacks: list[L.Callback] = [timer]
    if compile_:
        callbacks.append(CompileModules())
    data = SyntheticImages(image_shape=(1, 28, 28), num_samples=args.samples,
                           batch_size=args.batch_size, in_memory=in_memory, val_size=0.1)
    trainer = L.Trainer(accelerator=args.accelerator, devices=1, precision=precision,
                        max_steps=args.warmup + args.steps, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=callbacks)
    try:
        trainer.fit(build(method, args.width), datamodule=data)
    except Exception as err:  # reported in the table: the check's purpose is to find these
        return Row(name, "FAILED", detail=f"{type(err).__name__}: {str(err)[:120]}")
    rate = timer.timed / timer.seconds
    verdict = "ok" if TARGET_STEPS / rate <= TARGET_SECONDS else "ok (slower than target)"
    return Row(name, verdict, rate, f"{timer.timed} steps in {timer.seconds:.2f} s")


def ddp_smoke(args: argparse.Namespace) -> Row:
    """2-GPU DDP: a few AE steps in a subprocess (Lightning relaunches it for rank 1)."""
    gpus = torch.cuda.device_count() if args.accelerator == "gpu" else 0
    if gpus < 2:
        return Row("DDP 2 GPUs (nccl)", "skipped", detail=f"needs 2 GPUs, found {gpus}")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, __file__, "--ddp-smoke", "--samples", "2048"],
                            capture_output=True, text=True, timeout=300,
                            cwd=Path(__file__).parents[1])
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        return Row("DDP 2 GPUs (nccl)", "FAILED", detail=result.stderr.strip()[-160:])
    return Row("DDP 2 GPUs (nccl)", "ok", detail=f"{seconds:.0f} s, {result.stdout.strip()}")


def run_ddp_smoke(args: argparse.Namespace) -> None:
    """The DDP smoke run itself: 50 AE steps on 2 GPUs, bf16-mixed, in_memory data."""
    L.seed_everything(0, verbose=False)
    data = SyntheticImages(image_shape=(1, 28, 28), num_samples=args.samples, batch_size=128,
                           in_memory=True)
    trainer = L.Trainer(accelerator="gpu", devices=2, strategy="ddp", precision="bf16-mixed",
                        max_steps=50, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=2, num_sanity_val_steps=0)
    trainer.fit(build("AE", 0.25), datamodule=data)
    if trainer.is_global_zero:
        print(f"world size {trainer.world_size}, step {trainer.global_step}, "
              f"loss {float(trainer.callback_metrics['train/loss']):.3f}")


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, a few steps")
    parser.add_argument("--steps", type=int, default=1000, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--samples", type=int, default=12_800, help="synthetic images")
    parser.add_argument("--gpu-tests", default="", help="result line of `pytest -m gpu`")
    parser.add_argument("--ddp-smoke", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_smoke:
        run_ddp_smoke(args)
        return []
    args.accelerator = "gpu"
    if args.dry_run:
        args.accelerator = "cpu"
        args.steps, args.warmup, args.batch_size = 3, 1, 8
        args.width, args.samples = 0.125, 64
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        parser.error("no CUDA device: run on a GPU machine, or pass --dry-run to check the "
                     "script on the CPU")
    device = ("CPU dry run" if args.dry_run
              else f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}")
    if args.dry_run or not args.gpu_tests:
        tests = "skipped" if args.dry_run else "not run"
    else:
        failed = " failed" in args.gpu_tests or " error" in args.gpu_tests
        tests = "FAILED" if failed else "ok"
    rows = [Row("pytest -m gpu", tests, detail=args.gpu_tests or "run by bench/gpu_check.sh")]
    for method in METHODS:
        for precision in PRECISIONS:
            for in_memory, compile_ in ((False, False), (True, False), (True, True)):
                rows.append(time_case(args, method, precision, in_memory, compile_))
                print(rows[-1].line(), flush=True)
    rows.append(ddp_smoke(args))
    print(f"\n## GPU check: {device}; width {args.width}, batch {args.batch_size}, "
          f"{args.steps} timed steps per case after {args.warmup} warm-up; torch "
          f"{torch.__version__}, lightning {L.__version__}\n\n"
          f"| check | status | steps/s | minutes per {TARGET_STEPS // 1000}k steps | detail |\n"
          "|---|---|---|---|---|")
    for row in rows:
        print(row.line())
    print(f"\ntarget: {TARGET_STEPS // 1000}k steps in <= {TARGET_SECONDS / 60:.0f} min "
          f"({TARGET_STEPS / TARGET_SECONDS:.0f} steps/s)", flush=True)
    return rows


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(1 if any(row.status == "FAILED" for row in main()) else 0)
