"""Training throughput (images/s) per method on the ConvBackbone, and our speed over pythae's.

Three markdown tables for docs/benchmarks.md:

1. Every method trained by a Lightning ``Trainer`` (the full loop: data, step, logging) on
   MNIST- or CIFAR-10-shaped uint8 data, float32 vs ``bf16-mixed``, with the minutes that the
   InjFlow paper's 100k-step MNIST budget would take at that speed.
2. AE through the DataLoader path vs the ``in_memory`` path, both precisions.
3. AE, VAE and RAE-GP built with pythae (installed by this script into its own virtual
   environment, never a project dependency) on the same ConvBackbone modules and batch, timed
   in one process with ours, step by step in turn: (forward + loss + backward + Adam step) each.

Images are random uint8 tensors of the dataset's shape (the compute does not depend on the
pixel values). A case's speed is ``steps * batch / seconds`` over ``steps`` timed steps after
``warmup`` untimed ones (bf16 kernels are built during the first two). ``img/CPU-s`` divides by
the CPU time of the process instead of wall time: on a machine shared with other jobs it does
not depend on their load (use ``--threads 1`` there, so that no thread waits for another).
``--flush-denormals`` flushes denormal floats to zero (``torch.set_flush_denormal``), for ours
and pythae's alike.

    python bench/throughput.py [--datasets mnist cifar] [--widths 0.25 1.0] [--steps 3]
        [--warmup 2] [--batch 128] [--precisions 32-true bf16-mixed] [--methods AE VAE ...]
        [--accelerator cpu|gpu] [--threads N] [--no-loaders] [--pythae] [--no-lightning]
        [--flush-denormals]
"""

import argparse
import copy
import json
import logging
import os
import platform
import subprocess
import sys
import sysconfig
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch

import genae_lightning.methods as methods
from genae_lightning.backbones import ConvBackbone
from genae_lightning.data import SyntheticImages
from genae_lightning.data.base import ImageTensors
from genae_lightning.methods import GenerativeAutoencoder
from genae_lightning.priors import DecoupledPrior

DATASETS = {"mnist": ((1, 28, 28), 32), "cifar": ((3, 32, 32), 128)}  # shape, latent (paper)
Factory = Callable[[tuple[int, int, int], int, ConvBackbone], GenerativeAutoencoder]
METHODS: dict[str, Factory] = {
    "AE": lambda s, d, b: methods.AE(image_shape=s, latent_dim=d, backbone=b),
    "VAE": lambda s, d, b: methods.VAE(image_shape=s, latent_dim=d, backbone=b),
    **{f"InjFlow {mode}": (lambda s, d, b, m=mode: methods.InjFlow(
        image_shape=s, latent_dim=d, jvp=m, backbone=b))
       for mode in ("forward", "finite_difference", "reverse")},
    "RAE-GP": lambda s, d, b: methods.RAE(image_shape=s, latent_dim=d, regularizer="gp",
                                          backbone=b),
    "LPGA": lambda s, d, b: methods.LPGA(image_shape=s, latent_dim=d, backbone=b),
    "SWAE": lambda s, d, b: methods.SWAE(image_shape=s, latent_dim=d, backbone=b),
}
METHODS["dpVAE"] = lambda s, d, b: methods.VAE(image_shape=s, latent_dim=d, backbone=b,
                                                prior=DecoupledPrior())
PYTHAE_VENV = Path.home() / ".cache" / "genae-lightning" / "pythae-venv"
PYTHAE_VERSION = "0.1.2"


# ----------------------------------------------------------------------------- Lightning cases
class Uint8Noise(SyntheticImages):
    """Random uint8 images of any shape (stored like MNIST/CIFAR-10), no validation split."""

    def load_tensors(self) -> ImageTensors:
        gen = torch.Generator().manual_seed(self.seed)
        n, shape = self.num_samples, self.image_shape
        images = torch.randint(0, 256, (2 * n, *shape), generator=gen, dtype=torch.uint8)
        labels = torch.zeros(2 * n, dtype=torch.long)
        return ImageTensors(images[:n], labels[:n], images[n:], labels[n:])


