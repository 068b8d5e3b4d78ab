"""The API contract step's client check: a Python client generated from /openapi.json
(openapi-python-client, package `widthlab_client`) drives the running server.

1. Submits {"preset": "arpit2019-fig1", "samples": 50} as the generated PresetRequest model,
   polls the job to `succeeded`, and reads its 10 layers as typed models.
2. Submits a few specs whose results hold the values a schema most easily gets wrong (undefined
   ratios of dead networks written as null, overflowing predictions, a seed of 2^64 - 1, a small
   sweep), reads every result through the client, and validates each raw JSON answer against the
   document's own schema for it (schemathesis seldom generates such specs).

Environment: WIDTHLAB_URL (http://host:port), WIDTHLAB_CI_TOKEN, WIDTHLAB_OPENAPI (the saved
document). Exits non-zero on the first problem.
"""

import json
import os
import sys
import time

import jsonschema_rs
from widthlab_client import AuthenticatedClient
from widthlab_client.api.jobs import get_job, submit
from widthlab_client.api.results import bound_checks, layers, sweep
from widthlab_client.models import (
    BoundChecksPage,
    Fan,
    InitInput,
    JobSpecInput,
    JobView,
    Kind,
    LayersPage,
    Method,
    NetworkInput,
    PresetName,
    PresetRequest,
    Scheme,
    Status,
    SweepPage,
)

BASE = os.environ["WIDTHLAB_URL"]
TOKEN = os.environ["WIDTHLAB_CI_TOKEN"]
DOC = json.load(open(os.environ["WIDTHLAB_OPENAPI"]))
TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}

client = AuthenticatedClient(base_url=BASE, token=TOKEN, raise_on_unexpected_status=True, timeout=30.0)


