"""The payload codec: keys, rotation, a request's own data key, and what it refuses.

Unit cases on the codec and its key store, and one request run end to end under an old
key whose history is then replayed and read by a worker that has moved on to a new one.
"""

from __future__ import annotations

import base64
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import WorkflowSerializationContext
from temporalio.worker import Replayer

from client.converter import PayloadConverter, codec_of, data_converter
from client.requests import decide
from infra import encryption
from infra.encryption import (
    ENCODING,
    KEY_ID,
    REQUEST_KEY,
    EncryptionCodec,
    RequestErased,
    UnreadablePayload,
)
from models.ids import onboarding_workflow_id
from models.lifecycle import Action
from settings import Settings
from stores import Stores, data_keys
from tests.scenario import finished, submitted
from worker import build_worker
from workflows.registry import WORKFLOWS, workflow_runner


def key(seed: str) -> str:
    return base64.b64encode(seed.encode().ljust(32, b"-")[:32]).decode()


OLD = f"old:{key('an old key')}"
NEW = f"new:{key('a new key')}"


def settings_with(base_settings: Settings, keys: str) -> Settings:
    return base_settings.model_copy(update={"payload_encryption_keys": SecretStr(keys)})


def codec_for(base_settings: Settings, stores: Stores, keys: str) -> EncryptionCodec:
    return encryption.codec(settings_with(base_settings, keys), stores.commerce)


def for_request(codec: EncryptionCodec, onboarding_id: str) -> EncryptionCodec:
    context = WorkflowSerializationContext("default", onboarding_workflow_id(onboarding_id))
    return codec.with_context(context)


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


async def test_a_payload_is_ciphertext_naming_its_key_and_reads_back(
    base_settings: Settings, stores: Stores
) -> None:
    codec = codec_for(base_settings, stores, f"{NEW},{OLD}")

    (sealed,) = await codec.encode([plain("giulia@contoso.example")])

    assert sealed.metadata["encoding"] == ENCODING and sealed.metadata[KEY_ID] == b"new"
    assert b"giulia" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [plain("giulia@contoso.example")]


async def test_a_requests_payloads_take_its_own_key_made_on_first_use(
    base_settings: Settings, stores: Stores
) -> None:
    onboarding_id = uuid.uuid4().hex[:16]
    codec = codec_for(base_settings, stores, NEW)
    assert data_keys.read(stores.commerce, onboarding_id) is None

    (sealed,) = await for_request(codec, onboarding_id).encode([plain("Giulia")])

    assert sealed.metadata[KEY_ID] == f"{REQUEST_KEY}{onboarding_id}".encode()
    kept = data_keys.read(stores.commerce, onboarding_id)
    assert kept is not None and kept.master_key_id == "new" and kept.wrapped_key
    # Another process, with no context, reads it from the store.
    elsewhere = codec_for(base_settings, stores, NEW)
    assert await elsewhere.decode([sealed]) == [plain("Giulia")]
    # Any other workflow's payloads are the master key's.
    other = codec.with_context(WorkflowSerializationContext("default", "partner-user-abc"))
    assert (await other.encode([plain("x")]))[0].metadata[KEY_ID] == b"new"


