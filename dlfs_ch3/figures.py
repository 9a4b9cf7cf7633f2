"""The chapter's figures and the bridge's: activations, misclassified digits, confusion matrix, NumPy-torch differences.

    dlfs-ch3 figures                  # PNGs into ./figures
    dlfs-ch3 figures --out /tmp/figs

Headless (matplotlib's Agg backend): needs the plot and torch extras. Each PNG is written
to a temporary name, deleted if the write fails or is interrupted, and renamed once whole:
an interrupted run leaves no half-written or temporary file.
"""

import os

from nn_numpy.errors import NNError

from .cli import EXIT_OK, ArgumentParser, add_data_args, load_inputs

DPI = 100
# File name -> size in inches. Constrained layout keeps the canvas as given (no tight bbox),
# so each PNG is exactly (width * DPI, height * DPI) pixels.
FIGURES = {
    "activations.png": (10, 7.5),
    "misclassified.png": (10, 8.5),
    "confusion_matrix.png": (7.5, 6.5),
    "probability_differences.png": (8, 5),
}
GRID_ROWS, GRID_COLS = 4, 6


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="figures", help="output folder, created if absent (default ./figures)")
    return add_data_args(p).parse_args(argv)


def plot_activations(fig, np_acts, torch_acts, torch):
    """Step, sigmoid, ReLU, and step against sigmoid, on the book's x = arange(-5, 5, 0.1)."""
    import numpy as np

    x = np.arange(-5.0, 5.0, 0.1)
    curves = {}
    for name in ("step_function", "sigmoid", "relu"):
        ours = getattr(np_acts, name)(x)
        theirs = getattr(torch_acts, name)(torch.from_numpy(x)).numpy()
        curves[name] = ours, theirs, float(np.abs(ours - theirs).max())

    axes = fig.subplots(2, 2)
    panels = [("step_function", "step function", (-0.1, 1.1)), ("sigmoid", "sigmoid", (-0.1, 1.1)),
              ("relu", "ReLU", (-1.0, 5.5))]
    for ax, (name, title, ylim) in zip(axes.flat, panels):
        ours, theirs, diff = curves[name]
        ax.plot(x, ours, color="C0", lw=5, alpha=0.35, label="NumPy")
        ax.plot(x, theirs, color="C0", lw=1.3, ls="--", label="torch")
        ax.set(title=f"{title}   (max |NumPy − torch| = {diff:.1g})", xlabel="x", ylabel="h(x)", ylim=ylim)
        ax.legend(loc="upper left")
    ax = axes[1, 1]
    for name, color, title in (("sigmoid", "C0", "sigmoid"), ("step_function", "C1", "step")):
        ours, theirs, _ = curves[name]
        ax.plot(x, ours, color=color, lw=5, alpha=0.35, label=f"{title}, NumPy")
        ax.plot(x, theirs, color=color, lw=1.3, ls="--", label=f"{title}, torch")
    ax.set(title="step and sigmoid compared", xlabel="x", ylabel="h(x)", ylim=(-0.1, 1.1))
    ax.legend(loc="upper left", fontsize="small")
    fig.suptitle("The chapter's activation functions: NumPy (wide, light) and torch (dashed) coincide")


def plot_misclassified(fig, images, labels, predicted, probs):
    """The first GRID_ROWS * GRID_COLS misclassified images, in test-set order."""
    import numpy as np

    wrong = np.flatnonzero(predicted != labels)
    axes = fig.subplots(GRID_ROWS, GRID_COLS)
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i].reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(f"#{i}: true {labels[i]}, pred {predicted[i]}\np = {probs[i, predicted[i]]:.2f}", fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(f"Misclassified test digits: the first {min(len(wrong), axes.size)} of {len(wrong):,} "
                 f"(p = the network's probability for its wrong answer)")


def plot_confusion(fig, labels, predicted, matplotlib):
    """Counts of (true, predicted) pairs, on a log colour scale so the few errors stand out."""
    import numpy as np

    counts = np.bincount(labels * 10 + predicted, minlength=100).reshape(10, 10)
    ax = fig.subplots()
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="white")
    norm = matplotlib.colors.LogNorm(vmin=1, vmax=counts.max())
    image = ax.imshow(np.ma.masked_equal(counts, 0), cmap=cmap, norm=norm)
    for (row, col), n in np.ndenumerate(counts):
        if n:
            ax.text(col, row, str(n), ha="center", va="center", fontsize=8,
                    color="white" if norm(n) > 0.6 else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted label", ylabel="true label",
           title=f"Confusion matrix, {len(labels):,} test images: accuracy {np.mean(labels == predicted):.4f}")
    fig.colorbar(image, ax=ax, label="images (log scale; blank = none)")


