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
- A refused decision is an ApplicationError of type `DECISION_NOT_ALLOWED` in the
  workflow and `client.DecisionNotAllowed` for its callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# The `type` of the ApplicationError a refused decision raises in the workflow, and how
# the client knows it; recorded in histories, so it stays as it is.
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
class StageInfo:
    # For admins, in the Temporal UI's details (Markdown).
    waiting_for: str
    # For the requester, on their status page (translated): a sentence, and the badge's
    # name where staff pages show the stage's own (`STAGE_WORDS`), in the requester's
    # words: no lead or opportunity, which are the sales team's.
    requester_words: str
    requester_name: str
    prospect_status: ProspectStatus


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
    ),
    Stage.OPPORTUNITY_OPEN: StageInfo(
        waiting_for="Waiting for a sales rep to close the opportunity **won** or **lost**.",
        requester_words=N_("Our sales team is working with you on the partnership."),
        requester_name=N_("In discussion"),
        prospect_status=ProspectStatus.PENDING,
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
    ),
    Stage.REJECTED: StageInfo(
        waiting_for="Rejected.",
        requester_words=N_(
            "We are sorry: we cannot take your company on as a partner at this time."
        ),
        requester_name=N_("Rejected"),
        prospect_status=ProspectStatus.REJECTED,
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


def transitions_from(stage: Stage) -> list[Transition]:
    """The actions allowed in `stage`, in the order their buttons are shown."""
    return [t for t in TRANSITIONS.values() if t.allowed_in is stage]


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


def refusal(action: Action, stage: Stage) -> str:
    """Why a decision was refused, in plain words: what the request is now, and what it
    allows instead.

    A decision its stage allows is refused only while another one is being applied.
    """
    button = TRANSITIONS[action].button
    if action in ALLOWED_ACTIONS[stage]:
        return (
            f"{button} was not applied: another decision on this request is being applied"
            " right now. Look again in a moment."
        )
    sentence = f"{button} is not possible: the request is {stage_in_a_sentence(stage)}."
    instead = [transition.button for transition in transitions_from(stage)]
    if instead:
        sentence += f" What it allows now: {' or '.join(instead)}."
    return sentence
