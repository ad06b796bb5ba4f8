"""Reading which EVM opcodes a bytecode uses: enough to tell a Cancun build from a Shanghai one."""

from __future__ import annotations

# the opcodes whose presence decides which EVM a build needs; others are reported by number
NAMED = {0x49: "BLOBHASH", 0x4A: "BLOBBASEFEE", 0x5C: "TLOAD", 0x5D: "TSTORE", 0x5E: "MCOPY", 0x5F: "PUSH0"}
_PUSH1, _PUSH32 = 0x60, 0x7F


def opcodes_in(bytecode: str | bytes) -> set[str]:
    """The opcodes in ``bytecode`` (PUSH data skipped, solc's trailing CBOR metadata dropped)."""
    code = (
        bytes.fromhex(bytecode[2:] if bytecode.startswith("0x") else bytecode)
        if isinstance(bytecode, str)
        else bytes(bytecode)
    )
    if len(code) >= 2:
        meta = int.from_bytes(code[-2:], "big")
        if meta + 2 <= len(code) and code[-2 - meta : -2][:1] in (b"\xa1", b"\xa2", b"\xa3"):  # a CBOR map
            code = code[: -2 - meta]
    found, pc = set(), 0
    while pc < len(code):
        op = code[pc]
        found.add(NAMED.get(op, f"0x{op:02x}"))
        pc += 1 + (op - _PUSH1 + 1 if _PUSH1 <= op <= _PUSH32 else 0)
    return found
