"""The chapter's figures and the bridge's: activations, misclassified digits, confusion matrix, NumPy-torch.

    dlfs-ch3 figures                  # PNGs into ./figures
    dlfs-ch3 figures --out /tmp/figs

Headless (matplotlib's Agg backend); each PNG is written whole or not at all.
"""

import contextlib
import io
import os
from pathlib import Path

from nn_numpy.errors import NNError

from .cli import EXIT_OK, ArgumentParser, add_data_args, load_inputs

DPI = 100
# File name -> size in inches; constrained layout keeps the canvas, so each PNG is exactly size * DPI pixels.
FIGURES = {
    "activations.png": (10, 7.5),
    "misclassified.png": (10, 8.5),
    "confusion_matrix.png": (7.5, 6.5),
    "probability_differences.png": (8, 5),
}


def plot_activations(fig, np, torch, np_acts, torch_acts):
    """Step, sigmoid, ReLU, and step against sigmoid, on the book's x = arange(-5, 5, 0.1)."""
    x = np.arange(-5.0, 5.0, 0.1)
    curves = {
        name: (getattr(np_acts, name)(x), getattr(torch_acts, name)(torch.from_numpy(x)).numpy())
        for name in ("step_function", "sigmoid", "relu")
    }
    axes = fig.subplots(2, 2)
    for ax, (name, title, top) in zip(
        axes.flat,
        [
            ("step_function", "step function", 1.1),
            ("sigmoid", "sigmoid", 1.1),
            ("relu", "ReLU", 5.5),
        ],
    ):
        ours, theirs = curves[name]
        ax.plot(x, ours, color="C0", lw=5, alpha=0.35, label="NumPy")
        ax.plot(x, theirs, color="C0", lw=1.3, ls="--", label="torch")
        ax.set(
            title=f"{title}   (max |NumPy − torch| = {np.abs(ours - theirs).max():.1g})",
            xlabel="x",
            ylabel="h(x)",
            ylim=(-0.1 * top, top),
        )
        ax.legend(loc="upper left")
    for name, color, title in (("sigmoid", "C0", "sigmoid"), ("step_function", "C1", "step")):
        axes[1, 1].plot(x, curves[name][0], color=color, lw=5, alpha=0.35, label=f"{title}, NumPy")
        axes[1, 1].plot(x, curves[name][1], color=color, lw=1.3, ls="--", label=f"{title}, torch")
    axes[1, 1].set(title="step and sigmoid compared", xlabel="x", ylabel="h(x)", ylim=(-0.1, 1.1))
    axes[1, 1].legend(loc="upper left", fontsize="small")
    fig.suptitle(
        "The chapter's activation functions: NumPy (wide, light) and torch (dashed) coincide"
    )


def plot_misclassified(fig, np, images, labels, predicted, probs, rows=4, cols=6):
    """The first ``rows * cols`` misclassified images, in test-set order."""
    wrong = np.flatnonzero(predicted != labels)
    axes = fig.subplots(rows, cols)
    for ax, i in zip(axes.flat, wrong):
        ax.imshow(images[i].reshape(28, 28), cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(
            f"#{i}: true {labels[i]} → pred {predicted[i]}\np = {probs[i, predicted[i]]:.2f}",
            fontsize=9,
        )
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(
        f"Misclassified test digits (true → predicted): the first {min(len(wrong), axes.size)} of "
        f"{len(wrong):,}, with the probability given to the wrong answer"
    )


def plot_confusion(fig, np, matplotlib, labels, predicted):
    """The 10x10 counts of (true, predicted) pairs, on a log colour scale so the few errors stand out."""
    counts = np.bincount(labels * 10 + predicted, minlength=100).reshape(10, 10)
    ax = fig.subplots()
    norm = matplotlib.colors.LogNorm(vmin=1, vmax=counts.max())
    image = ax.imshow(
        np.ma.masked_equal(counts, 0),
        cmap=matplotlib.colormaps["Blues"].with_extremes(bad="white"),
        norm=norm,
    )
    for (row, col), n in np.ndenumerate(counts):
        if n:
            ax.text(
                col,
                row,
                str(n),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if norm(n) > 0.6 else "black",
            )
    ax.set(
        xticks=range(10),
        yticks=range(10),
        xlabel="predicted label",
        ylabel="true label",
        title=f"Confusion matrix, {len(labels):,} test images: accuracy {np.mean(labels == predicted):.4f}",
    )
    fig.colorbar(image, ax=ax, label="images (log scale; blank = none)")


def plot_differences(fig, np, diff, tolerance):
    """Histogram of |p_numpy - p_torch| over every output probability, against torch.testing's tolerance."""
    size = np.abs(diff.ravel())
    nonzero, bound = (
        size[size > 0],
        tolerance["atol"] + tolerance["rtol"],
    )  # p <= 1: the tolerance's largest
    ax = fig.subplots()
    if len(nonzero):
        edges = np.logspace(
            np.floor(np.log10(nonzero.min())),
            np.ceil(np.log10(max(nonzero.max(), bound))) + 0.5,
            60,
        )
        ax.hist(nonzero, bins=edges, color="C0", label="elements that differ")
    ax.axvline(
        bound,
        color="C3",
        lw=2,
        ls="--",
        label=f"torch.testing's float32 tolerance: atol {tolerance['atol']:g}"
        f" + rtol {tolerance['rtol']:g} × p",
    )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="|p_NumPy − p_torch| (output probability, float32)",
        ylabel="elements",
        title=f"NumPy − torch, all {diff.shape[0]:,} × {diff.shape[1]} output probabilities\n"
        f"{(size == 0).sum():,} identical (not drawn on a log axis), greatest {size.max():.1e}",
    )
    ax.set_ylim(top=ax.get_ylim()[1] * 30)  # headroom for the legend
    ax.legend(loc="upper right")


