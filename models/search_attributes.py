"""The search attributes admins filter on in the Temporal UI."""

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.common import SearchAttributeKey

ONBOARDING_STAGE = SearchAttributeKey.for_keyword("OnboardingStage")
COMPANY_NAME = SearchAttributeKey.for_text("CompanyName")
ONBOARDING_ID = SearchAttributeKey.for_keyword("OnboardingId")
# No longer set (search attributes are never encrypted: an email does not belong there;
# All prospects finds a request by email). Still registered for one release, as the
# workers of the release before set it on the requests they start.
CONTACT_EMAIL = SearchAttributeKey.for_keyword("ContactEmail")
# A partner user's workflow: its id in Commerce (the user's page shows it).
PARTNER_USER_ID = SearchAttributeKey.for_keyword("PartnerUserId")

ALL: tuple[SearchAttributeKey, ...] = (
    ONBOARDING_STAGE,
    COMPANY_NAME,
    ONBOARDING_ID,
    CONTACT_EMAIL,
    PARTNER_USER_ID,
)


def type_name(value_type: int) -> str:
    """As the Temporal CLI spells it: `Keyword`, `Text`."""
    return IndexedValueType.Name(value_type).removeprefix("INDEXED_VALUE_TYPE_").title()  # type: ignore[arg-type]


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` flags that register every attribute."""
    flags = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={type_name(key.indexed_value_type)}"]
    return flags
