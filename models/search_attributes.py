"""The search attributes admins filter on in the Temporal UI."""

from temporalio.common import SearchAttributeKey

ONBOARDING_STAGE = SearchAttributeKey.for_keyword("OnboardingStage")
COMPANY_NAME = SearchAttributeKey.for_text("CompanyName")
ONBOARDING_ID = SearchAttributeKey.for_keyword("OnboardingId")
CONTACT_EMAIL = SearchAttributeKey.for_keyword("ContactEmail")

ALL = (ONBOARDING_STAGE, COMPANY_NAME, ONBOARDING_ID, CONTACT_EMAIL)
