"""Fill a data folder for offline use: MNIST's test set and the book's weights, SHA-256 checked.

    dlfs-ch3 fetch-data                          # into $NN_DATA_DIR, else the per-user cache
    dlfs-ch3 fetch-data --data-dir data --train  # also MNIST's training set (load_mnist)

Files already there and intact are kept without network access. Copy the folder to the offline
machine and point --data-dir or NN_DATA_DIR at it. Exit codes: 0 every file is there and verified,
2 one could not be fetched.
"""

from nn_numpy.errors import DataNotFoundError

from .cli import EXIT_OK, ArgumentParser, add_data_args


def main(argv=None):
    from nn_numpy.data.fetch import TEST_SET, TRAIN_SET, WEIGHTS, fetch, gather, resolve_data_dir

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--train",
        action="store_true",
        help="also MNIST's training set (10 MB; no command needs it)",
    )
    args = add_data_args(p, inputs=False).parse_args(argv)
    names = TEST_SET + (TRAIN_SET if args.train else ()) + (WEIGHTS,)
    folder = resolve_data_dir(args.data_dir)

    def fetched(name):
        data = fetch(name, args.data_dir)
        print(f"{folder / name} ({len(data):,} bytes, SHA-256 verified)")

    try:
        gather(*(lambda name=name: fetched(name) for name in names), data_dir=args.data_dir)
    except DataNotFoundError as err:
        raise DataNotFoundError(
            f"could not fetch {', '.join(err.missing)} into {folder}; see the README's "
            "'The data directory' for where to get them by hand",
            err.missing,
        ) from None
    print(f"{folder} holds the {len(names)} files")
    return EXIT_OK
