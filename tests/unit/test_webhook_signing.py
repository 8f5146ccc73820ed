"""Webhook signatures reproduce the Standard Webhooks spec's published test vector, secrets are
checked at start-up, and the back-off grows as documented."""

from __future__ import annotations

import pytest

from docqueue.settings import Settings
from docqueue.webhooks import backoff, check_url, headers, parse_secret, sign

# The vector the Standard Webhooks reference libraries test against.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID, SPEC_TS, SPEC_BODY = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_spec_vector() -> None:
    key = parse_secret(SPEC_SECRET)
    assert sign(key, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIGNATURE
    assert headers(key, SPEC_ID, SPEC_TS, SPEC_BODY) == {
        "webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TS), "webhook-signature": SPEC_SIGNATURE,
        "content-type": "application/json"}
    assert sign(key, SPEC_ID, SPEC_TS + 1, SPEC_BODY) != SPEC_SIGNATURE  # the timestamp is signed too


@pytest.mark.parametrize(("secret", "words"), [
    ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "'whsec_'"),
    ("whsec_not base64!", "not base64"),
    ("whsec_c2hvcnQ=", "use 24 to 64"),
])
def test_bad_secrets_fail_at_start_with_the_reason(secret: str, words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=words):
        parse_secret(secret)
    monkeypatch.setenv("DOCQUEUE_WEBHOOK_SECRET", secret)
    with pytest.raises(ValueError, match=words):
        Settings()


def test_secret_from_the_environment_is_kept_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCQUEUE_WEBHOOK_SECRET", SPEC_SECRET)
    settings = Settings()
    assert settings.webhook_secret is not None and settings.webhook_secret.get_secret_value() == SPEC_SECRET
    assert SPEC_SECRET not in repr(settings)


def test_backoff_doubles_up_to_the_cap() -> None:
    settings = Settings(webhook_backoff_s=5, webhook_backoff_max_s=30)
    assert [backoff(settings, n) for n in range(1, 6)] == [5, 10, 20, 30, 30]


@pytest.mark.parametrize("url", ["ftp://example.org/x", "example.org/hook", "http://", "file:///etc/passwd"])
def test_only_absolute_http_urls_are_webhooks(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        check_url(url)
    assert check_url(" https://hooks.example.org/docqueue?t=1 ") == "https://hooks.example.org/docqueue?t=1"


def test_inline_messages_may_name_a_webhook_and_others_look_as_before() -> None:
    from docqueue.errors import MessageError
    from docqueue.schema import TaskMessage

    inline = TaskMessage.decode({"v": 1, "batch": "b", "documents": [{"id": "d", "text": "t"}],
                                 "webhook": "https://hooks.example.org/x", "webhook_documents": True})
    assert (inline.webhook, inline.webhook_documents) == ("https://hooks.example.org/x", True)
    assert inline.model_dump(mode="json")["webhook"] == "https://hooks.example.org/x"
    # without a webhook the message is exactly what workers of the previous release accept
    assert set(TaskMessage(batch="b", jobs=("j",)).model_dump(mode="json")) == {"v", "batch", "params", "jobs",
                                                                                "documents"}
    with pytest.raises(MessageError, match="http:// or https://"):
        TaskMessage.decode({"batch": "b", "documents": [{"id": "d", "text": "t"}], "webhook": "mailto:a@b"})
    with pytest.raises(MessageError, match="'webhook' belongs in messages with inline 'documents'"):
        TaskMessage.decode({"batch": "b", "jobs": ["j"], "webhook": "https://hooks.example.org/x"})
