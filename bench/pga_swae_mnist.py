"""Short MNIST runs of LPGA, VPGA, SWAE (beta 0.5): classifier FID, 5-NN, reconstruction, denoising.

Each method trains for the same fixed number of optimizer steps on the same thin DCGAN-style net
(the PGA paper's small MNIST net with fewer filters, no BatchNorm), with Adam (lr 1e-3) for all
three, then is scored on the first ``--num-samples`` MNIST test images:

- ``cfid/recon``, ``cfid/prior``: classifier FID (features of a small MNIST classifier trained here
  first; Inception weights are not available offline) of reconstructions and of samples of the
  method's own prior (N(0, I) for PGA, the pseudo-input mixture for SWAE);
- ``knn/acc``: 5-NN accuracy of test codes against ``--knn-train`` training codes;
- ``rec_sse``: ||x - D(E(x))||^2 summed over pixels, mean over images (SWAE paper, table 3);
- ``denoise_sse``: the same against clean images when encoding x + N(0, 0.3^2) noise (section 3.4).

    python bench/pga_swae_mnist.py --data-root data [--steps 300] [--threads 2]
"""

import argparse
import platform
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Subset

from genae_lightning.backbones import DCGANBackbone
from genae_lightning.data import MNIST
from genae_lightning.features import SmallClassifier
from genae_lightning.functional import denoising_error
from genae_lightning.methods import LPGA, SWAE, VPGA, GenerativeAutoencoder
from genae_lightning.metrics import FID, MetricsConfig, evaluate_generative


def train_classifier(data: MNIST, path: Path, steps: int, seed: int = 0) -> float:
    """Train the FID feature classifier (Adam, batch 128) and return its test accuracy."""
    torch.manual_seed(seed)
    clf = SmallClassifier(data.image_shape, data.num_classes)
    opt = torch.optim.Adam(clf.parameters(), lr=1e-3)
    loader = DataLoader(data.train_dataset, batch_size=128, shuffle=True, drop_last=True)
    step = 0
    while step < steps:
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(clf(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == steps:
                break
    clf.eval()
    with torch.no_grad():
        test = DataLoader(data.test_dataset, batch_size=1000)
        correct = sum(int((clf(x).argmax(1) == y).sum()) for x, y in test)
    accuracy = correct / len(data.test_dataset)
    clf.save(path, test_accuracy=accuracy, steps=steps)
    return accuracy


def build(name: str, steps: int) -> GenerativeAutoencoder:
    backbone = DCGANBackbone(channels=8, hidden=128, batch_norm=False)
    adam = torch.optim.Adam  # lr 1e-3
    if name == "LPGA":  # authors' MNIST weights on this scale; warm-up 10% of the budget
        return LPGA(latent_dim=12, alpha=0.98, beta=0.0, gamma=0.1225,
                    warmup_steps=steps // 10, backbone=backbone, optimizer=adam)
    if name == "VPGA":
        return VPGA(latent_dim=32, alpha=0.3675, beta=0.0, gamma=0.091875, sigma=1.22,
                    backbone=backbone, optimizer=adam)
    return SWAE(latent_dim=8, beta=0.5, alpha=1.0, num_pseudo_inputs=4000, nearest="l2",
                backbone=backbone, optimizer=adam)


@torch.no_grad()
def mean_denoising_error(model: GenerativeAutoencoder, test: Subset, seed: int = 0) -> float:
    generator = torch.Generator().manual_seed(seed)
    errors = [denoising_error(model.reconstruct, x, 0.3, generator)
              for x, _ in DataLoader(test, batch_size=500)]
    return float(torch.cat(errors).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per method")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-samples", type=int, default=5000, help="test images and samples")
    parser.add_argument("--knn-train", type=int, default=10000, help="training codes for 5-NN")
    parser.add_argument("--classifier-steps", type=int, default=400)
    parser.add_argument("--methods", nargs="+", default=["LPGA", "VPGA", "SWAE"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="outputs/bench_pga_swae")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    data = MNIST(root=args.data_root, batch_size=args.batch_size, download=False, seed=0)
    data.setup()
    clf_path = out / "mnist_classifier.pt"
    start = time.perf_counter()
    clf_acc = train_classifier(data, clf_path, args.classifier_steps)
    print(f"feature classifier: test accuracy {clf_acc:.4f} "
          f"({args.classifier_steps} steps, {time.perf_counter() - start:.0f} s)")
    fid = FID(feature=str(clf_path), disk_cache=False, progress=False)
    config = MetricsConfig(num_samples=args.num_samples, knn_train_samples=args.knn_train,
                           samplers=("prior",), progress=False)
    test = Subset(data.test_dataset, range(min(args.num_samples, len(data.test_dataset))))

    rows = []
    for name in args.methods:
        L.seed_everything(0, verbose=False)
        model = build(name, args.steps)
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, num_sanity_val_steps=0,
                            limit_val_batches=0, default_root_dir=str(out))
        start = time.perf_counter()
        trainer.fit(model, datamodule=data)
        train_s = time.perf_counter() - start
        metrics = evaluate_generative(model, data.train_dataset, data.test_dataset, fid, config,
                                      dataset_name="mnist").metrics
        model.eval()
        denoise = mean_denoising_error(model, test)
        label = "SWAE (beta 0.5)" if name == "SWAE" else name
        rows.append((label, model.latent_dim, train_s, metrics, denoise))
        print(f"{name}: {train_s:.0f} s, {metrics}, denoise_sse {denoise:.2f}", flush=True)

    print(f"\nMachine: {platform.processor() or platform.machine()}, {args.threads} CPU threads, "
          f"no GPU; torch {torch.__version__}. {args.steps} steps of batch {args.batch_size}; "
          f"{len(test)} test images and {len(test)} samples per FID.\n")
    print("| method | dim-z | train time (s) | rec_sse | denoise_sse (noise 0.3) | 5-NN acc "
          "| classifier FID recon | classifier FID prior |")
    print("|---|---|---|---|---|---|---|---|")
    for name, dim, train_s, m, denoise in rows:
        print(f"| {name} | {dim} | {train_s:.0f} | {m['val/rec_sse']:.2f} | {denoise:.2f} | "
              f"{m['knn/acc']:.3f} | {m['cfid/recon']:.2f} | {m['cfid/prior']:.2f} |")


if __name__ == "__main__":
    main()