def plot_differences(fig, diff, tolerance):
    """Histogram of |p_numpy - p_torch| over every output probability, log-spaced bins.

    ``tolerance`` is the parity suite's ``{rtol, atol}``; as p <= 1, atol + rtol is the bound for every element.
    """
    import numpy as np

    size = np.abs(diff.ravel())
    nonzero = size[size > 0]
    bound = tolerance["atol"] + tolerance["rtol"]
    ax = fig.subplots()
    if len(nonzero):
        low = np.floor(np.log10(nonzero.min()))
        high = np.ceil(np.log10(max(nonzero.max(), bound))) + 0.5
        ax.hist(nonzero, bins=np.logspace(low, high, 60), color="C0", label="elements that differ")
    ax.axvline(bound, color="C3", lw=2, ls="--",
               label=f"parity tolerance: atol {tolerance['atol']:g} + rtol {tolerance['rtol']:g} × p")
    ax.set(xscale="log", yscale="log", xlabel="|p_NumPy − p_torch| (output probability, float32)",
           ylabel="elements",
           title=f"NumPy − torch, all {diff.shape[0]:,} × {diff.shape[1]} output probabilities\n"
                 f"{(size == 0).sum():,} identical (not drawn on a log axis), greatest {size.max():.1e}")
    ax.set_ylim(top=ax.get_ylim()[1] * 30)  # headroom for the legend above the bars
    ax.legend(loc="upper right")


def main(argv=None):
    args = parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NNError("dlfs-ch3 figures needs matplotlib: pip install 'dlfs-ch3[plot]'") from None
    import numpy as np
    import torch

    out = os.path.abspath(args.out)
    try:
        os.makedirs(out, exist_ok=True)  # before the slow part: a bad --out fails at once
    except OSError as err:
        raise NNError(f"cannot create --out folder {out}: {err.strerror or err}") from err

    import nn_numpy.activations as np_acts
    import nn_torch.activations as torch_acts
    from nn_numpy import normalize, predict
    from nn_numpy.data.files import atomic_write
    from nn_torch.evaluate import predict_proba
    from nn_torch.network import MnistNet
    from nn_torch.parity import TOLERANCE

    weights, images, labels, _ = load_inputs(args)
    labels = labels.astype(np.int64)
    probs = predict(weights, normalize(images))
    predicted = probs.argmax(axis=1)
    torch_probs = predict_proba(MnistNet.from_numpy(weights), images, device="cpu")

    draw = {
        "activations.png": lambda fig: plot_activations(fig, np_acts, torch_acts, torch),
        "misclassified.png": lambda fig: plot_misclassified(fig, images, labels, predicted, probs),
        "confusion_matrix.png": lambda fig: plot_confusion(fig, labels, predicted, matplotlib),
        "probability_differences.png": lambda fig: plot_differences(fig, probs - torch_probs, TOLERANCE["float32"]),
    }
    for name, size in FIGURES.items():
        fig = plt.figure(figsize=size, dpi=DPI, layout="constrained")
        draw[name](fig)
        try:
            with atomic_write(os.path.join(out, name)) as file:  # Ctrl-C or a full disk: no half or stray file
                fig.savefig(file, format="png", dpi=DPI)
        finally:
            plt.close(fig)
    print(f"wrote {len(FIGURES)} figures to {out}")
    return EXIT_OK
