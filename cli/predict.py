"""`digits predict`: classify PNG/JPEG/IDX files with a running server and print the answers."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from cli.exits import ExitCode
from cli.table import format_table

_DEFAULT_TARGET = "127.0.0.1:50051"
_SERVICE_ERROR_EXIT = ExitCode.SERVICE
_TLS_FLAGS = {
    "--tls-ca": "PEM file of the CA that signed the server",
    "--tls-cert": "client certificate PEM (mutual TLS)",
    "--tls-key": "client private key PEM (mutual TLS)",
}
# --show-input writes PNG only; these names are surely meant as pictures, not directories.
_OTHER_PICTURE_SUFFIXES = {".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp"}
_BAD_FILE_EXIT = ExitCode.FAILED  # some input could not be read; the others were still answered


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify digit images with a running server",
        description="Classify pictures (any format and mode Pillow reads, prepared as a viewer "
        "shows them and fitted to 28x28 the MNIST way) or IDX image files "
        "with a running `digits serve`, and print labels and probabilities. Every file gets "
        "its own answer; unreadable files are reported on stderr (exit code 1) and the rest "
        "are still classified.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="picture or IDX image file")
    parser.add_argument(
        "--target",
        metavar="TARGET",
        default=_DEFAULT_TARGET,
        help="server HOST:PORT or any gRPC target, balanced round-robin over its addresses: "
        "dns:///host:port, ipv4:10.0.0.1:50051,10.0.0.2:50051 (%(default)s)",
    )
    parser.add_argument(
        "--invert",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="treat pictures as dark ink on light paper (--invert) or not (--no-invert); "
        "default: decide per picture from its border",
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--version", type=int, metavar="N", help="registry version to ask (default: production)"
    )
    model.add_argument(
        "--alias", metavar="NAME", help="registry alias to ask (default: production)"
    )
    parser.add_argument(
        "--top-k",
        type=int,
        choices=range(1, 11),
        metavar="K",
        help="show only the K most probable classes (1-10)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--show-input",
        type=Path,
        metavar="PATH",
        help="save the 28x28 input the model sees as PNG: to the new file PATH when it ends in "
        ".png (one image), else into the directory PATH, one NNNN-name.png per image; an "
        "existing file is never overwritten (a clashing name in the directory gets a -2, -3... "
        "suffix)",
    )
    parser.add_argument(
        "--timeout", type=float, metavar="S", default=10.0, help="seconds per request (10)"
    )
    parser.add_argument(
        "--batch-size", type=int, metavar="N", default=256, help="images per request (256)"
    )
    for flag, meaning in _TLS_FLAGS.items():
        parser.add_argument(flag, type=Path, metavar="PEM", help=meaning)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cli.main import CommandError
    from service.client import ServiceError
    from service.client.images import prepare_files

    if (args.tls_cert is None) != (args.tls_key is None):
        raise CommandError(
            "--tls-cert and --tls-key must be given together", exit_code=ExitCode.USAGE
        )
    if args.batch_size < 1:
        raise CommandError("--batch-size must be at least 1", exit_code=ExitCode.USAGE)
    if args.show_input is not None:
        _check_show_input(args.show_input, args.files)
    prepared = prepare_files(args.files, invert=args.invert)
    good = [item for item in prepared if item.image is not None]
    if args.show_input is not None and args.show_input.suffix.lower() == ".png" and len(good) > 1:
        raise CommandError(
            f"--show-input {args.show_input}: {len(good)} images; give a directory",
            exit_code=ExitCode.USAGE,
        )
    for item in prepared:
        if item.error is not None:
            print(f"digits predict: error: {item.error}", file=sys.stderr)
    if args.show_input is not None and good:
        _save_inputs(args.show_input, good)
    rows: list[dict[str, Any]] = []
    if good:
        try:
            rows = _predict(args, good)
        except ServiceError as err:
            reason = err.details.strip().splitlines()[0] if err.details.strip() else "no details"
            raise CommandError(
                f"{args.target}: {err.code.name}: {reason}", exit_code=_SERVICE_ERROR_EXIT
            ) from err
    errors = [{"file": item.name, "error": item.error} for item in prepared if item.error]
    if args.json:
        document = {"target": args.target, "predictions": rows, "errors": errors}
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif rows:
        sys.stdout.write(_table(rows))
    return _BAD_FILE_EXIT if errors else 0


def _predict(args: argparse.Namespace, good: list[Any]) -> list[dict[str, Any]]:
    """Ask the server about every prepared image, ``--batch-size`` at a time."""
    import numpy as np

    from service.client import DigitsClient, tls_credentials

    credentials = None
    if args.tls_ca or args.tls_cert:
        pems = (_read_pem(path) for path in (args.tls_ca, args.tls_cert, args.tls_key))
        credentials = tls_credentials(*pems)
    names = [item.name for item in good]
    images = np.stack([item.image for item in good])
    rows: list[dict[str, Any]] = []
    with DigitsClient(args.target, timeout=args.timeout, credentials=credentials) as client:
        for start in range(0, len(images), args.batch_size):
            answer = client.predict(
                images[start : start + args.batch_size],
                version=args.version,
                alias=args.alias,
                top_k=args.top_k,
            )
            rows.extend(_rows(names[start:], answer))
    return rows


def _check_show_input(target: Path, inputs: list[str]) -> None:
    """Refuse a --show-input PATH that would overwrite anything (an input picture above all).

    Raises CommandError (usage) naming PATH: an existing file, an input, or a non-PNG file name.
    """
    from cli.main import CommandError

    def refuse(why: str) -> CommandError:
        return CommandError(f"--show-input {target}: {why}", exit_code=ExitCode.USAGE)

    resolved = target.resolve()
    if any(Path(name).resolve() == resolved for name in inputs):
        raise refuse("is one of the input files; pick a new .png name or a directory")
    if target.is_dir():
        return
    if target.exists():
        kind = "a file" if target.suffix.lower() == ".png" else "a file, not a directory"
        raise refuse(f"exists and is {kind}; pick a new .png name or a directory")
    if target.suffix.lower() in _OTHER_PICTURE_SUFFIXES:
        raise refuse("the inputs are saved as PNG; give a new .png name or a directory")


def _save_inputs(target: Path, good: list[Any]) -> None:
    """Write each 28x28 input as an 8-bit grayscale PNG (light ink on black, like MNIST).

    Never overwrites: PATH.png is created exclusively (CommandError if it appeared meanwhile);
    in a directory a clashing name gets a -2, -3... suffix.
    """
    from cli.main import CommandError

    try:
        if target.suffix.lower() == ".png":
            if not _write_new(target, good[0].image):
                raise FileExistsError(17, "File exists", str(target))  # appeared meanwhile
            return
        target.mkdir(parents=True, exist_ok=True)
        for index, item in enumerate(good):
            name = Path(item.name).name
            item_of = re.fullmatch(r"(.*)\[(\d+)\]", name)  # an IDX item: file[i] -> file-i
            stem = f"{Path(item_of[1]).stem}-{item_of[2]}" if item_of else Path(name).stem
            for attempt in range(1, 10_000):
                suffix = "" if attempt == 1 else f"-{attempt}"
                if _write_new(target / f"{index:04d}-{stem}{suffix}.png", item.image):
                    break
    except FileExistsError as err:
        raise CommandError(
            f"--show-input {target}: {err.filename} exists; pick a new .png name or a directory",
            exit_code=ExitCode.USAGE,
        ) from None
    except OSError as err:
        raise CommandError(f"--show-input {target}: cannot write ({err.strerror or err})") from None


def _write_new(path: Path, image: Any) -> bool:
    """Write ``image`` as PNG to ``path`` only if nothing is there (exclusive create, so no
    race with another writer); False, and nothing written, when ``path`` exists."""
    from PIL import Image

    try:
        with path.open("xb") as out:
            Image.fromarray(image).save(out, format="PNG")
    except FileExistsError:
        return False
    return True


def _read_pem(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()


def _rows(names: list[str], answer: Any) -> list[dict[str, Any]]:
    """One dict per image: file, label, its probability, and all (or the top-k) probabilities."""
    rows = []
    for index, label in enumerate(answer.labels.tolist()):
        probs = answer.probabilities[index].tolist()
        row: dict[str, Any] = {"file": names[index], "label": label}
        row.update(model=answer.model, version=answer.version)
        if answer.classes is None:
            row.update(probability=probs[label], probabilities=probs)
        else:
            classes = answer.classes[index].tolist()
            row["probability"] = probs[0]
            pairs = zip(classes, probs, strict=True)
            row["top_k"] = [{"class": c, "probability": p} for c, p in pairs]
        rows.append(row)
    return rows


def _table(rows: list[dict[str, Any]]) -> str:
    from core.config import N_CLASSES

    top_k = "top_k" in rows[0]
    extra = (
        [f"top{i + 1}" for i in range(len(rows[0]["top_k"]))]
        if top_k
        else [f"p{digit}" for digit in range(N_CLASSES)]
    )
    headers = ["file", "label", "prob", "version", *extra]
    lines = []
    for row in rows:
        if top_k:
            cells = [f"{t['class']}:{t['probability']:.4f}" for t in row["top_k"]]
        else:
            cells = [f"{p:.4f}" for p in row["probabilities"]]
        lines.append(
            [
                row["file"],
                str(row["label"]),
                f"{row['probability']:.4f}",
                str(row["version"]),
                *cells,
            ]
        )
    return format_table(headers, lines, right_aligned=range(1, len(headers))) + "\n"
