"""The onboarding lifecycle, declared once: its stages, the actions that move a request
between them, who may take each, whether it takes a reason, and the words people read.

The workflow's validator, the API, the pages, the command line, the roles and the
status rebuilt from the stores all read these tables. A new stage or action is declared
here and given its step in the workflow (and, when a store row keeps it, its
`recorded_as`); nothing else changes.

One thing, one name: the CONTRACT's. Where code still says otherwise, the name is
recorded in Temporal histories (activity and workflow names, payload types) or stored
in a table, and stays:

- `cancel`, the action ("Cancel", "Lead cancelled", "Cancelled by" on the timeline),
  leaves the lead `disqualified`: the Sales table's value, which the lead's page and
  its timeline note's kind show. Its activity stays registered as `disqualify_lead`,
  taking `DisqualifyLeadInput`.
- `qualify` leaves the lead `qualified` (activity `qualify_lead`); `won` and `lost`
  close the opportunity with that status (activity `close_opportunity`).
- `approve` and `reject` decide the prospect (`approve_prospect`, `reject_prospect`),
  as every final decision does: the prospect's status is the request's outcome.
- A refused decision, hold, resume or erasure is one error, `Refused`: what the
  workflow's validators raise and what the client raises for its callers, with the
  stage and the `RefusalKind` in its details. Its ApplicationError type stays
  `DecisionNotAllowed`, the name recorded before holds and erasure existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from temporalio.exceptions import ApplicationError

# The `type` of the ApplicationError a refusal is (`Refused`), and how the client knows
# it; older workers and clients know it by this name, so it stays as it is.
DECISION_NOT_ALLOWED = "DecisionNotAllowed"


def N_(message: str) -> str:
    """Marks a requester's words for the pages' catalogues (babel.cfg); the page translates."""
    return message


class Stage(StrEnum):
    SUBMITTED = "submitted"
    LEAD_OPEN = "lead_open"
    OPPORTUNITY_OPEN = "opportunity_open"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REJECTED = "rejected"

    @property
    def decided(self) -> bool:
        """Final: the prospect is approved or rejected."""
        return STAGES[self].prospect_status is not ProspectStatus.PENDING


class Action(StrEnum):
    QUALIFY = "qualify"
    CANCEL = "cancel"
    WON = "won"
    LOST = "lost"
    APPROVE = "approve"
    REJECT = "reject"


class EmailKind(StrEnum):
    REQUEST_RECEIVED = "request_received"
    STATUS_LINK_REMINDER = "status_link_reminder"
    # To the sales or Commerce team, not the requester: a request waits on them.
    TEAM_REMINDER = "team_reminder"
    PROSPECT_APPROVED = "prospect_approved"
    PROSPECT_REJECTED = "prospect_rejected"
    # The email of a decided request applied again: what it may do (sign in, or apply
    # again from a date), told to the address rather than to whoever applied.
    APPLIED_AGAIN = "applied_again"

    @property
    def event(self) -> str:
        """The `X-Onboarding-Event` header value."""
        return self.value.replace("_", "-")

    @property
    def to_requester(self) -> bool:
        """In the requester's language, to their address (all but the team reminder)."""
        return self is not EmailKind.TEAM_REMINDER


class ReasonCode(StrEnum):
    """Why a request was turned down: on the prospect (and the lead or opportunity), in
    status, in the Temporal history, filterable in All prospects. Staff choose any but
    `expired`, which only the system gives (the request outlived `EXPIRE_AFTER`)."""

    CANNOT_CONTACT = "cannot_contact"
    NO_LONGER_INTERESTED = "no_longer_interested"
    NOT_ELIGIBLE = "not_eligible"
    DUPLICATE = "duplicate"
    OTHER = "other"
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        return REASON_CODE_LABELS[self]


