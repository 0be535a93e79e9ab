"""Coverage-guided fuzzing of the packet decoder: kernel and reference must agree on any input.

python tests/fuzz/packets_fuzz.py -runs=100000   (libFuzzer options; see atheris' README)

The reference is instrumented, so libFuzzer steers towards inputs that reach new rules; every input
is also fed in two reads split where its first byte says, as a transport would.
"""

import sys

import atheris

with atheris.instrument_imports():
    from ext import packets_ref

from ext import packets


def check(data: bytes) -> None:
    kernel, reference = packets.decode(data), packets_ref.decode(data)
    if kernel[0].tolist() != reference[0].tolist() or kernel[1].tolist() != reference[1].tolist():
        raise AssertionError(f"records or dots differ for {data!r}")
    if kernel[2:] != reference[2:]:
        raise AssertionError(f"payloads or consumed differ for {data!r}")


def one_input(data: bytes) -> None:
    check(data)
    if data:
        split = data[0] * len(data) // 256
        first = packets.decode(data[:split])
        check(data[:split][first[3] :] + data[split:])


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
