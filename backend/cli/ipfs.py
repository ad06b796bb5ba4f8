"""`merit ipfs ...`: add, read and pin content in Merit's store (embedded, or a Kubo node)."""

from __future__ import annotations

# Deferred imports, on purpose: each command imports the heavy modules it runs (torch, web3, FastAPI, the
# aggregator) in its own body, because `merit` loads every module of backend/cli/ at start-up and
# `merit --help` or a typo must answer at once.

import sys
from pathlib import Path
from typing import Optional

import typer

from backend.cli.common import IpfsOption
from backend.storage import DEFAULT_CID_VERSION, open_store

app = typer.Typer(help="Content-addressed storage: the CIDs are the ones `ipfs add` prints.", no_args_is_help=True)


@app.command()
def add(
    path: Path = typer.Argument(..., help="file to add"),
    cid_version: int = typer.Option(
        DEFAULT_CID_VERSION, "--cid-version", min=0, max=1, help="1: base32 bafy.../bafk... with raw leaves; 0: Qm..."
    ),
    only_hash: bool = typer.Option(False, "--only-hash", "-n", help="print the CID, store nothing"),
    pin: bool = typer.Option(True, "--pin/--no-pin", help="pin the content (keeps it from a Kubo node's GC)"),
    ipfs: IpfsOption = None,
) -> None:
    """Add a file and print its CID.

    Example: merit ipfs add model.safetensors --cid-version 1
    """
    if only_hash:
        from backend.storage import compute_cid
        from backend.storage.store import open_input

        with open_input(path) as reader:
            typer.echo(compute_cid(reader, cid_version))
        return
    with open_store(ipfs) as store:
        typer.echo(store.add_path(path, cid_version=cid_version, pin=pin))


@app.command()
def cat(
    cid: str = typer.Argument(..., help="CID to read"),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="write to this file instead of stdout (never left partial)"
    ),
    ipfs: IpfsOption = None,
) -> None:
    """Write a CID's bytes to stdout, verifying every block against the CID.

    Example: merit ipfs cat bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4 > hello.txt
    """
    with open_store(ipfs) as store:
        if output is not None:
            store.get_to_path(cid, output)
            return
        out = sys.stdout.buffer
        try:
            for piece in store.get_stream(cid):
                out.write(piece)
            out.flush()
        except BrokenPipeError:  # `merit ipfs cat CID | head` is fine
            sys.stderr.close()


@app.command()
def pin(
    cid: str = typer.Argument(..., help="CID to pin"),
    ipfs: IpfsOption = None,
) -> None:
    """Pin a CID: every block must be present and intact (a Kubo node fetches what it lacks).

    Example: merit ipfs pin bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi
    """
    with open_store(ipfs) as store:
        store.pin(cid)
    typer.echo(f"pinned {cid}")
