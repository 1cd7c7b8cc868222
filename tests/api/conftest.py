"""Tenant API fixtures: acme and globex with applications, keys, and a JSON client for /api/v1/."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.test import Client as HttpClient

from clients import services as client_services
from tests.invitations.conftest import issue, world  # noqa: F401 - fixtures shared with the invitation tests

ALL_SCOPES = ["configuration:read", "invitations:read", "invitations:redeem"]


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict

    @property
    def json(self):
        return json.loads(self.body)


class Api:
    """Calls /api/v1/ as an application would: a bearer key, JSON in and out."""

    def __init__(self, key: str | None = None):
        self.key = key
        self.http = HttpClient()

    def call(self, method: str, path: str, body=None, *, key: str | None = None, raw: bytes | None = None, **headers):
        key = key if key is not None else self.key
        if key:
            headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        options = {"content_type": "application/json"} if data is not None else {}
        response = getattr(self.http, method.lower())(
            f"/api/v1{path}", **({"data": data} if data is not None else {}), **options, **headers
        )
        return Answer(response.status_code, response.content, dict(response.headers))

    def get(self, path: str, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body=None, **kwargs):
        return self.call("POST", path, body, **kwargs)


@pytest.fixture
def make_key():
    def make(client, *, scopes=None, application=None, name=None, rate_limit=None, **options) -> str:
        _, full_key = client_services.create_api_key(
            actor=None,
            client=client,
            name=name or f"key {len(client.api_keys.all()) + 1}",
            scopes=scopes or ALL_SCOPES,
            application=application,
            rate_limit=rate_limit,
            **options,
        )
        return full_key

    return make


@pytest.fixture
def acme_api(world, make_key):  # noqa: F811 - the imported fixture
    return Api(make_key(world[0]))