REASON_CODE_LABELS: dict[ReasonCode, str] = {
    ReasonCode.CANNOT_CONTACT: "Cannot contact them",
    ReasonCode.NO_LONGER_INTERESTED: "No longer interested",
    ReasonCode.NOT_ELIGIBLE: "Not eligible",
    ReasonCode.DUPLICATE: "Duplicate request",
    ReasonCode.OTHER: "Other",
    ReasonCode.EXPIRED: "Expired (no decision in time)",
}
# What a rep or admin may choose; `expired` is the system's.
STAFF_REASON_CODES: tuple[ReasonCode, ...] = tuple(
    c for c in ReasonCode if c is not ReasonCode.EXPIRED
)
# The actor of the system's own decisions (expiry).
SYSTEM_ACTOR = "system"
# Actors as the command line and other tools record them (`cli:<login>`, `partner:<id>`),
# as people read them; any other `kind:` prefix (`rep:mario`) is dropped for the name.
_ACTOR_KINDS = {"cli": "{name} (command line)", "partner": "a partner's administrator"}


def actor_words(actor: str) -> str:
    """Who decided or changed something, for people: `rep:mario` → "mario",
    `cli:anna` → "anna (command line)", `system` → "the system"."""
    if actor == SYSTEM_ACTOR:
        return "the system"
    kind, colon, name = actor.partition(":")
    if not colon or not name or not kind.isalpha():
        return actor
    return _ACTOR_KINDS.get(kind, "{name}").format(name=name)


class Role(StrEnum):
    """Who decides: a user's role in `API_TOKENS`."""

    SALES_REP = "sales_rep"
    COMMERCE_ADMIN = "commerce_admin"

    @property
    def words(self) -> str:
        """The role as the staff pages name the signed-in user's: "Sales rep"."""
        return ROLE_WORDS[self]


ROLE_WORDS: dict[Role, str] = {Role.SALES_REP: "Sales rep", Role.COMMERCE_ADMIN: "Commerce admin"}