def fail(message: str) -> None:
    print(f"client check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def validator(path: str, method: str, status: int):
    """A JSON Schema validator of the document's 200/202 response schema of one operation."""
    schema = DOC["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "components": DOC["components"]}
    )


def check_raw(what: str, path: str, method: str, status: int, content: bytes) -> None:
    errors = [f"{list(e.instance_path)}: {e.message}" for e in validator(path, method, status).iter_errors(json.loads(content))]
    if errors:
        fail(f"{what}: the answer does not match the document: " + "; ".join(errors[:5]))


def submitted(body) -> JobView:
    r = submit.sync_detailed(client=client, body=body)
    if r.status_code != 202 or not isinstance(r.parsed, JobView):
        fail(f"POST /v1/jobs {body.to_dict()}: {r.status_code} {r.content[:300]!r}")
    check_raw("POST /v1/jobs", "/v1/jobs", "post", 202, r.content)
    return r.parsed


def finished(job: JobView, timeout: float = 120.0) -> JobView:
    deadline = time.monotonic() + timeout
    while True:
        r = get_job.sync_detailed(job.id, client=client)
        if not isinstance(r.parsed, JobView):
            fail(f"GET /v1/jobs/{job.id}: {r.status_code} {r.content[:300]!r}")
        check_raw("GET /v1/jobs/{id}", "/v1/jobs/{id}", "get", 200, r.content)
        if r.parsed.status in TERMINAL:
            return r.parsed
        if time.monotonic() > deadline:
            fail(f"job {job.id} still {r.parsed.status} after {timeout} s")
        time.sleep(0.2)


def read_results(job: JobView) -> LayersPage:
    """Every JSON result of a finished job, through the client and against the document."""
    r = layers.sync_detailed(job.id, client=client)
    if not isinstance(r.parsed, LayersPage):
        fail(f"layers of {job.id}: {r.status_code} {r.content[:300]!r}")
    check_raw("GET /v1/jobs/{id}/layers", "/v1/jobs/{id}/layers", "get", 200, r.content)
    page = r.parsed
    r = bound_checks.sync_detailed(job.id, client=client)
    if not isinstance(r.parsed, BoundChecksPage):
        fail(f"bound checks of {job.id}: {r.status_code} {r.content[:300]!r}")
    check_raw("GET /v1/jobs/{id}/bound-checks", "/v1/jobs/{id}/bound-checks", "get", 200, r.content)
    if job.kind == Kind.WIDTH_SWEEP:
        r = sweep.sync_detailed(job.id, client=client)
        if not isinstance(r.parsed, SweepPage):
            fail(f"sweep of {job.id}: {r.status_code} {r.content[:300]!r}")
        check_raw("GET /v1/jobs/{id}/sweep", "/v1/jobs/{id}/sweep", "get", 200, r.content)
    return page


# 1. The preset request, typed end to end.
job = submitted(PresetRequest(preset=PresetName.ARPIT2019_FIG1, samples=50))
if job.preset != "arpit2019-fig1" or job.spec.samples != 50:
    fail(f"the job does not echo the preset request: preset {job.preset!r}, samples {job.spec.samples!r}")
job = finished(job)
if job.status != Status.SUCCEEDED:
    fail(f"preset job {job.id} is {job.status}: {job.error}")
page = layers.sync(job.id, client=client)
if not isinstance(page, LayersPage):
    fail(f"layers of {job.id}: {page!r}")
if len(page.layers) != 10 or [l.layer for l in page.layers] != list(range(1, 11)):
    fail(f"expected layers 1..10, got {[l.layer for l in page.layers]}")
for layer in page.layers:
    if layer.width != 100 or layer.forward.count != 50 or not (0.2 < layer.forward.mean < 5):
        fail(f"implausible layer {layer.to_dict()}")
print(f"client check: preset arpit2019-fig1 with samples 50: job {job.id} succeeded with {len(page.layers)} layers")


# 2. Specs whose answers hold nulls, huge seeds and sweep points.
def network(**fields) -> NetworkInput:
    return NetworkInput(**fields)


he = InitInput(scheme=Scheme.HE, fan=Fan.OUT)
edge = {
    # Width-1 ReLU layers die: ratios undefined, their statistics null.
    "dead network": JobSpecInput(network=network(input_dim=1, depth=30, width=1, init=he), samples=20, trials=3, seed=1),
    # Variance 1e6 over 1000 layers of width 1000: the ratios and their predictions overflow.
    "overflowing prediction": JobSpecInput(
        network=network(input_dim=1000, depth=1000, width=1000, init=InitInput(scheme=Scheme.GAUSSIAN, variance=1e6)),
        samples=1,
        seed=2,
        method=Method.EXACT,
    ),
    "largest seed": JobSpecInput(network=network(input_dim=5, depth=2, width=3, init=he), samples=5, seed=2**64 - 1),
    "sweep with dead points": JobSpecInput(
        kind=Kind.WIDTH_SWEEP,
        network=network(input_dim=1, depths_to_sweep=[1, 40], widths_to_sweep=[1, 2], init=he),
        samples=5,
        trials=3,
        seed=5,
    ),
}
for name, spec in edge.items():
    job = finished(submitted(spec))
    if job.status != Status.SUCCEEDED:
        fail(f"{name}: job {job.id} is {job.status}: {job.error}")
    if spec.seed is not None and (job.spec.seed != spec.seed or job.stamp.seed != spec.seed):
        fail(f"{name}: seed {spec.seed} came back as {job.spec.seed} (spec) and {job.stamp.seed} (stamp)")
    page = read_results(job)
    # The cases hold what they are here for.
    if name == "dead network" and all(l.gradient.mean is not None for l in page.layers):
        fail(f"{name}: no layer with an undefined gradient ratio")
    if name == "overflowing prediction" and page.layers[-1].predicted.forward.mean is not None:
        fail(f"{name}: the last layer's prediction did not overflow")
    print(f"client check: {name}: job {job.id} read and valid")

# A drawn seed is below 2^53, so every JSON client reads it exactly.
job = submitted(JobSpecInput(network=network(input_dim=5, depth=2, width=3, init=he), samples=5))
if not 0 <= job.spec.seed < 2**53 or job.stamp.seed != job.spec.seed:
    fail(f"drawn seed {job.spec.seed} (stamp {job.stamp.seed}) is not below 2^53")
finished(job)
print("client check: all good")
