"""How every client and worker of the product reads and writes Temporal's payloads:
pydantic, encrypted (`infra.encryption`), and an Update the product did not send
refused as it arrives.
"""

from __future__ import annotations

import contextlib
import copy
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Self

from pydantic import TypeAdapter
from sqlalchemy import Engine
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
    SerializationContext,
    WithSerializationContext,
)
from temporalio.exceptions import ApplicationError

from infra import encryption
from models.requests import STORED
from settings import Settings
from stores.engine import make_engine


class _StoredJSON(PydanticJSONPlainPayloadConverter):
    """Pydantic JSON, read back under the STORED context (see models.requests)."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        hint = type_hint if type_hint is not None else Any
        try:
            adapter = self._type_adapter(hint)
        except TypeError:
            # An unhashable hint, which the adapter cache cannot hold.
            adapter = TypeAdapter(hint)
        return adapter.validate_json(payload.data, context={STORED: True})


@cache
def _encoding_converters() -> tuple[EncodingPayloadConverter, ...]:
    """One set per process, shared as the SDK shares its defaults: the worker makes a
    payload converter for every workflow activation, and a `_StoredJSON` of its own each
    time would start with an empty cache of pydantic type adapters, built anew (the
    costliest part of a payload's conversion) for every payload of every activation."""
    return tuple(
        _StoredJSON() if isinstance(converter, JSONPlainPayloadConverter) else converter
        for converter in DefaultPayloadConverter.default_encoding_payload_converters
    )


class PayloadConverter(CompositePayloadConverter):
    """The SDK's converters, with pydantic's JSON read back under the STORED context, and
    an Update the product did not send refused as it arrives."""

    def __init__(self) -> None:
        super().__init__(*_encoding_converters())

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        _refuse_an_update_not_sent_by_the_product(payloads)
        values = super().from_payloads(payloads, type_hints)
        for payload, value in zip(payloads, values, strict=True):
            if encryption.ARRIVED in payload.metadata:
                _remember_arrived_elsewhere(value)
        return values


# Values read from payloads the product did not send (in clear, or through the codec
# endpoint), by identity while each lives: a signal's are read before its workflow runs
# its handler, outside it, so the worker's interceptor asks here (worker.py).
_ARRIVED_ELSEWHERE: dict[int, weakref.ref[Any]] = {}


def _remember_arrived_elsewhere(value: Any) -> None:
    key = id(value)
    with contextlib.suppress(TypeError):  # a str or None: no signal of ours takes one
        _ARRIVED_ELSEWHERE[key] = weakref.ref(value, lambda _: _ARRIVED_ELSEWHERE.pop(key, None))


def arrived_elsewhere(value: Any) -> bool:
    """Whether `value` was read from a payload the product did not send."""
    held = _ARRIVED_ELSEWHERE.get(id(value))
    return held is not None and held() is value


def _refuse_an_update_not_sent_by_the_product(payloads: Sequence[Payload]) -> None:
    """An Update is a person's action through the web app or the command line, which sign
    them in, check their role and encrypt it. One written in clear (the `temporal` CLI
    without the codec) or encrypted by the codec endpoint would skip all that, with any
    actor typed in: the workflow refuses it when it arrives, before its validator. A replay
    reads what its history holds (written in clear before encryption, or accepted since)."""
    if not any(encryption.ARRIVED in payload.metadata for payload in payloads):
        return
    if not workflow.in_workflow() or workflow.current_update_info() is None:
        return
    if workflow.unsafe.is_replaying():
        return
    raise ApplicationError(
        "refused: an Update comes encrypted from the product's web app or command line, not"
        " in clear or through the codec endpoint",
        type=UPDATE_NOT_FROM_THE_PRODUCT,
        non_retryable=True,
    )


def data_converter(
    settings: Settings,
    commerce: Engine | Callable[[], Engine] | None = None,
    codec: encryption.EncryptionCodec | None = None,
) -> DataConverter:
    """How every client and worker of the product talks to Temporal.

    Pydantic's converter, but what comes back from Temporal is not judged again by the
    edge's rules (a workflow started before a rule tightened still replays); every
    payload encrypted (`infra/encryption.py`: `codec`, or one keeping each request's key in
    this Commerce store, the settings' when none is given); failure messages and stack
    traces moved into an encrypted payload too.
    """
    if codec is None:
        codec = encryption.codec(
            settings, commerce or (lambda: _commerce_engine(settings.commerce_database_url))
        )
    return _DataConverter(
        payload_converter_class=PayloadConverter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


@dataclass(frozen=True)
class _DataConverter(DataConverter):
    """The SDK's data converter, copied rather than rebuilt for a serialization context.

    The worker asks for one per activity command and activity task (the codec takes the
    request's key from the context's workflow id), and the SDK's `dataclasses.replace`
    runs `__post_init__`, making a payload converter and a failure converter only to
    drop them: a sixth of the worker's CPU per won onboarding under py-spy
    (docs/performance.md). The same components are asked for their context as there.
    """

    def with_context(self, context: SerializationContext) -> Self:
        changed = {}
        for name in ("payload_converter", "payload_codec", "failure_converter", "external_storage"):
            component = getattr(self, name)
            if isinstance(component, WithSerializationContext):
                in_context = component.with_context(context)
                if in_context is not component:
                    changed[name] = in_context
        if not changed:
            return self
        cloned = copy.copy(self)
        for name, component in changed.items():
            object.__setattr__(cloned, name, component)
        return cloned


@cache
def _commerce_engine(url: str) -> Engine:
    """Commerce for a client made without the stores (the command line): one per process."""
    return make_engine(url)


# The refusal of an Update that did not come from the product's own clients.
UPDATE_NOT_FROM_THE_PRODUCT = "UPDATE_NOT_FROM_THE_PRODUCT"


def codec_of(client: Client) -> encryption.EncryptionCodec:
    codec = client.data_converter.payload_codec
    if not isinstance(codec, encryption.EncryptionCodec):
        raise TypeError("this client does not encrypt its payloads (see data_converter)")
    return codec
