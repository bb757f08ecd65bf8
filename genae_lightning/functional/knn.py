"""k-nearest-neighbour classification accuracy of latent codes (SWAE paper, table 3: 5-NN)."""

from torch import Tensor


def knn_accuracy(
    train_codes: Tensor, train_labels: Tensor, test_codes: Tensor, test_labels: Tensor, k: int = 5
) -> float:
    """Accuracy of a k-NN classifier fitted on train codes, scored on test codes (scikit-learn).

    Args:
        train_codes: (N, d) latents of the training images.
        train_labels: (N,) their labels.
        test_codes: (M, d) latents of the test images.
        test_labels: (M,) their labels.
        k: Number of neighbours (Euclidean distance, majority vote).

    Returns:
        The fraction of test codes whose predicted label is right, in [0, 1].

    Examples:
        >>> import torch
        >>> z = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
        >>> knn_accuracy(z, torch.tensor([0, 0, 1, 1]), z + 0.01, torch.tensor([0, 0, 1, 1]), k=1)
        1.0
    """
    from sklearn.neighbors import KNeighborsClassifier  # noqa: PLC0415  (1.3 s: only when used)

    for name, codes, labels in (("train", train_codes, train_labels),
                                ("test", test_codes, test_labels)):
        if codes.dim() != 2 or labels.shape != codes.shape[:1]:
            raise ValueError(
                f"knn_accuracy: expected {name} codes of shape (N, d) and labels of shape (N,), "
                f"got {tuple(codes.shape)} and {tuple(labels.shape)}"
            )
    if train_codes.shape[1] != test_codes.shape[1]:
        raise ValueError(f"knn_accuracy: train codes have {train_codes.shape[1]} dimensions, test "
                         f"codes {test_codes.shape[1]}; encode both with the same model")
    if not 1 <= k <= len(train_codes):
        raise ValueError(f"knn_accuracy: k={k} needs 1 <= k <= number of train codes "
                         f"({len(train_codes)}); encode more training images or lower k")
    classifier = KNeighborsClassifier(n_neighbors=k)
    classifier.fit(train_codes.double().cpu().numpy(), train_labels.cpu().numpy())
    return float(classifier.score(test_codes.double().cpu().numpy(), test_labels.cpu().numpy()))