class ProspectStatus(StrEnum):
    """The Commerce prospect's `status`: how *All prospects* shows a request's stage."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class StaffPage:
    """The staff page of one of a request's records: `path` with the id that `record`
    (a `RecordIds` field) holds, and the record as the pages name it."""

    path: str
    record: str
    name: str


PROSPECT_PAGE = StaffPage("/commerce/prospects/{id}", "prospect_id", "prospect")


@dataclass(frozen=True)
class StageInfo:
    # For admins, in the Temporal UI's details (Markdown).
    waiting_for: str
    # For the requester, on their status page (translated): a sentence, and the badge's
    # name where staff pages show the stage's own (`STAGE_WORDS`), in the requester's
    # words: no lead or opportunity, which are the sales team's.
    requester_words: str
    requester_name: str
    prospect_status: ProspectStatus
    # Where staff see the request in this stage and make its move (a reminder links
    # there); the prospect's page until that record exists.
    staff_page: StaffPage = PROSPECT_PAGE
    # The email that tells the requester a request ended here.
    ending_email: EmailKind | None = None


@dataclass(frozen=True)
class Transition:
    """One action: where it is allowed, where it leads, who takes it, in what words."""

    action: Action
    allowed_in: Stage
    leads_to: Stage
    role: Role
    takes_reason: bool
    # Its button on the Sales or Commerce page, and what the page says once it is applied.
    button: str
    done: str
    # The store row that keeps the decision, and the status it leaves there (CONTRACT).
    recorded_as: tuple[str, str]

    @property
    def rejects(self) -> bool:
        return self.leads_to is Stage.REJECTED


STAGES: dict[Stage, StageInfo] = {
    Stage.SUBMITTED: StageInfo(
        waiting_for="Recording the request in Commerce and Sales.",
        requester_words=N_("We have received your request and are recording it."),
        requester_name=N_("Received"),
        prospect_status=ProspectStatus.PENDING,
    ),
    Stage.LEAD_OPEN: StageInfo(
        waiting_for="Waiting for a sales rep to **qualify** or **cancel** the lead.",
        requester_words=N_("Our sales team is reviewing your request."),
        requester_name=N_("In review"),
        prospect_status=ProspectStatus.PENDING,
        staff_page=StaffPage("/sales/leads/{id}", "lead_id", "lead"),
    ),
    Stage.OPPORTUNITY_OPEN: StageInfo(
        waiting_for="Waiting for a sales rep to close the opportunity **won** or **lost**.",
        requester_words=N_("Our sales team is working with you on the partnership."),
        requester_name=N_("In discussion"),
        prospect_status=ProspectStatus.PENDING,
        staff_page=StaffPage("/sales/opportunities/{id}", "opportunity_id", "opportunity"),
    ),
    Stage.AWAITING_APPROVAL: StageInfo(
        waiting_for="Waiting for a Commerce admin to **approve** or **reject** it.",
        requester_words=N_("Your request is waiting for our approval."),
        requester_name=N_("Awaiting approval"),
        prospect_status=ProspectStatus.PENDING,
    ),
    Stage.APPROVED: StageInfo(
        waiting_for="Approved: the customer hierarchy is in Commerce.",
        requester_words=N_("Welcome aboard: your company is approved as a business partner."),
        requester_name=N_("Approved"),
        prospect_status=ProspectStatus.APPROVED,
        ending_email=EmailKind.PROSPECT_APPROVED,
    ),
    Stage.REJECTED: StageInfo(
        waiting_for="Rejected.",
        requester_words=N_(
            "We are sorry: we cannot take your company on as a partner at this time."
        ),
        requester_name=N_("Rejected"),
        prospect_status=ProspectStatus.REJECTED,
        ending_email=EmailKind.PROSPECT_REJECTED,
    ),
}

TRANSITIONS: dict[Action, Transition] = {
    transition.action: transition
    for transition in (
        Transition(
            action=Action.QUALIFY,
            allowed_in=Stage.LEAD_OPEN,
            leads_to=Stage.OPPORTUNITY_OPEN,
            role=Role.SALES_REP,
            takes_reason=False,
            button="Qualify",
            done="Lead qualified: the opportunity, contact and account are created.",
            recorded_as=("lead", "qualified"),
        ),
        Transition(
            action=Action.CANCEL,
            allowed_in=Stage.LEAD_OPEN,
            leads_to=Stage.REJECTED,
            role=Role.SALES_REP,
            takes_reason=True,
            button="Cancel",
            done="Lead cancelled: the prospect is rejected.",
            recorded_as=("lead", "disqualified"),
        ),
        Transition(
            action=Action.WON,
            allowed_in=Stage.OPPORTUNITY_OPEN,
            leads_to=Stage.APPROVED,
            role=Role.SALES_REP,
            takes_reason=False,
            button="Close as won",
            done="Opportunity won: the prospect is approved.",
            recorded_as=("opportunity", "won"),
        ),
        Transition(
            action=Action.LOST,
            allowed_in=Stage.OPPORTUNITY_OPEN,
            leads_to=Stage.REJECTED,
            role=Role.SALES_REP,
            takes_reason=True,
            button="Close as lost",
            done="Opportunity lost: the prospect is rejected.",
            recorded_as=("opportunity", "lost"),
        ),
        Transition(
            action=Action.APPROVE,
            allowed_in=Stage.AWAITING_APPROVAL,
            leads_to=Stage.APPROVED,
            role=Role.COMMERCE_ADMIN,
            takes_reason=False,
            button="Approve",
            done="Prospect approved: its customers and hierarchy are ready.",
            recorded_as=("prospect", "approved"),
        ),
        Transition(
            action=Action.REJECT,
            allowed_in=Stage.AWAITING_APPROVAL,
            leads_to=Stage.REJECTED,
            role=Role.COMMERCE_ADMIN,
            takes_reason=True,
            button="Reject",
            done="Prospect rejected.",
            recorded_as=("prospect", "rejected"),
        ),
    )
}


# Where a recorded request waits for its first decision, by the Sales integration mode
# it was recorded under: Sales works it as a lead, or a Commerce admin decides it.
FIRST_STAGES: dict[bool, Stage] = {True: Stage.LEAD_OPEN, False: Stage.AWAITING_APPROVAL}


def first_stage(sales_integration_enabled: bool) -> Stage:
    return FIRST_STAGES[sales_integration_enabled]


# Stages in which a request is recorded and waits on staff: it may be held and resumed.
WAITING_STAGES: frozenset[Stage] = frozenset(FIRST_STAGES.values()) | {Stage.OPPORTUNITY_OPEN}
DECIDED_STAGES: frozenset[Stage] = frozenset(stage for stage in Stage if stage.decided)


class Change(StrEnum):
    """What staff do to a request beside deciding it."""

    HOLD = "hold"
    RESUME = "resume"
    ERASE = "erase"


@dataclass(frozen=True)
class ChangeRule:
    """One change: in which stages it is allowed, by whom, and what it is called."""

    change: Change
    allowed_in: frozenset[Stage]
    roles: frozenset[Role]
    button: str


CHANGES: dict[Change, ChangeRule] = {
    rule.change: rule
    for rule in (
        # A hold stops the clocks of a request that waits on staff, whoever's move it is.
        ChangeRule(Change.HOLD, WAITING_STAGES, frozenset(Role), "Put on hold"),
        ChangeRule(Change.RESUME, WAITING_STAGES, frozenset(Role), "Resume"),
        # Only what is decided is erased: an undecided request still needs its contact.
        ChangeRule(
            Change.ERASE, DECIDED_STAGES, frozenset({Role.COMMERCE_ADMIN}), "Erase personal data"
        ),
    )
}


def change_allowed(change: Change, stage: Stage) -> bool:
    return stage in CHANGES[change].allowed_in


def transitions_from(stage: Stage) -> list[Transition]:
    """The actions allowed in `stage`, in the order their buttons are shown."""
    return [t for t in TRANSITIONS.values() if t.allowed_in is stage]


def decisions_in(stage: Stage | str | None, role: Role) -> list[Transition]:
    """The decisions `role` may take on a request in `stage` (none without one): the
    buttons and ticks a staff page shows."""
    if stage is None:
        return []
    return [t for t in transitions_from(Stage(stage)) if t.role is role]


ALLOWED_ACTIONS: dict[Stage, frozenset[Action]] = {
    stage: frozenset(t.action for t in transitions_from(stage)) for stage in Stage
}


def whose_move(stage: Stage) -> Role | None:
    """The role that moves an undecided request on from `stage` (and is reminded)."""
    return next((t.role for t in transitions_from(stage)), None)


TEAM_NAMES: dict[Role, str] = {Role.SALES_REP: "sales team", Role.COMMERCE_ADMIN: "Commerce team"}


def actions_of(role: Role) -> list[Action]:
    return [t.action for t in TRANSITIONS.values() if t.role is role]


_RECORDED = {t.recorded_as: t.action for t in TRANSITIONS.values()}


def recorded_decision(table: str, status: str) -> Action:
    """The decision a store row's status records: (`lead`, `disqualified`) is a cancel."""
    return _RECORDED[table, status]


