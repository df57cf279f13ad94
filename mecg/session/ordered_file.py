"""The session writer's file: HDF5's writes through Python, those of a flush reordered so a kill leaves a valid file.

HDF5's file flush is not atomic: it writes the changed object headers and B-tree nodes in address
order and the superblock, with the new end of file, last. A kill in between left B-tree nodes that
point past the recorded end of file, or a dataset shape counting chunks its index did not hold yet
(measured: 20 of 100 kills 0-400 µs into a flush). :class:`OrderedFile` is the file object h5py's
``fileobj`` driver writes through; during a flush (:meth:`begin` ... :meth:`commit`) it holds the
writes back and then makes them in an order where every prefix is a readable file:

1. writes at or past the end of file that the last flushed superblock records (space nothing on
   disk refers to yet: new B-tree nodes, object header continuations);
2. the superblock (the new end of file), then the file's new length;
3. B-tree nodes, heaps and symbol-table nodes rewritten in place (they now point only at bytes
   already written);
4. the rest (object headers: dataset shapes and attributes) last, in one write of the span they
   cover when it is under 1 MiB (the bytes between them rewritten as they are), so that a stream's
   data and timestamps get their new lengths together.

The file's format is unchanged: only the order of HDF5's own writes differs.
"""

from __future__ import annotations

import os

#: Signatures of HDF5 metadata that step 3 rewrites before object headers.
_NODES = (b"TREE", b"GCOL", b"HEAP", b"SNOD")
#: Largest span (bytes) of object headers written in one write.
_TOGETHER_MAX = 1 << 20
#: Byte offset and size of the end-of-file address in a version 0 superblock with 8-byte addresses.
_SB_EOA = slice(40, 48)


class OrderedFile:
    """A file opened for h5py's ``fileobj`` driver (``h5py.File(OrderedFile(path), "w")``).

    Parameters
    ----------
    path
        The file to create (truncated if it exists).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._pos = 0
        self._held: list[tuple[int, bytes]] | None = None
        self._truncate_to: int | None = None
        self._flushed_eoa = 0
        #: When set, writes go nowhere (see ``SessionWriter.freeze``).
        self.frozen = False

    # -- the file-object protocol h5py's driver uses ----------------------------------------------
    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            end = os.fstat(self.fd).st_size
            for off, data in self._held or ():
                end = max(end, off + len(data))
            self._pos = end + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf: bytearray | memoryview) -> int:
        mv = memoryview(buf).cast("B")
        n = os.preadv(self.fd, [mv], self._pos)
        for off, data in self._held or ():  # writes held back in a flush read as written
            lo, hi = max(off, self._pos), min(off + len(data), self._pos + len(mv))
            if lo < hi:
                mv[lo - self._pos : hi - self._pos] = data[lo - off : hi - off]
                n = max(n, hi - self._pos)
        self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        buf = bytearray(max(0, size))
        return bytes(buf[: self.readinto(buf)])

    def write(self, data: bytes | memoryview) -> int:
        data = bytes(data)
        if self._held is not None:
            self._held.append((self._pos, data))
        elif not self.frozen:
            _pwrite_all(self.fd, data, self._pos)
        self._pos += len(data)
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if self._held is not None:
            self._truncate_to = size
        elif not self.frozen:
            os.ftruncate(self.fd, size)
        return size

    def flush(self) -> None:
        """Nothing to do: writes reach the OS at once (fsync is the writer's)."""

    # -- flushes -----------------------------------------------------------------------------------
    def begin(self) -> None:
        """Hold writes back until :meth:`commit` (call before HDF5's flush or close)."""
        self._held, self._truncate_to = [], None

    def commit(self) -> None:
        """Make the held writes in the crash-safe order (module docstring); raise OSError when one fails."""
        held, self._held = self._held or [], None
        if self.frozen:
            return
        old = self._flushed_eoa
        new = [w for w in held if w[0] >= old]
        superblock = [w for w in held if w[0] == 0 < old]
        nodes = [w for w in held if 0 < w[0] < old and w[1][:4] in _NODES]
        rest = [w for w in held if 0 < w[0] < old and w[1][:4] not in _NODES]
        for off, data in new + superblock:
            _pwrite_all(self.fd, data, off)
        if self._truncate_to is not None:
            os.ftruncate(self.fd, self._truncate_to)
        for off, data in nodes:
            _pwrite_all(self.fd, data, off)
        self._write_together(rest)
        for off, data in held:
            if off == 0 and len(data) >= _SB_EOA.stop and data[8] == 0:  # superblock version 0
                self._flushed_eoa = int.from_bytes(data[_SB_EOA], "little")

    def _write_together(self, writes: list[tuple[int, bytes]]) -> None:
        """Make ``writes`` as one write of the span they cover (the bytes between them as they are), if small.

        Object headers are rewritten in place, one per dataset: one write keeps a kill from landing between
        a stream's data and its timestamps (a write is cut short by a kill at most at a page boundary).
        """
        if not writes:
            return
        lo = min(off for off, _ in writes)
        hi = max(off + len(data) for off, data in writes)
        if hi - lo > _TOGETHER_MAX:
            for off, data in writes:
                _pwrite_all(self.fd, data, off)
            return
        span = bytearray(hi - lo)
        os.preadv(self.fd, [span], lo)  # every earlier write is in the file now
        for off, data in writes:
            span[off - lo : off - lo + len(data)] = data
        _pwrite_all(self.fd, bytes(span), lo)

    def close(self) -> None:
        """Close the file descriptor."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