async def test_the_data_converter_in_a_requests_context_encrypts_under_its_key_and_shares_the_rest(
    base_settings: Settings, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Made for each activity command and task: only the codec changes, nothing is rebuilt."""
    onboarding_id = uuid.uuid4().hex[:16]
    converter = data_converter(settings_with(base_settings, NEW), stores.commerce)
    context = WorkflowSerializationContext("default", onboarding_workflow_id(onboarding_id))
    built: list[PayloadConverter] = []
    build = PayloadConverter.__init__

    def counted(self: PayloadConverter) -> None:
        built.append(self)
        build(self)

    monkeypatch.setattr(PayloadConverter, "__init__", counted)

    in_context = converter.with_context(context)

    assert built == []
    assert type(in_context) is type(converter)
    assert in_context.payload_converter is converter.payload_converter
    assert in_context.failure_converter is converter.failure_converter
    (sealed,) = await in_context.encode(["Giulia"])
    assert sealed.metadata[KEY_ID] == f"{REQUEST_KEY}{onboarding_id}".encode()
    assert await converter.decode([sealed], [str]) == ["Giulia"]
    # No request, no key of its own: the converter itself.
    no_request = WorkflowSerializationContext("default", "partner-user-abc")
    assert converter.with_context(no_request) is converter


async def test_a_destroyed_key_reads_and_writes_nothing_more(
    base_settings: Settings, stores: Stores
) -> None:
    onboarding_id = uuid.uuid4().hex[:16]
    codec = for_request(codec_for(base_settings, stores, NEW), onboarding_id)
    (sealed,) = await codec.encode([plain("Giulia")])
    elsewhere = codec_for(base_settings, stores, NEW)
    assert await elsewhere.decode([sealed]) == [plain("Giulia")]

    assert codec.data_keys.destroy(onboarding_id)

    with pytest.raises(RequestErased):
        await codec.decode([sealed])
    with pytest.raises(RequestErased):
        await codec.encode([plain("again")])
    # A process that held the key stops using it once it reads the store again.
    elsewhere.data_keys._held[onboarding_id].read_at -= encryption.KEY_CACHE_SECONDS
    with pytest.raises(RequestErased):
        await elsewhere.decode([sealed])
    assert not codec.data_keys.destroy(onboarding_id)


async def test_payloads_written_in_clear_pass_through_saying_so(
    base_settings: Settings, stores: Stores
) -> None:
    codec = codec_for(base_settings, stores, NEW)
    written_before = [plain("Giulia"), Payload(metadata={"encoding": b"binary/null"})]

    read = await codec.decode(written_before)

    # Said, so that a workflow refuses an Update that arrives so (test_forged_updates).
    assert [payload.metadata.pop(encryption.ARRIVED) for payload in read] == [
        encryption.IN_CLEAR
    ] * 2
    assert read == written_before


async def test_tampered_or_foreign_ciphertext_is_refused(
    base_settings: Settings, stores: Stores
) -> None:
    codec = codec_for(base_settings, stores, f"{NEW},{OLD}")
    (sealed,) = await codec.encode([plain("Giulia")])
    flipped = Payload()
    flipped.CopyFrom(sealed)
    flipped.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata[KEY_ID] = b"old"
    unknown = Payload()
    unknown.CopyFrom(sealed)
    unknown.metadata[KEY_ID] = b"gone"

    for bad in (flipped, relabelled, unknown, Payload(metadata={"encoding": ENCODING})):
        with pytest.raises(UnreadablePayload):
            await codec.decode([bad])


async def test_rotation_the_new_key_encrypts_the_old_one_still_reads(
    base_settings: Settings, stores: Stores
) -> None:
    onboarding_id = uuid.uuid4().hex[:16]
    before = codec_for(base_settings, stores, OLD)
    (by_master,) = await before.encode([plain("Giulia")])
    (by_request,) = await for_request(before, onboarding_id).encode([plain("Rossi")])
    rotated = codec_for(base_settings, stores, f"{NEW},{OLD}")

    assert await rotated.decode([by_master, by_request]) == [plain("Giulia"), plain("Rossi")]
    assert (await rotated.encode([plain("x")]))[0].metadata[KEY_ID] == b"new"
    # Wrapped again under the new key, the request's key no longer needs the old one.
    assert rotated.data_keys.rewrap() >= 1
    only_new = codec_for(base_settings, stores, NEW)
    assert await only_new.decode([by_request]) == [plain("Rossi")]
    with pytest.raises(UnreadablePayload):
        await only_new.decode([by_master])


def test_the_keys_setting_is_checked_when_read(base_settings: Settings) -> None:
    for wrong in ("k1", "k1:short", f"{OLD},{OLD}", "bad id:" + key("x"), ""):
        with pytest.raises(ValidationError):
            Settings(_env_file=None, payload_encryption_keys=wrong)  # type: ignore[call-arg]
    url_safe = base64.urlsafe_b64encode(b"\xfb" * 32).decode()
    assert Settings(_env_file=None, payload_encryption_keys=f"k:{url_safe}")  # type: ignore[call-arg]


def test_unset_a_key_is_made_once_and_kept(
    base_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encryption, "KEYS_FILE", tmp_path / "var" / "payload-encryption.keys")
    unset = base_settings.model_copy(update={"payload_encryption_keys": None})

    first, again = encryption.master_keys(unset), encryption.master_keys(unset)

    assert first == again and len(next(iter(first.values()))) == 32
    assert (tmp_path / "var" / "payload-encryption.keys").stat().st_mode & 0o077 == 0


async def test_a_history_written_under_an_old_key_replays_and_reads_under_the_new(
    client: Client,
    settings: Settings,
    stores: Stores,
    activity_executor: ThreadPoolExecutor,
) -> None:
    old = settings_with(settings, OLD)
    old_client = Client(
        client.service_client,
        namespace=client.namespace,
        data_converter=data_converter(old, stores.commerce),
    )
    async with build_worker(old_client, old, stores, activity_executor):
        current = await submitted(old_client, old)
        await decide(old_client, current.onboarding_id, Action.CANCEL, actor="rep:mario")
        await finished(old_client, current)
    history = await client.get_workflow_handle(
        onboarding_workflow_id(current.onboarding_id)
    ).fetch_history()

    rotated = data_converter(settings_with(settings, f"{NEW},{OLD}"), stores.commerce)
    await Replayer(
        workflows=WORKFLOWS, data_converter=rotated, workflow_runner=workflow_runner()
    ).replay_workflow(history)
    assert rotated.payload_codec is not None
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads
    (read,) = await rotated.payload_codec.decode(list(started))
    assert current.email.encode() in read.data

    forgotten = data_converter(settings_with(settings, NEW), stores.commerce)
    with pytest.raises(UnreadablePayload):
        assert forgotten.payload_codec is not None
        await forgotten.payload_codec.decode(list(started))
    assert codec_of(client).data_keys.exists(current.onboarding_id)