def write_all(out, pngs, atomic_write):
    """Each PNG into ``out``, made if absent; on any failure (a full disk, Ctrl-C), the files and
    folders this call made are removed again, so nothing new is left behind."""
    made = [p for p in [out, *map(str, Path(out).parents)] if not os.path.exists(p)][::-1]
    written = []
    try:
        for folder in made:
            os.mkdir(folder)
        for name, png in pngs.items():
            path = os.path.join(out, name)
            existed = os.path.lexists(path)
            with atomic_write(path) as file:
                file.write(png.getvalue())
            written += [] if existed else [path]
    except BaseException as err:
        for path in written:
            with contextlib.suppress(OSError):
                os.unlink(path)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        if isinstance(err, OSError):
            raise NNError(f"cannot create --out folder {out}: {err.strerror or err}") from None
        raise


def main(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--out", default="figures", help="output folder, created if absent (default ./figures)"
    )
    args = add_data_args(p).parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NNError("dlfs-ch3 figures needs matplotlib: pip install 'dlfs-ch3[plot]'") from None
    import numpy as np
    import torch

    import nn_numpy.activations as np_acts
    import nn_torch.activations as torch_acts
    from nn_numpy import normalize, predict
    from nn_numpy.data.files import atomic_write
    from nn_torch import MnistNet, predict_proba
    from nn_torch.parity import TOLERANCE

    out = os.path.abspath(args.out)
    weights, images, labels, _ = load_inputs(args)  # the inputs first: a failure makes nothing
    if os.path.exists(out) and not os.path.isdir(out):
        raise NNError(f"cannot create --out folder {out}: a file is there")
    for name in FIGURES:
        path = os.path.join(out, name)
        if os.path.lexists(path) and not os.path.isfile(path):
            raise NNError(f"cannot write {path}: something other than a file is there")
    labels, probs = labels.astype(np.int64), predict(weights, normalize(images))
    predicted, torch_probs = (
        probs.argmax(axis=1),
        predict_proba(MnistNet.from_numpy(weights), images, device="cpu"),
    )
    draw = {
        "activations.png": lambda fig: plot_activations(fig, np, torch, np_acts, torch_acts),
        "misclassified.png": lambda fig: plot_misclassified(
            fig, np, images, labels, predicted, probs
        ),
        "confusion_matrix.png": lambda fig: plot_confusion(fig, np, matplotlib, labels, predicted),
        "probability_differences.png": lambda fig: plot_differences(
            fig, np, probs - torch_probs, TOLERANCE["float32"]
        ),
    }
    pngs = {}
    for name, size in FIGURES.items():  # every figure drawn before anything is written
        fig = plt.figure(figsize=size, dpi=DPI, layout="constrained")
        try:
            draw[name](fig)
            pngs[name] = io.BytesIO()
            fig.savefig(pngs[name], format="png", dpi=DPI)
        finally:
            plt.close(fig)
    write_all(out, pngs, atomic_write)
    print(f"wrote {len(FIGURES)} figures to {out}")
    return EXIT_OK
