"""Alibaba Cloud RPC signature v1.0 against the documentation's worked example and RFC 3986."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import unquote

from hypothesis import given
from hypothesis import strategies as st

from connectors.notify import aliyun

# The worked example of the "Signature mechanism" page (DescribeRegions, key "testsecret").
DOC_PARAMS = {
    "TimeStamp": "2016-02-23T12:46:24Z", "Format": "XML", "AccessKeyId": "testid",
    "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}
DOC_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML"
    "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"
    "%26SignatureVersion%3D1.0%26TimeStamp%3D2016-02-23T12%253A46%253A24Z"
    "%26Version%3D2014-05-26")
DOC_SIGNATURE = "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_documented_string_to_sign() -> None:
    assert aliyun.string_to_sign("GET", DOC_PARAMS) == DOC_STRING_TO_SIGN


def test_documented_signature() -> None:
    assert aliyun.signature("testsecret", "GET", DOC_PARAMS) == DOC_SIGNATURE


def test_signature_ignores_a_signature_parameter() -> None:
    with_sig = {**DOC_PARAMS, "Signature": "anything"}
    assert aliyun.signature("testsecret", "GET", with_sig) == DOC_SIGNATURE


def test_percent_encoding_rules() -> None:
    assert aliyun.percent_encode("a b") == "a%20b"
    assert aliyun.percent_encode("*") == "%2A"
    assert aliyun.percent_encode("~-_.") == "~-_."
    assert aliyun.percent_encode("+/=&") == "%2B%2F%3D%26"
    assert aliyun.percent_encode("余") == "%E4%BD%99"


@given(st.text())
def test_percent_encoding_round_trips_and_keeps_only_unreserved(text: str) -> None:
    encoded = aliyun.percent_encode(text)
    assert unquote(encoded) == text
    plain = encoded.replace("%", "")
    assert all(c.isalnum() or c in "-_.~" for c in plain)


def test_timestamp_is_utc_to_the_second() -> None:
    at = datetime(2017, 7, 12, 10, 42, 19, 999, tzinfo=timezone(timedelta(hours=8)))
    assert aliyun.timestamp(at) == "2017-07-12T02:42:19Z"


def test_signed_adds_common_parameters() -> None:
    params = aliyun.signed({"PhoneNumbers": "13800000000"}, action="SendSms",
                           version="2017-05-25", access_key_id="id", secret="s",
                           region_id="cn-hangzhou", now=datetime(2026, 7, 1, tzinfo=UTC),
                           nonce="n-1")
    assert params["Action"] == "SendSms" and params["SignatureVersion"] == "1.0"
    assert params["Timestamp"] == "2026-07-01T00:00:00Z" and params["Format"] == "JSON"
    assert params["Signature"] == aliyun.signature("s", "POST", params)
    assert params["Signature"] != aliyun.signature("s", "GET", params)