def decided_stage(prospect_status: str) -> Stage | None:
    """The final stage a prospect's status shows; None while it is pending."""
    return next(
        (s for s, info in STAGES.items() if s.decided and info.prospect_status == prospect_status),
        None,
    )


# --- the staff pages' words ---------------------------------------------------------------

# A stage as a badge or a heading on the Sales and Commerce pages.
STAGE_WORDS: dict[Stage, str] = {
    Stage.SUBMITTED: "Being recorded",
    Stage.LEAD_OPEN: "Lead open",
    Stage.OPPORTUNITY_OPEN: "Opportunity open",
    Stage.AWAITING_APPROVAL: "Awaiting approval",
    Stage.APPROVED: "Approved",
    Stage.REJECTED: "Rejected",
}
# A stage inside a sentence: "the request is …".
_STAGE_IN_A_SENTENCE: dict[Stage, str] = {
    Stage.SUBMITTED: "still being recorded",
    Stage.LEAD_OPEN: "an open lead",
    Stage.OPPORTUNITY_OPEN: "an open opportunity now (its lead was qualified)",
    Stage.AWAITING_APPROVAL: "waiting for a Commerce admin's approval",
    Stage.APPROVED: "approved already",
    Stage.REJECTED: "rejected already",
}
# A store row's status, as its page and its list show it: the CONTRACT's values stay in
# the tables (a cancelled lead is `disqualified` there).
STATUS_WORDS: dict[tuple[str, str], str] = {
    ("lead", "open"): "Open",
    ("lead", "qualified"): "Qualified",
    ("lead", "disqualified"): "Cancelled",
    ("opportunity", "open"): "Open",
    ("opportunity", "won"): "Won",
    ("opportunity", "lost"): "Lost",
    ("prospect", ProspectStatus.PENDING): "Pending",
    ("prospect", ProspectStatus.APPROVED): "Approved",
    ("prospect", ProspectStatus.REJECTED): "Rejected",
}