class StepTimer(L.Callback):
    """Wall and CPU seconds from the end of step ``warmup`` to the end of the last step."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = self.end = (0.0, 0.0)

    def _now(self, device: torch.device) -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter(), time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.warmup:
            self.start = self._now(pl_module.device)
        elif trainer.global_step == trainer.max_steps:
            self.end = self._now(pl_module.device)


def lightning_images_per_second(
    factory: Factory, dataset: str, width: float, precision: str, in_memory: bool,
    args: argparse.Namespace,
) -> tuple[float, float]:
    """Images per wall second and per CPU second (all threads) of a short ``Trainer.fit``."""
    shape, latent = DATASETS[dataset]
    torch.manual_seed(0)
    model = factory(shape, latent, ConvBackbone(preset=dataset, width=width))
    data = Uint8Noise(image_shape=shape, num_samples=args.batch * (args.warmup + args.steps + 1),
                      batch_size=args.batch, val_size=0, in_memory=in_memory)
    timer = StepTimer(args.warmup)
    trainer = L.Trainer(
        accelerator=args.accelerator, devices=1, precision=precision,
        max_steps=args.warmup + args.steps, limit_val_batches=0, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[timer],
    )
    trainer.fit(model, datamodule=data)
    images = args.steps * args.batch
    return images / (timer.end[0] - timer.start[0]), images / (timer.end[1] - timer.start[1])


def method_table(args: argparse.Namespace) -> None:
    """Table 1: every method, float32 vs bf16-mixed, DataLoader path."""
    low = [p for p in args.precisions if p != "32-true"]
    cols = "".join(f"{p} img/s | {p} img/CPU-s | {p} / fp32 (CPU) | " for p in low)
    print(f"\n| data | width | method | fp32 img/s | fp32 img/CPU-s | {cols}"
          "100k steps fp32 (min) |")
    print("|---|---|---|---|---|" + "---|---|---|" * len(low) + "---|")
    for dataset in args.datasets:
        for width in args.widths:
            for name in args.methods:
                speed = {p: lightning_images_per_second(METHODS[name], dataset, width, p, False,
                                                        args) for p in args.precisions}
                wall, cpu = speed["32-true"]
                cells = "".join(f"{speed[p][0]:.1f} | {speed[p][1]:.1f} | "
                                f"{speed[p][1] / cpu:.2f} | " for p in low)
                minutes = 100_000 * args.batch / wall / 60
                print(f"| {dataset} | {width} | {name} | {wall:.1f} | {cpu:.1f} | {cells}"
                      f"{minutes:.0f} |", flush=True)


def loader_table(args: argparse.Namespace) -> None:
    """Table 2: AE through the DataLoader and the in_memory data paths."""
    print("\n| data | width | precision | DataLoader img/s | in_memory img/s | DataLoader "
          "img/CPU-s | in_memory img/CPU-s | in_memory / DataLoader (CPU) |\n"
          "|---|---|---|---|---|---|---|---|")
    for dataset in args.datasets:
        for width in args.widths:
            for precision in args.precisions:
                loader, memory = (lightning_images_per_second(METHODS["AE"], dataset, width,
                                                              precision, flag, args)
                                  for flag in (False, True))
                print(f"| {dataset} | {width} | {precision} | {loader[0]:.1f} | {memory[0]:.1f} "
                      f"| {loader[1]:.1f} | {memory[1]:.1f} | {memory[1] / loader[1]:.2f} |",
                      flush=True)


# ----------------------------------------------------------------------------- pythae
def pythae_python(venv: Path) -> Path:
    """A Python with pythae installed in ``venv``, seeing this environment's packages (torch...).

    The venv is made without pip; a ``.pth`` file adds this environment's site-packages (as a
    site directory, so editable installs resolve), and pythae goes into the venv's own
    site-packages with ``--no-deps``, then its requirements that are missing here, under
    constraints that keep torch, numpy and pillow at the versions installed here.
    """
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                               "['purelib'])"], check=True, capture_output=True, text=True)
        parent = sysconfig.get_paths()["purelib"]
        (Path(site.stdout.strip()) / "_genae_parent.pth").write_text(
            f"import site; site.addsitedir({parent!r})\n")
    probe = [str(python), "-c", "import pythae.models"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", f"pythae=={PYTHAE_VERSION}"], check=True)
    missing = subprocess.run([str(python), "-c", (
        "import importlib.metadata as m, re\n"
        "from packaging.requirements import Requirement\n"
        "for r in map(Requirement, m.requires('pythae')):\n"
        "    if r.marker is None or r.marker.evaluate():\n"
        "        try: m.version(r.name)\n"
        "        except m.PackageNotFoundError: print(r.name)")],
        check=True, capture_output=True, text=True).stdout.split()
    missing = [name for name in missing if name != "dataclasses"]  # in the standard library
    if missing:
        freeze = subprocess.run([sys.executable, "-m", "pip", "freeze"], check=True,
                                capture_output=True, text=True).stdout.splitlines()
        pins = [line for line in freeze if line.split("==")[0].lower() in
                {"torch", "numpy", "pillow", "scipy", "scikit-learn", "pydantic"}]
        constraints = venv / "constraints.txt"
        constraints.write_text("\n".join(pins) + "\n")
        subprocess.run(pip + ["-c", str(constraints), *missing], check=True)
    subprocess.run(probe, check=True)
    return python


def pythae_models(dataset: str, width: float) -> list[tuple[str, torch.nn.Module, torch.nn.Module]]:
    """(name, ours, pythae's) for AE, VAE, RAE-GP; pythae's wraps copies of our networks."""
    from pythae.models import AE, RAE_GP, VAE, AEConfig, RAE_GP_Config, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self, net: torch.nn.Module, variational: bool) -> None:
            super().__init__()
            self.net, self.variational = net, variational

        def forward(self, x: torch.Tensor) -> ModelOutput:
            out = self.net(x)
            if self.variational:
                mean, logvar = out.chunk(2, dim=1)
                return ModelOutput(embedding=mean, log_covariance=logvar)
            return ModelOutput(embedding=out)

    class Decoder(BaseDecoder):
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=self.net(z))

    shape, latent = DATASETS[dataset]
    pairs = [("AE", METHODS["AE"], AE, AEConfig(input_dim=shape, latent_dim=latent)),
             ("VAE", METHODS["VAE"], VAE,
              VAEConfig(input_dim=shape, latent_dim=latent, reconstruction_loss="mse")),
             ("RAE-GP", METHODS["RAE-GP"], RAE_GP, RAE_GP_Config(input_dim=shape,
                                                                  latent_dim=latent))]
    out = []
    for name, ours_factory, cls, config in pairs:
        torch.manual_seed(0)
        ours = ours_factory(shape, latent, ConvBackbone(preset=dataset, width=width))
        encoder = Encoder(copy.deepcopy(ours.encoder), variational=name == "VAE")
        theirs = cls(model_config=config, encoder=encoder, decoder=Decoder(
            copy.deepcopy(ours.decoder)))
        out.append((name, ours, theirs))
    return out


def pythae_child(args: argparse.Namespace) -> None:
    """Run inside the pythae venv: time ours and pythae's steps in turn; print JSON rows."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.accelerator == "gpu" else "cpu")
    for dataset in args.datasets:
        for width in args.widths:
            for name, ours, theirs in pythae_models(dataset, width):
                ours.to(device).train()
                theirs.to(device).train()
                shape = DATASETS[dataset][0]
                x = torch.rand(args.batch, *shape, generator=torch.Generator().manual_seed(0))
                steps = {"ours": (ours, lambda m, x: m.loss(x).total),
                         "pythae": (theirs, lambda m, x: m({"data": x}).loss)}
                opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, (m, _) in
                        steps.items()}
                wall: dict[str, list[float]] = {k: [] for k in steps}
                cpu: dict[str, list[float]] = {k: [] for k in steps}
                for i in range(args.warmup + args.steps):
                    for key, (model, loss_of) in steps.items():  # in turn: same machine load
                        batch = x.to(device).clone()
                        start, start_cpu = time.perf_counter(), time.process_time()
                        opts[key].zero_grad(set_to_none=True)
                        loss_of(model, batch).backward()
                        opts[key].step()
                        if device.type == "cuda":
                            torch.cuda.synchronize(device)
                        if i >= args.warmup:
                            wall[key].append(time.perf_counter() - start)
                            cpu[key].append(time.process_time() - start_cpu)
                rate = {k: len(v) / sum(v) for k, v in wall.items()}
                rate_cpu = {f"{k}_cpu": len(v) / sum(v) for k, v in cpu.items()}
                print(json.dumps({"data": dataset, "width": width, "model": name, **rate,
                                  **rate_cpu}), flush=True)


