"""Encryption of what Temporal keeps: the payload codec of every client and worker.

Temporal's server stores workflow and activity inputs and results, Update, signal and
query payloads, summaries and details, and (with `encode_common_attributes`) failure
messages and stack traces as payloads. This codec makes each one AES-256-GCM ciphertext
before it leaves the process, so the server, its database and its backups hold none of
a requester's personal data in clear.

Two kinds of key:

- **master keys**, `PAYLOAD_ENCRYPTION_KEYS` (`id:key,…`): the first encrypts, every one
  decrypts, so a key is rotated by putting a new one first and dropping the old one once
  nothing needs it (docs/personal-data.md, "Rotating a master key");
- **a data key per request**, made on the first payload of `onboarding-<id>` and kept in
  Commerce's `data_key` table wrapped by a master key. Erasing the request's personal
  data destroys it once its workflow has closed: that history can no longer be read
  (crypto-shredding).

The SDK tells the codec whose payload it is encoding (its serialization context: a
workflow's own id for its input, result, queries, Updates, signals and its activities'
payloads; the target's id for a signal to another workflow). A request's payloads take
its data key; any other workflow's (a partner user's) a master key. Each payload names
its key in its metadata, so decoding needs no context, and a payload without this
encoding (histories written before it) passes through as it is.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec, SerializationContext, WithSerializationContext

from models.ids import onboarding_id_of
from settings import KEY_BYTES, VAR_DIR, Settings, parse_payload_keys
from stores import data_keys

ENCODING = b"binary/encrypted"
# The metadata naming the key: a master key's id, or `request:<onboarding id>`.
KEY_ID = "encryption-key-id"
REQUEST_KEY = "request:"
NONCE_BYTES = 12
# Where a decoded payload came from, when not from the product's own clients and workers:
# written in clear (the `temporal` CLI without the codec, or a history from before
# encryption), or encrypted by the codec endpoint for a person (sealed inside, so it cannot
# be taken off). A workflow refuses either as an Update's input (client.converter.PayloadConverter).
ARRIVED = "b2b-arrived"
IN_CLEAR = b"in-clear"
FOR_A_PERSON = b"codec-endpoint"
KEYS_FILE = VAR_DIR / "payload-encryption.keys"
# A data key read from the store is trusted this long before it is read again (another
# process may have destroyed it); while the store cannot be read, the copy held serves.
KEY_CACHE_SECONDS = 300.0
# Data keys held per process: well over the requests a worker works at once.
KEY_CACHE_SIZE = 20_000


class EncryptionError(Exception):
    """A payload this codec cannot encrypt or decrypt."""


class RequestErased(EncryptionError):
    """The request's data key is destroyed: its personal data was erased."""

    def __init__(self, onboarding_id: str) -> None:
        super().__init__(
            f"the personal data of request {onboarding_id} is erased: its key is destroyed"
        )
        self.onboarding_id = onboarding_id


class UnreadablePayload(EncryptionError):
    """Not ciphertext any key here made: tampered with, truncated, or from elsewhere."""


