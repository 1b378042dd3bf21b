"""The edge's pure parts: repeated JSON keys, the client address through proxies, the
connection budget, and the names of parser refusals."""

from __future__ import annotations

import logging

import orjson
import pytest
from aiohttp import http_exceptions as hx

from scoreboard.edge import strict_json
from scoreboard.edge.bodies import ActionRequest, AdjustRequest, Body
from scoreboard.edge.clients import ClientAddress
from scoreboard.edge.connections import BUDGET, HEALTH_BAND, PER_IP, ConnectionBudget
from scoreboard.edge.contract import MAX_HEADER_FIELD, MAX_REQUEST_LINE
from scoreboard.edge.errors import BadRequest, describe, error_response
from scoreboard.edge.validation import BodyReader
from scoreboard.http.refusals import parser_refusal, raw_response
from scoreboard.storage.base import StoreUnavailable
from scoreboard.writer.errors import StoreDown


@pytest.mark.parametrize("body", [
    b'{"a":1,"a":2}',
    b'{"a":1,"\\u0061":2}',
    b'{"m":{"x":[{"k":1,"k":1}]}}',
    b'{"a":"b","c":{"a":1,"d":2,"d":3}}',
    b'[{"x":1},{"y":1,"y":2}]',
])
def test_repeated_keys_are_refused(body: bytes) -> None:
    with pytest.raises(BadRequest, match="more than once"):
        strict_json.loads(body)


@pytest.mark.parametrize(("body", "value"), [
    (b'{"a":1,"b":2}', {"a": 1, "b": 2}),
    (b'{"a":"a","b":{"a":1}}', {"a": "a", "b": {"a": 1}}),  # same name, other objects
    (b'{"a":"\\"a\\":1"}', {"a": '"a":1'}),
    (b'{"k":[{"k":1},{"k":2}]}', {"k": [{"k": 1}, {"k": 2}]}),
    (b'{"\\u00e9":1,"\xc3\xa9x":2}', {"é": 1, "éx": 2}),
])
def test_distinct_keys_parse_as_orjson_does(body: bytes, value: object) -> None:
    assert strict_json.loads(body) == value


@pytest.mark.parametrize(("body_type", "body"), [
    (ActionRequest, b'{"actionType":"A","actionType":"B","clientActionId":"c"}'),
    (ActionRequest, b'{"actionType":"A","actionType":"B","clientActionId":"c:d"}'),
    (ActionRequest, b'{"actionType":"A","clientActionId":"c","metadata":{"k":1,"k":2}}'),
    # a field left at a default other than null (`create`) is no key of the text
    (AdjustRequest, b'{"delta":5,"delta":6,"reason":"r","clientActionId":"c"}'),
    (AdjustRequest, b'{"delta":5,"delta":6,"reason":"r","clientActionId":"c","create":false}'),
])
def test_repeated_keys_of_a_body_are_refused(body_type: type[Body], body: bytes) -> None:
    with pytest.raises(BadRequest, match="more than once"):
        BodyReader(body_type).read(body)


@pytest.mark.parametrize(("body_type", "body"), [
    (ActionRequest, b'{"actionType":"A","clientActionId":"c"}'),
    (ActionRequest, b'{"actionType":"A","clientActionId":"c:d","board":null}'),
    (ActionRequest, b'{"actionType":"A","clientActionId":"\\u0063","metadata":{"k":{}}}'),
    (AdjustRequest, b'{"delta":5,"reason":"r","clientActionId":"c","create":false}'),
    (AdjustRequest, b'{"delta":5,"reason":"r:s","clientActionId":"c","create":true}'),
])
def test_bodies_without_repeats_are_read(body_type: type[Body], body: bytes) -> None:
    assert isinstance(BodyReader(body_type).read(body), body_type)


