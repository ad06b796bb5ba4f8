"""UnixFS files as Kubo's ``ipfs add`` builds them, and reading them back.

Importer (:func:`import_file`): fixed 256 KiB chunks and the balanced layout with at most 174 links
per node, the defaults of Kubo's ``ipfs add``:

- CIDv0: every node is dag-pb; a leaf is a UnixFS ``File`` node carrying its chunk.
- CIDv1: leaves are ``raw`` blocks (the chunk itself); interior nodes are dag-pb CIDv1.

A one-chunk file is its leaf, with no wrapping node. Interior nodes carry ``filesize`` and one
``blocksizes`` entry per child; each link carries ``Tsize``, the bytes of the child's whole sub-DAG.
The importer streams: it holds one chunk plus at most 174 pending links per tree level.

Exporter (:func:`export_file`): walks a file DAG depth-first and yields its bytes in order. It
never checks hashes itself; the ``fetch`` callback it is given must return verified blocks (every
:class:`backend.storage.store.Store` does). Because every link is a hash, a verified root plus
verified children is a verified file.

dag-pb and UnixFS are protobuf (proto2) messages, encoded with the ``protobuf`` runtime from the
schemas below. One wrinkle: the dag-pb spec puts ``Links`` (field 2) before ``Data`` (field 1) on
the wire, while protobuf encoders emit fields in number order. Protobuf defines concatenated
messages as merged, so a node is encoded as ``PBNode(Links)`` followed by ``PBNode(Data)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError
from backend.errors import IntegrityError, StorageError
from backend.storage.cids import DAG_PB, RAW, BlockRef, cid_prefix, format_cid, ref_from_binary

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174

PutBlock = Callable[[bytes, bytes], None]
"""``put_block(binary_cid, block)``: called once per block, children before parents."""
FetchBlocks = Callable[[list[BlockRef]], Iterable[bytes]]
"""``fetch(cids)``: the verified bytes of each block, in order."""


def _messages() -> tuple[type, type, type]:
    f = descriptor_pb2.FileDescriptorProto(name="merit/unixfs.proto", package="merit.unixfs", syntax="proto2")
    F = descriptor_pb2.FieldDescriptorProto
    opt, rep, req = F.LABEL_OPTIONAL, F.LABEL_REPEATED, F.LABEL_REQUIRED

    def message(name: str, *fields: tuple[str, int, int, int, str | None]) -> None:
        m = f.message_type.add(name=name)
        for fname, number, label, ftype, type_name in fields:
            field = m.field.add(name=fname, number=number, label=label, type=ftype)
            if type_name:
                field.type_name = type_name

    # dag-pb (https://ipld.io/specs/codecs/dag-pb/spec/)
    message(
        "PBLink",
        ("Hash", 1, opt, F.TYPE_BYTES, None),
        ("Name", 2, opt, F.TYPE_STRING, None),
        ("Tsize", 3, opt, F.TYPE_UINT64, None),
    )
    message("PBNode", ("Links", 2, rep, F.TYPE_MESSAGE, ".merit.unixfs.PBLink"), ("Data", 1, opt, F.TYPE_BYTES, None))
    # UnixFS v1 (https://github.com/ipfs/specs/blob/main/UNIXFS.md); mode and mtime are not needed
    enum = f.enum_type.add(name="DataType")
    for number, name in enumerate(("Raw", "Directory", "File", "Metadata", "Symlink", "HAMTShard")):
        enum.value.add(name=name, number=number)
    message(
        "Data",
        ("Type", 1, req, F.TYPE_ENUM, ".merit.unixfs.DataType"),
        ("Data", 2, opt, F.TYPE_BYTES, None),
        ("filesize", 3, opt, F.TYPE_UINT64, None),
        ("blocksizes", 4, rep, F.TYPE_UINT64, None),
        ("hashType", 5, opt, F.TYPE_UINT64, None),
        ("fanout", 6, opt, F.TYPE_UINT64, None),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    get = lambda name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"merit.unixfs.{name}"))  # noqa: E731
    return get("PBLink"), get("PBNode"), get("Data")


PBLink, PBNode, UnixFSData = _messages()
TYPE_RAW, TYPE_FILE = 0, 2


@dataclass(frozen=True)
class Link:
    cid: bytes  # binary CID
    tsize: int  # bytes of the child's serialized sub-DAG
    filesize: int  # file bytes below the child


def encode_node(links: list[Link], data: bytes | None) -> bytes:
    """One dag-pb block: links first, then data, as the dag-pb spec orders them."""
    head = PBNode(Links=[PBLink(Hash=link.cid, Name="", Tsize=link.tsize) for link in links]).SerializeToString()
    return head + (PBNode(Data=data).SerializeToString() if data is not None else b"")


def _leaf(chunk: bytes, cid_version: int, put: PutBlock) -> Link:
    if cid_version == 1:
        cid = cid_prefix(1, RAW).cid_bytes(hashlib.sha256(chunk).digest())
        put(cid, chunk)
        return Link(cid, len(chunk), len(chunk))
    fs = UnixFSData(Type=TYPE_FILE, filesize=len(chunk))
    if chunk:
        fs.Data = chunk
    return _put_node([], fs.SerializeToString(), 0, len(chunk), put)


def _interior(children: list[Link], cid_version: int, put: PutBlock) -> Link:
    filesize = sum(child.filesize for child in children)
    fs = UnixFSData(Type=TYPE_FILE, filesize=filesize, blocksizes=[child.filesize for child in children])
    return _put_node(children, fs.SerializeToString(), cid_version, filesize, put)


def _put_node(children: list[Link], fs_data: bytes, cid_version: int, filesize: int, put: PutBlock) -> Link:
    block = encode_node(children, fs_data)
    cid = cid_prefix(cid_version, DAG_PB).cid_bytes(hashlib.sha256(block).digest())
    put(cid, block)
    return Link(cid, len(block) + sum(child.tsize for child in children), filesize)


def read_chunks(reader: BinaryIO, size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Exactly ``size`` bytes per chunk (the last may be shorter), however the reader splits reads."""
    while True:
        chunk = reader.read(size)
        if not chunk:
            return
        while len(chunk) < size:
            more = reader.read(size - len(chunk))
            if not more:
                break
            chunk += more
        yield bytes(chunk)
        if len(chunk) < size:
            return


