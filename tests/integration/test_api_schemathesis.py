"""Property-based requests from the OpenAPI document against the running API: whatever a
client sends that fits (or nearly fits) the document, the answer is never a server error.

Bounded: a fixed number of derandomised examples per operation, with an admin token (the
role that reaches every operation). Batches it creates name accounts and meters that do
not exist, so they touch no other test's data.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from .api_support import tariff_text
from .conftest import ApiSession

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION = 12


def test_no_input_makes_a_server_error(api: ApiSession) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/api/v1/openapi.json", timeout=30)
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    seen: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: Any) -> None:
            response = case.call(headers={**(case.headers or {}), **headers}, timeout=30)
            seen[f"{case.method} {case.path}"] += 1
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> "
                                f"{response.status_code}: {response.text[:300]}")

        exercise()
    print(f"\nschemathesis: {sum(seen.values())} requests over {len(seen)} operations; "
          f"statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n".join(failures[:20])


def test_no_input_makes_a_server_error_for_a_limited_operator(api: ApiSession) -> None:
    """The same against the scoped API: an operator limited to one site, whose every
    request goes through the scope checks (refusals must be 403, never 5xx)."""
    from .scope_support import limited_user, make_side, uid
    from .scope_support import ok as answered

    with api.client("admin") as admin:
        tariff = uid("fuzztar").replace(":", "")
        answered(admin.post("/tariffs", content=tariff_text(tariff),
                            headers={"Content-Type": "application/yaml"}), 201)
        side = make_side(admin, tariff, "fuzz")
        operator = limited_user(admin, "operator", sites=[side.site])
    schema = schemathesis.openapi.from_url(f"{api.url}/api/v1/openapi.json", timeout=30)
    headers = {"Authorization": f"Bearer {operator.token}"}
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    for operation in [result.ok() for result in schema.get_all_operations()]:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: Any) -> None:
            response = case.call(headers={**(case.headers or {}), **headers}, timeout=30)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> "
                                f"{response.status_code}: {response.text[:300]}")

        exercise()
    print(f"\nschemathesis (limited operator): {sum(statuses.values())} requests; statuses "
          f"{dict(sorted(statuses.items()))}")
    assert statuses[403] > 0, "the limited operator was never refused: scope not exercised"
    assert not failures, "\n".join(failures[:20])
