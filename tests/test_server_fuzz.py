"""Property-based fuzzing of the dashboard API from its OpenAPI schema: no input makes a 5xx."""

from __future__ import annotations

import shutil

import schemathesis
from hypothesis import HealthCheck, given, settings

import latentsight as ls
from latentsight.server import background, create_app

EXAMPLES = 25  # per operation: about 300 requests, a few seconds


def test_no_input_makes_a_server_error(dashboard_run, tmp_path):
    shutil.copytree(dashboard_run.path, tmp_path / "run")  # explanations computed land here
    app = create_app(ls.open_run(tmp_path / "run", project=dashboard_run.project))
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    failures = []
    with background(app) as url:
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case):
                response = case.call(base_url=url, timeout=30)
                if response.status_code >= 500:
                    failures.append((case.method, case.formatted_path, response.text[:200]))
                assert response.status_code < 500

            fuzz()
    assert failures == []
