#!/usr/bin/env python3
"""Independent check of what the hub writes: decode Confluent-framed Avro messages with fastavro.

Usage: fastavro_check.py CASES_JSON

CASES_JSON is a list of cases written by the Rust test `fastavro_reads_what_the_hub_writes`:
  {"name": ..., "schema_file": <path to .avsc>, "schema_id": N,
   "message_hex": <framed message>, "expected": <record as JSON>}
Each message must start with magic byte 0 and the case's schema id (big-endian u32); the rest
must decode with the .avsc to exactly `expected`, consuming every byte. Timestamps are compared
as milliseconds since the epoch.

Exit status: 0 all cases match, 1 a case does not, 3 fastavro is not installed.
"""

import datetime
import io
import json
import struct
import sys

try:
    import fastavro
except ImportError:
    print(
        "fastavro is not installed for this python3; install it with `pip install fastavro`",
        file=sys.stderr,
    )
    sys.exit(3)

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def plain(value):
    """fastavro's decoded value with datetimes as epoch milliseconds, comparable with JSON."""
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(milliseconds=1)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def check(case):
    """Returns a list of problems with one case (empty when it matches)."""
    with open(case["schema_file"], encoding="utf-8") as f:
        schema = fastavro.parse_schema(json.load(f))
    message = bytes.fromhex(case["message_hex"])
    if len(message) < 5:
        return [f"message is {len(message)} bytes, shorter than the 5-byte header"]
    if message[0] != 0:
        return [f"magic byte is 0x{message[0]:02x}, expected 0x00"]
    (schema_id,) = struct.unpack(">I", message[1:5])
    if schema_id != case["schema_id"]:
        return [f"schema id in header is {schema_id}, expected {case['schema_id']}"]

    body = io.BytesIO(message[5:])
    record = plain(fastavro.schemaless_reader(body, schema, None))
    problems = []
    left = len(message) - 5 - body.tell()
    if left:
        problems.append(f"{left} bytes left after the record")
    if record != case["expected"]:
        problems.append(
            "decoded record differs from expected\n  decoded:  "
            + json.dumps(record, ensure_ascii=False, sort_keys=True)
            + "\n  expected: "
            + json.dumps(case["expected"], ensure_ascii=False, sort_keys=True)
        )
    return problems


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    failed = 0
    for case in cases:
        problems = check(case)
        if problems:
            failed += 1
            print(f"FAIL {case['name']}:", *problems, sep="\n  ")
        else:
            print(f"ok   {case['name']}")
    print(f"{len(cases) - failed} of {len(cases)} cases decoded as expected by fastavro {fastavro.__version__}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
