"""`digits logs tail|export`: read a server's prediction log back (docs/monitoring.md).

DEST is the directory or s3://bucket/prefix given to `digits serve --prediction-log` (object
storage holds the closed files; endpoint and credentials from the AWS variables). tail prints
the last records (or follows new ones); export writes the logged inputs as IDX
files, labelled with the feedback the server received, so they can be added to training with
`digits train --extra-data DIR`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from cli.locations import registry_location

IMAGES_FILE, LABELS_FILE = "logged-images-idx3-ubyte.gz", "logged-labels-idx1-ubyte.gz"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="read a prediction log (tail, export to IDX)",
        description="Read the prediction log a server writes with --prediction-log DIR.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = actions.add_parser("tail", help="print the last records, one line each")
    tail.add_argument("directory", type=registry_location, metavar="DEST",
                      help="the --prediction-log directory or s3://bucket/prefix")  # fmt: skip
    tail.add_argument("-n", type=int, default=10, metavar="N", help="records to print (10)")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    tail.add_argument("--json", action="store_true", help="print the records as JSON lines")
    tail.set_defaults(handler=run_tail)
    export = actions.add_parser(
        "export",
        help="write logged inputs as IDX image/label files",
        description="Write the logged inputs of successful predictions as IDX files "
        f"({IMAGES_FILE}, {LABELS_FILE}). Labels come from Feedback; images without "
        "feedback are left out unless --predicted-labels uses the model's own answer.",
    )
    export.add_argument("directory", type=registry_location, metavar="DEST",
                        help="the --prediction-log directory or s3://bucket/prefix")  # fmt: skip
    export.add_argument("out", type=Path, metavar="OUT", help="directory for the IDX files")
    export.add_argument(
        "--predicted-labels",
        action="store_true",
        help="label images without feedback with the predicted class (self-training: careful)",
    )
    export.set_defaults(handler=run_export)


def _line(record: dict[str, Any]) -> str:
    if record.get("kind") == "feedback":
        verdict = "right" if record["label"] == record["predicted"] else "wrong"
        return (f"{record['time']}  feedback  {record['request_id']}[{record['index']}]  "
                f"label {record['label']}  v{record['version']} said {record['predicted']} "
                f"({verdict})")  # fmt: skip
    labels = record.get("labels")
    shown = "" if labels is None else " labels " + ",".join(map(str, labels[:8]))
    if labels is not None and len(labels) > 8:
        shown += f",... ({len(labels)})"
    error = f"  {record['error']}" if record.get("error") else ""
    return (f"{record['time']}  {record['method']}  {record['request_id']}  "
            f"{_version(record['version'])}  {record['status']}  {record['latency_ms']:.3f} ms"
            f"{shown}{error}")  # fmt: skip


def _version(version: int | None) -> str:
    return "-" if version is None else f"v{version}"  # None: failed before a model answered


def run_tail(args: argparse.Namespace) -> int:
    from service.observability.log_records import read_records

    records = list(read_records(args.directory))
    shown = len(records)
    for record in records[-args.n :] if args.n > 0 else []:
        print(json.dumps(record) if args.json else _line(record), flush=True)
    while args.follow:  # re-read: the active file grows in place and new files appear
        time.sleep(1.0)
        records = list(read_records(args.directory))
        for record in records[shown:]:
            print(json.dumps(record) if args.json else _line(record), flush=True)
        shown = len(records)
    return 0


def run_export(args: argparse.Namespace) -> int:
    import numpy as np

    from cli.main import CommandError
    from core.idx import encode_idx
    from service.observability.log_records import decode_input, read_records

    records = list(read_records(args.directory))
    truth = {
        (r["request_id"], r["index"]): r["label"] for r in records if r.get("kind") == "feedback"
    }
    images, labels = [], []
    for record in records:
        if record.get("kind") != "prediction" or record.get("status") != "OK":
            continue
        pixels = decode_input(record)
        if pixels is None:
            continue
        for index, image in enumerate(pixels):
            label = truth.get((record["request_id"], index))
            if label is None and args.predicted_labels:
                label = record["labels"][index]
            if label is not None:
                images.append(image)
                labels.append(label)
    if not images:
        hint = "" if args.predicted_labels else " (no feedback; --predicted-labels exports anyway)"
        raise CommandError(f"nothing to export from {args.directory}{hint}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / IMAGES_FILE).write_bytes(encode_idx(np.stack(images), compress=True))
    (args.out / LABELS_FILE).write_bytes(
        encode_idx(np.asarray(labels, dtype=np.uint8), compress=True)
    )
    noun = "image" if len(images) == 1 else "images"
    print(f"exported {len(images)} {noun} to {args.out / IMAGES_FILE} and {LABELS_FILE}")
    return 0
