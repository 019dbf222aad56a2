"""The command line for people and scripts: submit requests, decide them, read their status,
erase their personal data.

Exit status: 0 done; 1 the request failed; 2 bad input; 3 the action is not allowed in
the request's current stage, or the submission is refused by the re-apply policy (the
date from which the email may apply is named; an approved email is already a partner);
4 no such request; 5 Temporal cannot be reached; 6 recorded but not yet confirmed (no
worker has taken it up): run the same command with the same --key to learn the outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client
from temporalio.service import RPCError

from client import deployment
from client.connection import (
    Connection,
    NotYetConfirmed,
    OnboardingError,
    TemporalUnavailable,
    exit_process,
)
from client.personal_data import erase_personal_data
from client.requests import (
    RequestNotFound,
    current_status,
    decide,
    hold,
    resume,
    status,
    submission_id,
    submit,
    wait_until_recorded,
)
from infra import encryption
from models.decision_words import HOLD_NOTE_WORDS, NOTE_WORDS, REASON_WORDS, StaffReasonCode
from models.lifecycle import STAFF_REASON_CODES, TRANSITIONS, Action, Refused, Stage
from models.requests import IDEMPOTENCY_KEY, OnboardingRequest
from models.workflow_io import SubmitResult
from settings import Settings, describe, get_settings
from stores import Stores, dual_write
from stores.migrations import NotMigrated
from stores.reapply import ApplyRefused, check_may_apply

(
    EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_ALLOWED, EXIT_NOT_FOUND, EXIT_UNAVAILABLE,
    EXIT_NOT_CONFIRMED,
) = (0, 1, 2, 3, 4, 5, 6)  # fmt: skip


class SubmitOutput(SubmitResult):
    stage: Stage


class Rewrapped(BaseModel):
    rewrapped: int


class UsageError(Exception):
    pass


class StoreUnreadable(OnboardingError):
    """The Commerce store cannot be read, so whether the email may apply is unknown."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


# What a person typed: the installed console command, or `python starter.py` in a checkout.
CONSOLE_COMMAND = "b2b-onboarding"
PROG = CONSOLE_COMMAND if os.path.basename(sys.argv[0]) == CONSOLE_COMMAND else "starter.py"
KEY_HELP = "makes a retry the same submission or decision (default: a new one)"
REASON_CODE_HELP = "why it is turned down, for staff and reports (default: other): " + ", ".join(
    f"{code.value} ({code.label})" for code in STAFF_REASON_CODES
)
_reason_code = TypeAdapter(StaffReasonCode)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[1],
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    submit_command = commands.add_parser("submit", help="submit an onboarding request")
    submit_command.add_argument("--company", required=True)
    submit_command.add_argument("--first-name", required=True)
    submit_command.add_argument("--last-name", required=True)
    submit_command.add_argument("--email", required=True)
    submit_command.add_argument("--phone")
    submit_command.add_argument("--job-title")
    submit_command.add_argument("--website")
    submit_command.add_argument("--company-address")
    submit_command.add_argument("--company-phone")
    submit_command.add_argument("--locale", default="en")
    submit_command.add_argument("--comments")
    submit_command.add_argument("--key", type=_key, help=KEY_HELP)

    for action in Action:
        decide_command = commands.add_parser(action.value, help=f"{action.value} a request")
        decide_command.add_argument("onboarding_id", metavar="ID")
        if TRANSITIONS[action].takes_reason:
            decide_command.add_argument("--reason", metavar="TEXT", help=REASON_WORDS)
            decide_command.add_argument(
                "--reason-code",
                metavar="CODE",
                choices=[code.value for code in STAFF_REASON_CODES],
                help=REASON_CODE_HELP,
            )
        decide_command.add_argument("--note", metavar="TEXT", help=f"internal note: {NOTE_WORDS}")
        decide_command.add_argument(
            "--actor", default=f"cli:{getpass.getuser()}", help="who decides"
        )
        decide_command.add_argument("--key", type=_key, help=KEY_HELP)

    hold_command = commands.add_parser(
        "hold", help="put an undecided request on hold: no reminders, no expiry"
    )
    hold_command.add_argument("onboarding_id", metavar="ID")
    hold_command.add_argument("--note", metavar="TEXT", required=True, help=HOLD_NOTE_WORDS)
    resume_command = commands.add_parser(
        "resume", help="take a request off hold: its reminders and expiry run again"
    )
    resume_command.add_argument("onboarding_id", metavar="ID")
    for command in (hold_command, resume_command):
        command.add_argument("--actor", default=f"cli:{getpass.getuser()}", help="who does it")
        command.add_argument("--key", type=_key, help=KEY_HELP)

    status_command = commands.add_parser("status", help="show where a request stands")
    status_command.add_argument("onboarding_id", metavar="ID")

    erase_command = commands.add_parser(
        "erase", help="erase a decided request's personal data (a Commerce admin's word)"
    )
    erase_command.add_argument("onboarding_id", metavar="ID")
    erase_command.add_argument("--reason", required=True, help="why, for the record")
    erase_command.add_argument("--actor", default=f"cli:{getpass.getuser()}", help="who erases")

    sync_command = commands.add_parser(
        "dual-write-initial-sync",
        help="bring accounts, contacts and customers written before dual-write in step, once"
        " (resumable: run it again after an interruption); prints what it did",
    )
    sync_command.add_argument("--actor", default=f"cli:{getpass.getuser()}", help="who runs it")

    deploy_command = commands.add_parser(
        "deploy",
        help="Worker Versioning: what is open on each build, make a build current or ramp"
        " it, move waiting requests to this build",
    )
    deploy = deploy_command.add_subparsers(dest="deploy", required=True, parser_class=_Parser)
    deploy.add_parser(
        "status",
        help="per build: its state (current, ramping, draining, drained: its workers may"
        " stop) and the workflows still open on it, by type and stage, since when",
    )
    current_command = deploy.add_parser(
        "current", help="make a build current: every new request starts on it"
    )
    current_command.add_argument("build_id", metavar="BUILD")
    ramp_command = deploy.add_parser(
        "ramp", help="start PERCENT of new requests on a build, the rest on the current one"
    )
    ramp_command.add_argument("build_id", metavar="BUILD")
    ramp_command.add_argument("percentage", metavar="PERCENT", type=_percentage)
    move_command = deploy.add_parser(
        "move",
        help="move the requests pinned to an old build to this one, each only if its"
        " history replays on this build's code (those that do not stay, and say why)",
    )
    move_command.add_argument(
        "from_build",
        metavar="BUILD",
        help="a build id, or `unversioned`: the requests of the releases before Worker Versioning",
    )
    move_command.add_argument(
        "--workflow-id", action="append", default=[], help="only this one (repeatable)"
    )
    for command in (current_command, ramp_command):
        command.add_argument("--actor", default=f"cli:{getpass.getuser()}", help="who deploys")

    commands.add_parser(
        "rewrap-keys",
        help="wrap every request's data key with the first PAYLOAD_ENCRYPTION_KEYS key"
        " (after a rotation, so the older keys can go)",
    )
    return parser


