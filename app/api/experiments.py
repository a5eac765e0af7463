"""A/B experiments: create (or replace the variants of), read, list and stop."""
from __future__ import annotations

import re

from flask import Blueprint, request

from app import strategies
from app.api.context import current_tenant, get_conn, request_context
from app.api.query import int_arg
from app.api.schemas import ExperimentFields, ExperimentList, ExperimentOut, ExperimentResultsOut, Problem
from app.api.spec import documented, parse_body
from app.errors import InputError
from app.serving import experiment_results, experiments

bp = Blueprint("experiments", __name__)
_ERRORS = {401: Problem, 404: Problem, 422: Problem}
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string", "pattern": _NAME_PATTERN}}


def _name(name: str) -> str:
    """The experiment name from the path, checked on every route (a NUL in it is bad input, not a 500)."""
    if not re.fullmatch(_NAME_PATTERN[1:-1], name):  # fullmatch: re's `$` would let a trailing newline in
        raise InputError("experiment names are 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit",
                         [{"field": "name", "message": "not an experiment name"}])
    return name


def _out(row: dict) -> dict:
    """A row as its documented JSON: timestamps in ISO 8601 (Flask alone would write HTTP dates)."""
    return ExperimentOut.model_validate(row).model_dump(mode="json")


@bp.put("/v1/experiments/<name>")
@documented("put", "/v1/experiments/{name}", "Create an experiment or replace its variants (and restart it)",
            tag="experiments", body=ExperimentFields, responses={200: ExperimentOut, **_ERRORS}, params=[_NAME],
            unprocessable={"variants": "variant names must be unique, and each variant's strategy must be a "
                                       f"registered one ({', '.join(sorted(strategies.REGISTRY))})"})
def put_experiment(name: str):
    name = _name(name)
    body = parse_body(ExperimentFields)
    conn = get_conn()
    with conn:
        return _out(experiments.save(conn, current_tenant(), name, body.description,
                                     [v.model_dump() for v in body.variants]))


@bp.get("/v1/experiments/<name>")
@documented("get", "/v1/experiments/{name}", "Read an experiment", tag="experiments",
            responses={200: ExperimentOut, **_ERRORS}, params=[_NAME])
def get_experiment(name: str):
    return _out(experiments.get(get_conn(), current_tenant(), _name(name)))


@bp.get("/v1/experiments")
@documented("get", "/v1/experiments", "List experiments", tag="experiments",
            responses={200: ExperimentList, 401: Problem})
def list_experiments():
    return {"experiments": [_out(row) for row in experiments.list_all(get_conn(), current_tenant())]}


@bp.post("/v1/experiments/<name>/stop")
@documented("post", "/v1/experiments/{name}/stop", "Stop an experiment: requests naming it use their own strategy",
            tag="experiments", responses={200: ExperimentOut, **_ERRORS}, params=[_NAME])
def stop_experiment(name: str):
    name = _name(name)
    conn = get_conn()
    with conn:
        return _out(experiments.stop(conn, current_tenant(), name))


_VERSION = {"name": "version", "in": "query", "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
            "description": "The version of the variants to report (default: the latest)."}


@bp.get("/v1/experiments/<name>/results")
@documented("get", "/v1/experiments/{name}/results", "An experiment's variants judged by learning",
            tag="experiments", responses={200: ExperimentResultsOut, **_ERRORS}, params=[_NAME, _VERSION],
            scope="admin",
            description="Per variant of a version: learners, answers, attempts, success rate, difficulty-adjusted "
                        "learning, attempts to mastery, retention and calibration, each with a 95 % interval by "
                        "resampling learners; the sample-ratio-mismatch test and the minimum learners; a verdict. "
                        "See docs/EXPERIMENTS.md.")
def experiment_results_view(name: str):
    name = _name(name)
    version = int_arg("version", 0, 1, 2**31 - 1) if "version" in request.args else None
    return experiment_results.results(request_context(), name, version).as_json()
