"""CURVE key files: reading them with one clear error, writing them private.

Keys are Z85 strings of 40 characters, in pyzmq certificate files
(``lorentz-bridge keygen``: ``NAME.key`` public, ``NAME.key_secret`` secret) or
bare in a text file.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Largest file read as a key file, bytes.
MAX_KEY_FILE_BYTES = 64 * 1024


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the file and the problem."""


def read_key(path: Path | str, *, secret: bool) -> bytes:
    """The Z85 CURVE key of ``path`` (a certificate file or a bare key)."""
    path = Path(path)
    kind = "secret" if secret else "public"
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{path} is too large to be a key file")
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
    wanted = "secret-key" if secret else "public-key"
    for line in text.splitlines():
        name, _, value = line.strip().partition("=")
        if name.strip() == wanted:
            text = value.strip().strip('"')
            break
    key = text.strip().encode()
    if len(key) != 40:
        raise KeyFileError(f"{path} holds no Z85 CURVE {kind} key (40 characters)")
    return key


def write_key_pair(folder: Path | str, name: str) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (mode 0600) into ``folder``; their paths."""
    import zmq.auth

    folder = Path(folder)
    previous = os.umask(0o077)  # the secret key is never readable by others, not even briefly
    try:
        folder.mkdir(parents=True, exist_ok=True)
        public, secret = zmq.auth.create_certificates(folder, name)
        os.chmod(secret, 0o600)
    finally:
        os.umask(previous)
    return Path(public), Path(secret)
