"""Reading a growing queue_log file: whole lines only, from a position that survives restarts.

A position is (inode, offset). When the file at the path has another inode (logrotate moved
it), the rest of the old file is read first through the handle still open, then the new file
from its start; a file shorter than the offset (truncated, copytruncate) is read from its start.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

log = logging.getLogger(__name__)
MAX_READ = 4 * 1024 * 1024


@dataclass(frozen=True)
class Position:
    inode: int
    offset: int


class Tail:
    def __init__(self, path: str, position: Position | None = None, from_end: bool = True):
        self.path = path
        self.position = position           # None: not opened yet
        self.from_end = from_end           # with no stored position: start at the end (serve) or 0
        self._fh = None
        self._inode: int | None = None
        self._offset = 0
        self._partial = b""

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _open(self) -> bool:
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return False
        st = os.fstat(fh.fileno())
        self.close()
        self._fh, self._inode, self._partial = fh, st.st_ino, b""
        pos = self.position
        if pos is not None and pos.inode == st.st_ino and pos.offset <= st.st_size:
            self._offset = pos.offset
        elif pos is None and self.from_end:
            self._offset = st.st_size
        else:
            if pos is not None:
                log.warning("%s: not the file last read (inode %s, offset %s); reading it from "
                            "the start", self.path, pos.inode, pos.offset)
            self._offset = 0
        fh.seek(self._offset)
        return True

    def read(self) -> list[tuple[int, str]]:
        """New complete lines with the offset each starts at."""
        if self._fh is None and not self._open():
            return []
        out = self._drain()
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return out                      # rotated away, the new one not created yet
        if st.st_ino != self._inode:
            log.info("%s: rotated; reading the new file", self.path)
            self.position = None
            self.from_end = False
            if self._open():
                out += self._drain()
        elif st.st_size < self._offset:
            log.warning("%s: truncated; reading it from the start", self.path)
            self._fh.seek(0)
            self._offset, self._partial = 0, b""
            out += self._drain()
        return out

    def _drain(self) -> list[tuple[int, str]]:
        out = []
        while True:
            chunk = self._fh.read(MAX_READ)
            if not chunk:
                break
            start = self._offset - len(self._partial)         # the file offset of data[0]
            data = self._partial + chunk
            self._offset += len(chunk)
            cut = data.rfind(b"\n") + 1
            for line in data[:cut].split(b"\n")[:-1]:
                out.append((start, line.decode("utf-8", "replace")))
                start += len(line) + 1
            self._partial = data[cut:]
        self.position = Position(self._inode, self._offset - len(self._partial))
        return out

    @property
    def inode(self) -> int | None:
        return self._inode