async def run(
    argv: Sequence[str], client: Client | None = None, settings: Settings | None = None
) -> int:
    """Run one command; tests pass their own client and settings."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "submit":
            request = OnboardingRequest(
                **{
                    field: getattr(args, field)
                    for field in OnboardingRequest.model_fields
                    if getattr(args, field, None) is not None
                }
            )
        try:
            settings = settings or get_settings()
        except ValidationError as err:
            # The environment's, not the command's: named as the variables are.
            return _fail(EXIT_BAD_INPUT, describe(err))
        temporal = Connection(settings, client)
        key = getattr(args, "key", None) or uuid.uuid4().hex
        result: BaseModel
        if args.command == "submit":
            await _may_apply(settings, request, f"cli:{key}")
            client = await temporal.get()
            submitted = await submit(client, request, settings, idempotency_key=f"cli:{key}")
            # So that a decision typed right after `submit` finds the lead in place.
            recorded = await wait_until_recorded(client, submitted.onboarding_id)
            result = SubmitOutput(**submitted.model_dump(), stage=recorded.stage)
        elif args.command == "deploy":
            result = await _deploy(args, settings, temporal)
        elif args.command == "rewrap-keys":
            stores = Stores.from_settings(settings)
            try:
                keys = encryption.codec(settings, stores.commerce).data_keys
                result = Rewrapped(rewrapped=await asyncio.to_thread(keys.rewrap))
            finally:
                stores.dispose()
        elif args.command == "dual-write-initial-sync":
            stores = Stores.from_settings(settings)
            try:
                engines = dual_write.engines_of(stores.sales, stores.commerce)
                result = await asyncio.to_thread(
                    dual_write.initial_sync, engines, args.actor, datetime.now(UTC)
                )
            finally:
                stores.dispose()
        elif args.command in ("status", "erase"):
            stores = Stores.from_settings(settings)
            try:
                if args.command == "status":
                    result = await current_status(temporal, stores, args.onboarding_id)
                else:
                    result = await erase_personal_data(
                        await temporal.get(),
                        stores,
                        args.onboarding_id,
                        actor=args.actor,
                        reason=args.reason,
                    )
            finally:
                stores.dispose()
        elif args.command == "hold":
            await hold(
                await temporal.get(),
                args.onboarding_id,
                actor=args.actor,
                note=args.note,
                hold_id=f"cli:hold:{key}",
            )
            result = await status(await temporal.get(), args.onboarding_id)
        elif args.command == "resume":
            await resume(
                await temporal.get(),
                args.onboarding_id,
                actor=args.actor,
                resume_id=f"cli:resume:{key}",
            )
            result = await status(await temporal.get(), args.onboarding_id)
        else:
            code = getattr(args, "reason_code", None)
            await decide(
                await temporal.get(),
                args.onboarding_id,
                Action(args.command),
                actor=args.actor,
                reason=getattr(args, "reason", None),
                decision_id=f"cli:{args.command}:{key}",
                reason_code=_reason_code.validate_python(code) if code else None,
                note=args.note,
            )
            # The Updates answer with where the request stands; the command prints all of it.
            result = await status(await temporal.get(), args.onboarding_id)
    except UsageError as err:
        return _fail(EXIT_BAD_INPUT, str(err))
    except ValidationError as err:
        return _fail(EXIT_BAD_INPUT, _one_line(err))
    except (Refused, ApplyRefused) as err:
        return _fail(EXIT_NOT_ALLOWED, str(err))
    except RequestNotFound as err:
        return _fail(EXIT_NOT_FOUND, str(err))
    except (TemporalUnavailable, StoreUnreadable, SQLAlchemyError) as err:
        # A store the command could not use: named as what it is when it is not this
        # release's (a fresh, empty file where the command line was run, say).
        unusable = None if settings is None else await _unusable_store(settings, err)
        if unusable is not None:
            return _fail(EXIT_UNAVAILABLE, unusable)
        if isinstance(err, TemporalUnavailable):
            return _fail(EXIT_UNAVAILABLE, str(err))
        return _fail(EXIT_FAILED, str(err))
    except NotYetConfirmed as err:
        return _fail(
            EXIT_NOT_CONFIRMED,
            f"{args.command}: {err}; run the same command with --key {key} to learn the outcome",
        )
    except (OnboardingError, deployment.DeploymentError) as err:
        return _fail(EXIT_FAILED, str(err))
    except Exception as err:  # a person reads this: one line, never a traceback
        return _fail(EXIT_FAILED, f"unexpected {type(err).__name__}: {err}")
    print(result.model_dump_json(indent=2))
    return EXIT_OK


async def _deploy(args: argparse.Namespace, settings: Settings, temporal: Connection) -> BaseModel:
    client = await temporal.get()
    try:
        return await _deploy_with(client, args, settings)
    except RPCError as err:
        raise deployment.DeploymentError(f"Temporal refuses: {err.message}") from err


async def _deploy_with(client: Client, args: argparse.Namespace, settings: Settings) -> BaseModel:
    if args.deploy == "current":
        await deployment.make_current(client, settings, args.build_id, args.actor)
    elif args.deploy == "ramp":
        await deployment.ramp(client, settings, args.build_id, args.percentage, args.actor)
    elif args.deploy == "move":
        return await deployment.move(client, settings, args.from_build, only=args.workflow_id)
    return await deployment.report(client, settings)


async def _unusable_store(settings: Settings, err: BaseException) -> str | None:
    """What is wrong with the stores behind `err` (a store's error, or Commerce not giving a
    request's data key), when one is empty or at another release's migration."""
    if isinstance(err, TemporalUnavailable) and not isinstance(
        err.__cause__, encryption.KeyStoreUnavailable
    ):
        # Temporal's own failure, which stands even when the stores could not say either.
        return None
    stores = Stores.from_settings(settings)
    try:
        await asyncio.to_thread(stores.ensure_current)
    except NotMigrated as unusable:
        return str(unusable)
    except SQLAlchemyError:
        return None
    finally:
        stores.dispose()
    return None


async def _may_apply(settings: Settings, request: OnboardingRequest, key: str) -> None:
    """The re-apply policy, asked of the Commerce store before anything is submitted."""
    stores = Stores.from_settings(settings)
    try:
        await asyncio.to_thread(
            check_may_apply,
            stores.commerce,
            request.email,
            settings.reapply_cooldown,
            settings.b2b_site_url,
            submission=submission_id(key, request.email),
        )
    except SQLAlchemyError as err:
        raise StoreUnreadable(
            f"cannot read the Commerce store to apply the re-apply policy: {err}"
        ) from err
    finally:
        stores.dispose()


def _key(value: str) -> str:
    if not re.match(IDEMPOTENCY_KEY, value):
        raise argparse.ArgumentTypeError("8 to 128 printable ASCII characters, no spaces")
    return value


def _percentage(value: str) -> float:
    try:
        percentage = float(value)
    except ValueError:
        percentage = -1
    if not 0 <= percentage <= 100:
        raise argparse.ArgumentTypeError("a percentage from 0 to 100")
    return percentage


def _one_line(err: ValidationError) -> str:
    return "; ".join(
        f"--{'.'.join(str(part) for part in e['loc']).replace('_', '-')}: {e['msg']}"
        for e in err.errors()
    )


def _fail(code: int, reason: str) -> int:
    print(f"{PROG}: {' '.join(reason.split())}", file=sys.stderr)
    return code


def main() -> None:
    exit_process(asyncio.run(run(sys.argv[1:])))


if __name__ == "__main__":
    main()
