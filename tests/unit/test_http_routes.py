"""The routes read from the proto's google.api.http annotations, and requests built from HTTP
parts by grpc-gateway's rules (no server: the e2e tests call every route on a real one)."""

from __future__ import annotations

import pytest

from modelconfig.v1 import model_config_service_pb2 as api
from modelconfig.v1 import resources_pb2 as pb
from modelconfigd.domain.errors import InvalidArgument
from modelconfigd.entrypoints.http_routes import routes_of

SERVICE = api.DESCRIPTOR.services_by_name["ModelConfigService"]
ROUTES = routes_of(SERVICE)


def route_for(method: str, raw_path: str):
    """The first route that takes the request, as the server looks them up, and its variables."""
    for route in ROUTES:
        variables = route.match(raw_path)
        if variables is not None and route.http_method == method:
            return route, variables
    return None, None


@pytest.mark.parametrize(("method", "path", "rpc", "variables"), [
    ("GET", "/v1/models", "ListModels", {}),
    ("GET", "/v1/models/7", "GetModel", {"model_id": "7"}),
    ("GET", "/v1/models:lookup", "GetModel", {}),
    ("GET", "/v1/models/7:usage", "GetModelUsage", {"model_id": "7"}),
    ("POST", "/v1/models/7:retire", "RetireModel", {"model_id": "7"}),
    ("PATCH", "/v1/models/7", "UpdateModel", {"model.id": "7"}),
    ("GET", "/v1/accounts/org:7:resolve", "ResolveForAccount", {"account_id": "org:7"}),
    ("GET", "/v1/accounts/team%2Fblue:resolve", "ResolveForAccount", {"account_id": "team/blue"}),
    ("POST", "/v1/accounts:resolve", "ResolveForAccounts", {}),
    ("POST", "/v1/accounts/a1/settings/openai_model:set", "SetModel",
     {"account_id": "a1", "slot": "openai_model"}),
    ("POST", "/v1/settings/openai_model:set", "SetModel", {"slot": "openai_model"}),
    ("GET", "/v1/slots/openai_model:estimateCost", "EstimateCost", {"slot": "openai_model"}),
    ("POST", "/v1/changes/12:revert", "RevertChange", {"revision": "12"}),
])
def test_paths_find_their_rpc(method, path, rpc, variables):
    route, found = route_for(method, path)
    assert route is not None and (route.rpc.name, found) == (rpc, variables)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/models/7:nosuchverb"),  # a verb no route has: not a model id "7:nosuchverb"
    ("GET", "/v1/models/7/extra"),
    ("GET", "/v1/models/"),
    ("PUT", "/v1/models"),
])
def test_paths_without_a_route(method, path):
    assert route_for(method, path) == (None, None)


def test_query_parameters_fill_scalars_by_either_name_repeated_and_typed():
    route, variables = route_for("GET", "/v1/slots/openai_model:estimateCost")
    request = route.request(variables, [
        ("scope", "SCOPE_GLOBAL"), ("input_tokens", "1000"), ("outputTokens", "20"),
        ("weightByAccounts", "true"),
    ], b"")
    assert request == api.EstimateCostRequest(
        slot="openai_model", scope=pb.SCOPE_GLOBAL, input_tokens=1000, output_tokens=20,
        weight_by_accounts=True)
    route, variables = route_for("GET", "/v1/accounts/a1:resolve")
    repeated = route.request(variables, [("slots", "x"), ("slots", "y")], b"")
    assert list(repeated.slots) == ["x", "y"]
    route, variables = route_for("GET", "/v1/changes")
    changes = route.request(variables, [("startTime", "2026-01-02T03:04:05Z")], b"")
    assert changes.start_time.seconds == 1767323045


@pytest.mark.parametrize(("query", "reason"), [
    ([("nope", "1")], "UNKNOWN_QUERY_PARAMETER"),
    ([("pageSize", "1"), ("pageSize", "2")], "REPEATED_QUERY_PARAMETER"),
    ([("pageSize", "ten")], "MALFORMED_REQUEST"),
    ([("pageSize.x", "1")], "UNKNOWN_QUERY_PARAMETER"),
])
def test_bad_query_parameters_are_invalid_arguments(query, reason):
    route, variables = route_for("GET", "/v1/changes")
    with pytest.raises(InvalidArgument) as caught:
        route.request(variables, query, b"")
    assert caught.value.reason == reason


def test_a_field_body_with_a_mask_from_the_query_and_the_id_from_the_path():
    route, variables = route_for("PATCH", "/v1/models/9")
    request = route.request(variables, [("updateMask", "displayName,isActive")],
                            b'{"id": "3", "displayName": "New", "is_active": true}')
    assert request.model.id == 9  # the path wins over the body
    assert (request.model.display_name, request.model.is_active) == ("New", True)
    assert list(request.update_mask.paths) == ["display_name", "is_active"]
    with pytest.raises(InvalidArgument):  # the body's field is not also taken from the query
        route.request(variables, [("model.displayName", "x")], b"{}")


def test_a_star_body_is_the_whole_request_and_the_query_is_not_read():
    route, variables = route_for("POST", "/v1/settings/openai_model:set")
    request = route.request(variables, [("ignored", "1")],
                            b'{"scope": "SCOPE_GLOBAL", "modelName": "gpt-4o", "etag": "a1"}')
    assert request == api.SetModelRequest(slot="openai_model", scope=pb.SCOPE_GLOBAL,
                                           model_name="gpt-4o", etag="a1")


@pytest.mark.parametrize("body", [b"{nope", b"[1]", b'{"unknownField": 1}', b'"text"',
                                  b"\xff\xfe"])
def test_bodies_that_are_not_the_request_are_invalid_arguments(body):
    route, variables = route_for("POST", "/v1/models")
    with pytest.raises(InvalidArgument) as caught:
        route.request(variables, [], body)
    assert caught.value.reason == "MALFORMED_REQUEST"


def test_a_malformed_path_variable_is_an_invalid_argument():
    route, variables = route_for("GET", "/v1/models/abc")
    with pytest.raises(InvalidArgument) as caught:
        route.request(variables, [], b"")
    assert caught.value.reason == "MALFORMED_REQUEST"


def test_a_get_takes_no_body():
    route, variables = route_for("GET", "/v1/models")
    with pytest.raises(InvalidArgument) as caught:
        route.request(variables, [], b'{"pageSize": 1}')
    assert caught.value.reason == "UNEXPECTED_BODY"


def test_http_status_follows_the_reason_where_http_has_a_closer_one():
    """A full disk is 507 and an oversized body 413, not 429 (which says: retry soon)."""
    from modelconfigd.domain.errors import ResourceExhausted, StorageFull, TooManyWatchers
    from modelconfigd.entrypoints.http_api import _http_status
    from modelconfigd.entrypoints.status_mapping import to_status

    assert _http_status(to_status(StorageFull("full"))) == 507
    assert _http_status(to_status(ResourceExhausted("big", reason="REQUEST_TOO_LARGE"))) == 413
    assert _http_status(to_status(TooManyWatchers("busy"))) == 429