def test_invalid_json_is_still_400() -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        strict_json.loads(b'{"a":NaN}')


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("10.0.0.1", "1.2.3.4", "1.2.3.4"),  # trusted peer, one hop
    ("10.0.0.1", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the left end is the client's to forge
    ("10.0.0.1", "1.2.3.4, 10.0.0.7", "1.2.3.4"),  # a trusted hop in a CIDR range
    ("10.0.0.1", "10.0.0.8, 10.0.0.7", "10.0.0.8"),  # all trusted: the farthest
    ("10.0.0.1", "junk, 1.2.3.4", "1.2.3.4"),
    ("10.0.0.1", "1.2.3.4, junk", "10.0.0.1"),  # nothing valid believed past junk
    ("10.0.0.1", None, "10.0.0.1"),
    ("5.5.5.5", "1.2.3.4", "5.5.5.5"),  # untrusted peer: its header is ignored
    ("127.0.0.1", "1.2.3.4", "1.2.3.4"),  # an exact address
])
def test_client_address_reads_forwarded_for_from_the_right(
    peer: str, forwarded: str | None, client: str
) -> None:
    addresses = ClientAddress(["10.0.0.0/24", "127.0.0.1"])
    assert addresses.resolve(peer, forwarded) == client


def test_budget_caps_each_address_and_keeps_a_band_for_proxies_and_the_local_host() -> None:
    budget = ConnectionBudget(total=HEALTH_BAND + 4, per_ip=3,
                              exempt=lambda ip: ip == "10.0.0.1")
    assert [budget.take("1.1.1.1") for _ in range(4)] == [None, None, None, PER_IP]
    assert budget.take("2.2.2.2") is None
    assert budget.take("3.3.3.3") == BUDGET  # strangers stop short of the band
    assert budget.take("127.0.0.1") is None  # a local health check gets in
    assert all(budget.take("10.0.0.1") is None for _ in range(HEALTH_BAND - 1))
    assert budget.take("10.0.0.1") == BUDGET  # nobody passes the total
    budget.give("1.1.1.1")
    assert budget.by_ip["1.1.1.1"] == 2 and budget.open == HEALTH_BAND + 3


@pytest.mark.parametrize(("exc", "status_code"), [
    (hx.LineTooLong(b"x", MAX_REQUEST_LINE), "INVALID_REQUEST"),
    (hx.LineTooLong(b"x", MAX_HEADER_FIELD), "HEADERS_TOO_LARGE"),
    (hx.BadHttpMessage("Too many headers received"), "HEADERS_TOO_LARGE"),
    (hx.BadHttpMessage("Transfer-Encoding can't be present with Content-Length"),
     "INVALID_REQUEST"),
    (hx.BadHttpMethod("GARBAGE"), "INVALID_REQUEST"),
    (None, "INVALID_REQUEST"),
])
def test_parser_refusals_are_named(exc: BaseException | None, status_code: str) -> None:
    assert parser_refusal(exc).code == status_code


def test_raw_response_is_a_whole_http_answer_with_the_json_body() -> None:
    data = raw_response(BadRequest("no"), "rid-1")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close" in head and b"Content-Length: %d" % len(body) in head
    assert body == b'{"error":{"code":"INVALID_REQUEST","message":"no","requestId":"rid-1"}}'


DRIVER_WORDS = "cannot connect to PostgreSQL: ConnectionRefusedError(111, 'Connect call failed')"


@pytest.mark.parametrize("exc", [
    StoreUnavailable(DRIVER_WORDS),
    StoreDown(f"the action log is unavailable: {DRIVER_WORDS}", retry_after=2.0),
], ids=["store", "writer"])
def test_store_outages_tell_the_client_little_and_the_log_everything(
    exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="scoreboard.http"):
        response = error_response(exc, "rid-7")
    assert response.status == 503 and response.headers["Retry-After"] == "2"
    assert isinstance(response.body, bytes)
    error = orjson.loads(response.body)["error"]
    assert error == {"code": "STORE_UNAVAILABLE", "requestId": "rid-7",
                     "message": "the score store is unavailable; retry later"}
    (record,) = caplog.records
    assert DRIVER_WORDS in record.getMessage() and record.request_id == "rid-7"


@pytest.mark.parametrize(("exc", "message"), [
    # a driver's words (a host, an errno) stay in the log
    (StoreDown("the action log is unavailable: ConnectionRefusedError(111, '10.0.0.5:5432')"),
     "the score store is unavailable; retry later"),
    # a reason written for clients (no internals) is what they read
    (StoreDown("no writer is reachable to forward this action to: the writer does not "
               "answer on its internal port", for_clients=True),
     "no writer is reachable to forward this action to: the writer does not answer on its "
     "internal port"),
])
def test_store_refusals_tell_clients_only_what_is_meant_for_them(
        exc: StoreDown, message: str) -> None:
    status, code, said, headers = describe(exc)
    assert (status, code, said) == (503, "STORE_UNAVAILABLE", message)
    assert "Retry-After" in headers
