"""AI providers by name, and the one retry policy over them.

A provider is one module with a class taking a ProviderConfig and answering `generate` (one
attempt) and `test_connection`; `register(name, factory)` below makes it choosable in the
instance settings (docs/ai.md, "Adding a provider").
"""
import time

from app.ai.providers import gemini
from app.ai.providers import openai_compat
from app.ai.providers.base import AiRequest  # noqa: F401  (the package's public names)
from app.ai.providers.base import AiResult  # noqa: F401
from app.ai.providers.base import Provider  # noqa: F401
from app.ai.providers.base import ProviderConfig
from app.ai.providers.base import ProviderError

FIRST_BACKOFF_SECONDS = 1.0
LONGEST_BACKOFF_SECONDS = 8.0
# A Retry-After longer than this is a quota window, not a hiccup: the writer is told to come back
# rather than left looking at a spinner.
LONGEST_RETRY_AFTER_SECONDS = 20.0

# Tests replace this to record the waits instead of waiting.
sleep = time.sleep

_factories = {}


def register(name, factory):
    """Make `factory(config) -> Provider` available as `name` (the instance's ai_provider setting)."""
    _factories[name] = factory


def names():
    return sorted(_factories)


def provider_for(config: ProviderConfig):
    factory = _factories.get(config.name)
    if factory is None:
        raise ProviderError(f"There is no AI provider called “{config.name}”; the available ones are "
                            f"{', '.join(names())}.", kind="bad_request")
    return factory(config)


def backoff_seconds(failed_attempts):
    """1 s after the first failure, then 2 s, 4 s, ... never more than LONGEST_BACKOFF_SECONDS."""
    return min(FIRST_BACKOFF_SECONDS * 2 ** (failed_attempts - 1), LONGEST_BACKOFF_SECONDS)


def generate_with_retries(provider, request, attempts=3):
    """`provider.generate(request)`, tried again on a timeout, a rate limit or an outage.

    Waits what the provider's Retry-After asks when it said (up to LONGEST_RETRY_AFTER_SECONDS; a
    longer ask is refused at once in words), else backs off exponentially. Refusals that would
    come back the same (bad key, bad request, safety block, cut-off or malformed answer) are raised
    at once."""
    failed = 0
    while True:
        try:
            return provider.generate(request)
        except ProviderError as error:
            failed += 1
            if not error.retryable:
                raise
            if error.retry_after is not None and error.retry_after > LONGEST_RETRY_AFTER_SECONDS:
                raise ProviderError(f"The provider asks to wait {round(error.retry_after)} seconds; "
                                    "try again later.", kind=error.kind, retry_after=error.retry_after,
                                    status=error.status) from error
            if failed >= attempts:
                raise
            wait = error.retry_after if error.retry_after is not None else backoff_seconds(failed)
            sleep(wait)


register("gemini", gemini.GeminiProvider)
register("openai", openai_compat.OpenAiCompatibleProvider)
