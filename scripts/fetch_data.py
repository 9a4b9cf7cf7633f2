#!/usr/bin/env python
"""Fill a data folder for offline use: MNIST's test set and the book's weights, SHA-256 checked.

    python scripts/fetch_data.py                         # into $NN_DATA_DIR, else the per-user cache
    python scripts/fetch_data.py --data-dir data --train # also MNIST's training set (load_mnist)

Files already there and intact are kept without network access. Copy the folder to the
offline machine and point --data-dir or NN_DATA_DIR at it.
Exit codes: 0 every file is there and verified, 2 one could not be fetched (one line).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # the packages from a clone, installed or not; `cli` beside us

from cli import EXIT_OK, ArgumentParser, run_main  # noqa: E402


def main(argv=None):
    from nn_numpy.data.download import WEIGHTS_NAME, fetch_mnist_file, fetch_weights, resolve_data_dir
    from nn_numpy.data.errors import DataNotFoundError
    from nn_numpy.data.mnist import SPLITS

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="folder to fill (default: $NN_DATA_DIR, else a per-user cache)")
    p.add_argument("--train", action="store_true", help="also MNIST's training set (55 MB; no script needs it)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    args = p.parse_args(argv)

    fetches = {f"mnist/{n}": lambda n=n: fetch_mnist_file(n, args.data_dir)
               for n in SPLITS["test"] + (SPLITS["train"] if args.train else ())}
    fetches[WEIGHTS_NAME] = lambda: fetch_weights(args.data_dir)
    failed = []
    for name, fetch in fetches.items():
        try:
            path = fetch()
        except DataNotFoundError as err:  # absent: its mirrors said why on stderr; there but unusable: say why
            failed.append(f"{name} ({err})" if (resolve_data_dir(args.data_dir) / name).exists() else name)
            continue
        check = "SHA-256 verified" if path.name.endswith((".gz", ".pkl")) else "placed by hand: hash unknown"
        print(f"{path} ({path.stat().st_size:,} bytes, {check})")
    folder = resolve_data_dir(args.data_dir)
    if failed:
        raise DataNotFoundError(f"could not fetch {', '.join(failed)} into {folder}; see the README's "
                                "'The data directory' for where to get them by hand")
    print(f"{folder} holds the {len(fetches)} files")
    return EXIT_OK


if __name__ == "__main__":
    run_main(main)
