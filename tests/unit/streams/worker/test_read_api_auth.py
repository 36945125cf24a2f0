"""The read API's bearer-token check (streams.worker.http_api.authorised)."""

from __future__ import annotations

import pytest

from streams.worker.http_api import authorised


def test_without_a_token_every_request_may_read() -> None:
    assert authorised({}, None)
    assert authorised({"Authorization": "Bearer anything"}, None)


@pytest.mark.parametrize("header, ok", [
    ("Bearer s3cret", True),
    ("bearer s3cret", True),  # the scheme is case-insensitive (RFC 7235)
    ("Bearer  s3cret ", True),
    ("Bearer s3cret2", False),
    ("Bearer s3cre", False),
    ("Basic s3cret", False),
    ("s3cret", False),
    ("", False),
])
def test_with_a_token_only_its_bearer_may_read(header: str, ok: bool) -> None:
    assert authorised({"Authorization": header} if header else {}, "s3cret") is ok