def status_words(table: str, status: str) -> str:
    """`lead`, `disqualified` → "Cancelled"; a status no table declares, as it is."""
    return STATUS_WORDS.get((table, status), status.replace("_", " ").capitalize())


def stage_in_a_sentence(stage: Stage) -> str:
    """Where a request is, to follow "the request is": "an open lead"."""
    return _STAGE_IN_A_SENTENCE[stage]


class RefusalKind(StrEnum):
    """Why a decision or a change was refused: what a `Refused` carries in its details."""

    # The request's stage does not allow it.
    STAGE = "stage"
    # Another decision is being applied to the request right now.
    BEING_APPLIED = "being_applied"
    # A hold of a request on hold, a resume of one that is not.
    ON_HOLD = "on_hold"
    NOT_ON_HOLD = "not_on_hold"
    # Its personal data is erased already.
    ERASED = "erased"
    # The reason code is the system's (`expired`).
    SYSTEM_REASON = "system_reason"


# Why, in plain words, for the kinds the stage does not say.
_REFUSAL_WORDS: dict[RefusalKind, str] = {
    RefusalKind.BEING_APPLIED: "another decision on it is being applied right now",
    RefusalKind.ON_HOLD: "it is already on hold",
    RefusalKind.NOT_ON_HOLD: "it is not on hold",
    RefusalKind.ERASED: "its personal data is erased already",
    RefusalKind.SYSTEM_REASON: "the reason code expired is the system's to give",
}


class Refused(ApplicationError):
    """A decision, hold, resume or erasure the request does not allow now.

    The workflow's validators raise it, and the client raises it for its callers; the
    stage and the kind travel in its details (stage, kind), which callers read, never
    the message. A refusal of an older worker carries the stage alone: its kind is STAGE.
    """

    def __init__(self, message: str, stage: Stage, kind: RefusalKind = RefusalKind.STAGE) -> None:
        super().__init__(
            message, stage.value, kind.value, type=DECISION_NOT_ALLOWED, non_retryable=True
        )
        self.stage = stage
        self.kind = kind

    def __str__(self) -> str:
        # The words alone, as the API, the command line and the pages show them (an
        # ApplicationError's own string begins with its type).
        return self.message

    @classmethod
    def of(cls, failure: ApplicationError) -> Refused:
        """The refusal a workflow answered with, rebuilt from its details."""
        details: Sequence[object] = failure.details
        kind = RefusalKind(str(details[1])) if len(details) > 1 else RefusalKind.STAGE
        return cls(failure.message, Stage(str(details[0])), kind)

    @property
    def why(self) -> str:
        """Why, in plain words: "it is already on hold", "the request is an open lead"."""
        words = _REFUSAL_WORDS.get(self.kind)
        return words or f"the request is {stage_in_a_sentence(self.stage)}"


def refusal(action: Action, stage: Stage, kind: RefusalKind = RefusalKind.STAGE) -> str:
    """Why a decision was refused, in plain words: what the request is now, and what it
    allows instead."""
    button = TRANSITIONS[action].button
    if kind is RefusalKind.BEING_APPLIED:
        return (
            f"{button} was not applied: another decision on this request is being applied"
            " right now. Look again in a moment."
        )
    sentence = f"{button} is not possible: the request is {stage_in_a_sentence(stage)}."
    instead = [transition.button for transition in transitions_from(stage)]
    if instead:
        sentence += f" What it allows now: {' or '.join(instead)}."
    return sentence