class KeyStoreUnavailable(EncryptionError):
    """Commerce, where the requests' data keys are kept, cannot be read or written."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def master_keys(settings: Settings) -> dict[str, bytes]:
    """PAYLOAD_ENCRYPTION_KEYS, or the key made once and kept in `var/` (as the web secret):
    processes on one machine then agree on it, and so does a restart."""
    if settings.payload_encryption_keys is not None:
        return parse_payload_keys(settings.payload_encryption_keys.get_secret_value())
    if not KEYS_FILE.exists():
        KEYS_FILE.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then linked into place: processes starting together agree on one.
        draft = KEYS_FILE.with_name(f".{KEYS_FILE.name}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(f"local-{datetime.now(UTC):%Y%m%d}:{_b64(new_key())}\n")
        with suppress(FileExistsError):
            os.link(draft, KEYS_FILE)
        draft.unlink()
    return parse_payload_keys(KEYS_FILE.read_text().strip())


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def _seal(key: AESGCM, plain: bytes, key_id: str) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    # The key's name is authenticated with the data: a payload cannot be passed off as
    # another key's.
    return nonce + key.encrypt(nonce, plain, key_id.encode())


def _open(key: AESGCM, sealed: bytes, key_id: str) -> bytes:
    try:
        return key.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], key_id.encode())
    except (InvalidTag, ValueError) as err:
        raise UnreadablePayload(f"a payload under key {key_id!r} does not decrypt") from err


class MasterKeys:
    """The master keys, in order: the first encrypts."""

    def __init__(self, keys: dict[str, bytes]) -> None:
        self._keys = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.current = next(iter(self._keys))

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def get(self, key_id: str) -> AESGCM:
        key = self._keys.get(key_id)
        if key is None:
            raise UnreadablePayload(
                f"the key {key_id!r} is not among PAYLOAD_ENCRYPTION_KEYS: put it back to read"
                " what it encrypted"
            )
        return key

    def wrap(self, onboarding_id: str, data_key: bytes) -> tuple[str, bytes]:
        return self.current, _seal(self.get(self.current), data_key, _wrap_id(onboarding_id))

    def unwrap(self, onboarding_id: str, master_key_id: str, wrapped: bytes) -> bytes:
        return _open(self.get(master_key_id), wrapped, _wrap_id(onboarding_id))


def _wrap_id(onboarding_id: str) -> str:
    return f"data-key:{onboarding_id}"


@dataclass
class _Held:
    key: AESGCM | None  # None: destroyed
    read_at: float


@dataclass
class DataKeys:
    """Each request's data key: made on first use, read from Commerce, held a while."""

    engine: Callable[[], Engine]
    master: MasterKeys
    _held: OrderedDict[str, _Held] = field(default_factory=OrderedDict)

    async def for_encoding(self, onboarding_id: str) -> AESGCM:
        key = await self._key(onboarding_id, create=True)
        if key is None:
            raise RequestErased(onboarding_id)
        return key

    async def for_decoding(self, onboarding_id: str, fresh: bool = False) -> AESGCM:
        """The request's key to read with; `fresh`: read from the store, not the copy held."""
        key = await self._key(onboarding_id, create=False, fresh=fresh)
        if key is None:
            raise RequestErased(onboarding_id)
        return key

    def destroy(self, onboarding_id: str) -> bool:
        """Destroy the request's data key (blocking); False if it had none to destroy."""
        self._held.pop(onboarding_id, None)
        return data_keys.destroy(self.engine(), onboarding_id, datetime.now(UTC))

    def exists(self, onboarding_id: str) -> bool:
        """Whether the request has a live data key (blocking)."""
        row = data_keys.read(self.engine(), onboarding_id)
        return row is not None and row.wrapped_key is not None

    def rewrap(self) -> int:
        """Wrap every live data key with the current master key (blocking), so the other
        master keys are no longer needed for them; answers how many were wrapped again."""
        older = set(self.master.ids) - {self.master.current}
        done = 0
        for row in data_keys.wrapped_by(self.engine(), older):
            assert row.wrapped_key is not None
            key = self.master.unwrap(row.onboarding_id, row.master_key_id, row.wrapped_key)
            master_key_id, wrapped = self.master.wrap(row.onboarding_id, key)
            data_keys.rewrap(self.engine(), row.onboarding_id, master_key_id, wrapped)
            done += 1
        return done

    async def _key(self, onboarding_id: str, create: bool, fresh: bool = False) -> AESGCM | None:
        held = self._held.get(onboarding_id)
        now = time.monotonic()
        if held is not None and (
            held.key is None or (not fresh and now - held.read_at < KEY_CACHE_SECONDS)
        ):
            self._held.move_to_end(onboarding_id)
            return held.key
        try:
            key = await asyncio.to_thread(self._read, onboarding_id, create)
        except SQLAlchemyError as err:
            if held is None:
                raise KeyStoreUnavailable(
                    f"the data key of request {onboarding_id} cannot be read: Commerce does not"
                    f" answer ({type(err).__name__})"
                ) from err
            # The store cannot say: the key held serves until it can.
            return held.key
        self._held[onboarding_id] = _Held(key, now)
        self._held.move_to_end(onboarding_id)
        while len(self._held) > KEY_CACHE_SIZE:
            self._held.popitem(last=False)
        return key

    def _read(self, onboarding_id: str, create: bool) -> AESGCM | None:
        engine = self.engine()
        row = data_keys.read(engine, onboarding_id)
        if row is None:
            if not create:
                raise UnreadablePayload(f"request {onboarding_id} has no data key")
            key = new_key()
            master_key_id, wrapped = self.master.wrap(onboarding_id, key)
            row = data_keys.keep(engine, onboarding_id, master_key_id, wrapped, datetime.now(UTC))
            if row is None:
                # Kept: the key in hand is the one, no need to unwrap what was just wrapped.
                return AESGCM(key)
        if row.wrapped_key is None:
            return None
        return AESGCM(self.master.unwrap(onboarding_id, row.master_key_id, row.wrapped_key))


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """AES-256-GCM on every payload: a request's under its data key, others' a master key's."""

    def __init__(
        self,
        master: MasterKeys,
        data_keys: DataKeys,
        onboarding_id: str | None = None,
        fresh_keys: bool = False,
    ) -> None:
        self.master = master
        self.data_keys = data_keys
        self.onboarding_id = onboarding_id
        self.fresh_keys = fresh_keys

    def with_context(self, context: SerializationContext) -> Self:
        onboarding_id = onboarding_id_of(getattr(context, "workflow_id", None))
        if onboarding_id == self.onboarding_id:
            return self
        return type(self)(self.master, self.data_keys, onboarding_id, self.fresh_keys)

    def reading_fresh(self) -> EncryptionCodec:
        """This codec, reading each request's key from the store on every decode: what a
        person is shown must not outlive an erasure made by another process."""
        return type(self)(self.master, self.data_keys, self.onboarding_id, fresh_keys=True)

    async def encode_for_a_person(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Under the master key, marked as typed by a person rather than sent by the product."""
        marked = []
        for payload in payloads:
            copy = Payload()
            copy.CopyFrom(payload)
            copy.metadata[ARRIVED] = FOR_A_PERSON
            marked.append(copy)
        return await self.encode(marked)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self.onboarding_id is not None:
            key_id = REQUEST_KEY + self.onboarding_id
            key = await self.data_keys.for_encoding(self.onboarding_id)
        else:
            key_id = self.master.current
            key = self.master.get(key_id)
        return [
            Payload(
                metadata={"encoding": ENCODING, KEY_ID: key_id.encode()},
                data=_seal(key, payload.SerializeToString(), key_id),
            )
            for payload in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        decoded = []
        # Read once per call, however many of its payloads a request has.
        read: dict[str, AESGCM] = {}
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                # Written before encryption, or not by us: as it is, saying so.
                in_clear = Payload()
                in_clear.CopyFrom(payload)
                in_clear.metadata[ARRIVED] = IN_CLEAR
                decoded.append(in_clear)
                continue
            key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
            if key_id.startswith(REQUEST_KEY):
                onboarding_id = key_id.removeprefix(REQUEST_KEY)
                if onboarding_id not in read:
                    read[onboarding_id] = await self.data_keys.for_decoding(
                        onboarding_id, fresh=self.fresh_keys
                    )
                key = read[onboarding_id]
            else:
                key = self.master.get(key_id)
            inner = Payload()
            try:
                inner.ParseFromString(_open(key, payload.data, key_id))
            except UnreadablePayload:
                raise
            except Exception as err:  # protobuf's DecodeError
                raise UnreadablePayload(f"a payload under key {key_id!r} is no payload") from err
            decoded.append(inner)
        return decoded


def codec(settings: Settings, commerce: Engine | Callable[[], Engine]) -> EncryptionCodec:
    """The codec for these settings, keeping data keys in this Commerce store."""
    master = MasterKeys(master_keys(settings))
    engine = commerce if callable(commerce) else (lambda: commerce)
    return EncryptionCodec(master, DataKeys(engine, master))