@dataclass(frozen=True)
class Imported:
    cid: str
    size: int  # file bytes
    blocks: int


def import_file(reader: BinaryIO, cid_version: int, put: PutBlock) -> Imported:
    """Chunk ``reader`` and build the balanced DAG, calling ``put`` for every block.

    ``levels[i]`` holds the links waiting to become one node at height ``i + 1``. A full level is
    flushed only when one more link arrives, so that a file whose links exactly fill a node gets
    that node as its root rather than a parent with a single child, as Kubo does.
    """
    if cid_version not in (0, 1):
        raise ValueError(f"cid_version must be 0 or 1, got {cid_version!r}")
    levels: list[list[Link]] = [[]]
    blocks = 0

    def counting_put(cid: bytes, block: bytes) -> None:
        nonlocal blocks
        blocks += 1
        put(cid, block)

    def push(height: int, link: Link) -> None:
        if height == len(levels):
            levels.append([])
        if len(levels[height]) == MAX_LINKS:
            node = _interior(levels[height], cid_version, counting_put)
            levels[height] = []
            push(height + 1, node)
        levels[height].append(link)

    for chunk in read_chunks(reader):
        push(0, _leaf(chunk, cid_version, counting_put))
    if not levels[0]:  # an empty file is one empty leaf
        push(0, _leaf(b"", cid_version, counting_put))
    height = 0
    while True:
        top = height == len(levels) - 1
        if top and len(levels[height]) == 1:
            root = levels[height][0]
            break
        node = _interior(levels[height], cid_version, counting_put)
        if top:
            root = node
            break
        levels[height + 1].append(node)
        height += 1
    return Imported(format_cid(root.cid), root.filesize, blocks)


def decode_node(cid: BlockRef, block: bytes) -> tuple[list[BlockRef], bytes, int]:
    """A verified file block's (children, inline data, file size); refuses anything but a UnixFS file."""
    if cid.codec == RAW:
        return [], block, len(block)
    try:
        node = PBNode.FromString(block)
        fs = UnixFSData.FromString(node.Data)
    except (DecodeError, ValueError) as exc:
        raise IntegrityError(f"block {format_cid(cid)} is not a valid dag-pb UnixFS node ({exc})") from None
    if fs.Type not in (TYPE_FILE, TYPE_RAW):
        kind = UnixFSData.DESCRIPTOR.fields_by_name["Type"].enum_type.values_by_number[fs.Type].name
        raise StorageError(
            f"CID {format_cid(cid)} is a UnixFS {kind}, not a file", "Merit stores single files; fetch a file CID"
        )
    try:
        children = [ref_from_binary(link.Hash) for link in node.Links]
    except StorageError as exc:
        raise IntegrityError(f"block {format_cid(cid)} links to a CID Merit cannot fetch ({exc})") from None
    size = fs.filesize if fs.HasField("filesize") else len(fs.Data) + sum(fs.blocksizes)
    return children, fs.Data, size


def export_file(root: BlockRef, fetch: FetchBlocks) -> Iterator[bytes]:
    """The file's bytes, block by block, fetching only what is needed next."""
    (block,) = fetch([root])
    yield from _export(root, block, fetch)


def _export(cid: BlockRef, block: bytes, fetch: FetchBlocks) -> Iterator[bytes]:
    children, data, _ = decode_node(cid, block)
    if data:
        yield data
    if children:
        for child, child_block in zip(children, fetch(children), strict=True):
            yield from _export(child, child_block, fetch)