def pythae_table(args: argparse.Namespace) -> None:
    """Table 3: our steps/s over pythae's, same networks, batch and process."""
    python = pythae_python(Path(args.pythae_venv))
    child = [str(python), __file__, "--pythae-child", "--datasets", *args.datasets,
             "--widths", *map(str, args.widths), "--steps", str(args.steps), "--warmup",
             str(args.warmup), "--batch", str(args.batch), "--accelerator", args.accelerator]
    if args.threads:
        child += ["--threads", str(args.threads)]
    if args.flush_denormals:
        child.append("--flush-denormals")
    print(f"\npythae {PYTHAE_VERSION} in {args.pythae_venv}")
    print("\n| data | width | model | ours steps/s | pythae steps/s | ours / pythae | "
          "ours / pythae (CPU time) |\n|---|---|---|---|---|---|---|")
    with subprocess.Popen(child, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            print(f"| {row['data']} | {row['width']} | {row['model']} | {row['ours']:.3f} | "
                  f"{row['pythae']:.3f} | {row['ours'] / row['pythae']:.2f} | "
                  f"{row['ours_cpu'] / row['pythae_cpu']:.2f} |", flush=True)
    if proc.returncode:
        raise SystemExit(f"the pythae comparison failed (exit {proc.returncode})")


# ----------------------------------------------------------------------------- main
def machine(args: argparse.Namespace) -> str:
    """One line naming the machine, threads, versions and the load average now."""
    if args.accelerator == "gpu":
        device = torch.cuda.get_device_name()
    else:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                 .splitlines() if line.startswith("model name")] if Path("/proc/cpuinfo").exists() \
            else [platform.processor()]
        device = f"{names[0] if names else platform.machine()}, {os.cpu_count()} cores"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    denormals = "flushed" if args.flush_denormals else "kept"
    return (f"{device}; torch {torch.__version__} ({torch.get_num_threads()} threads); batch "
            f"{args.batch}; {args.steps} timed steps after {args.warmup}; denormals {denormals}; "
            f"load average {load}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "cifar"], choices=DATASETS)
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 1.0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--flush-denormals", action="store_true",
                        help="flush denormal floats to zero on CPU")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-lightning", action="store_true", help="skip tables 1 and 2")
    parser.add_argument("--no-loaders", action="store_true", help="skip table 2")
    parser.add_argument("--pythae", action="store_true", help="add table 3 (installs pythae)")
    parser.add_argument("--pythae-venv", default=str(PYTHAE_VENV))
    parser.add_argument("--pythae-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if "32-true" not in args.precisions:
        args.precisions.insert(0, "32-true")
    return args


def main() -> None:
    args = parse()
    if args.flush_denormals:
        torch.set_flush_denormal(True)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    if args.pythae_child:
        pythae_child(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    L.seed_everything(0, verbose=False)
    print(f"machine: {machine(args)}", flush=True)
    if not args.no_lightning:
        method_table(args)
        if not args.no_loaders:
            loader_table(args)
    if args.pythae:
        pythae_table(args)
    print(f"\nend: {machine(args)}")


if __name__ == "__main__":
    main()
