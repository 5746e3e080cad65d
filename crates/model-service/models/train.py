#!/usr/bin/env python3
"""Generate synthetic pricing data, train the two demo models, export them to ONNX.

This one script deterministically (fixed seeds, single-threaded BLAS) regenerates:

  crates/model-service/models/customer_risk/1/{model.onnx,manifest.json}
  crates/model-service/models/demand_surge/1/{model.onnx,manifest.json}
  crates/model-service/models/expected_scores.json
  crates/feature-store/snapshot/{customer_profile,customer_activity,
                                 zone_demand,zone_weather}.csv

Models (scikit-learn pipelines exported with skl2onnx, standard ONNX ops only):

  customer_risk  Pipeline([StandardScaler, MLPClassifier])  -> P(risky customer)
  demand_surge   Pipeline([StandardScaler, MLPRegressor])   -> surge factor

The data is synthetic but plausible: the risk label is driven mostly by payment
failures, chargebacks, cancellation rate and very young accounts (plus noise,
~12% positives); the surge target is 1 + f(demand/supply, wait time, rain, rush
hours, weekend nights) + noise.  The same generators produce the feature-store
snapshot CSVs (2000 customers, 200 zones) so the demo serves in-distribution
values.

expected_scores.json holds 8 hand-picked rows per model scored with onnxruntime
on the exported ONNX files (not sklearn) and post-processed exactly as the
manifests say (column pick, clamp, bands; absent features -> manifest default).

How to run (the venv lives outside the repository):

    python3 -m venv /work/.venv-train
    /work/.venv-train/bin/pip install -r crates/model-service/models/requirements.txt
    /work/.venv-train/bin/python crates/model-service/models/train.py

Paths are resolved relative to this file, so it can be run from any directory.
Reruns with the pinned versions produce byte-identical outputs.
"""

import os

# Single-threaded BLAS: makes MLP training bit-reproducible regardless of core
# count (multi-threaded GEMM may change summation order).  Must precede numpy.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import csv  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from skl2onnx import convert_sklearn  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

# --------------------------------------------------------------------------- #
# Paths and constants
# --------------------------------------------------------------------------- #
MODELS_DIR = Path(__file__).resolve().parent                 # crates/model-service/models
CRATES_DIR = MODELS_DIR.parent.parent                        # crates/
SNAPSHOT_DIR = CRATES_DIR / "feature-store" / "snapshot"

SEED = 20261124
N_ROWS = 50_000          # synthetic rows per model; 80% train / 20% held out
TEST_FRACTION = 0.2
N_CUSTOMERS = 2000
N_ZONES = 200
BASE_TIME = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)   # a Tuesday
CREATED_AT = "2026-11-24T12:00:00Z"
TARGET_OPSET = 15
MODEL_VERSION = "1"

# Feature views: name -> (join key, max age, [(feature, feast value type)])
VIEWS = {
    "customer_profile": ("customer_id", timedelta(days=7), [
        ("account_age_days", "INT64"),
        ("lifetime_bookings", "INT64"),
        ("cancellation_rate", "DOUBLE"),
        ("avg_booking_value", "DOUBLE"),
        ("payment_failures_90d", "INT64"),
        ("chargebacks_1y", "INT64"),
    ]),
    "customer_activity": ("customer_id", timedelta(days=1), [
        ("sessions_7d", "INT64"),
        ("bookings_30d", "INT64"),
        ("days_since_last_booking", "DOUBLE"),
    ]),
    "zone_demand": ("zone_id", timedelta(hours=1), [
        ("open_requests_15m", "INT64"),
        ("available_drivers", "INT64"),
        ("demand_supply_ratio", "DOUBLE"),
        ("avg_wait_minutes", "DOUBLE"),
        ("cancellations_1h", "INT64"),
    ]),
    "zone_weather": ("zone_id", timedelta(hours=3), [
        ("precipitation_mm", "DOUBLE"),
        ("temperature_c", "DOUBLE"),
    ]),
}

RISK_INPUTS = [
    "customer_profile:account_age_days",
    "customer_profile:lifetime_bookings",
    "customer_profile:cancellation_rate",
    "customer_profile:avg_booking_value",
    "customer_profile:payment_failures_90d",
    "customer_profile:chargebacks_1y",
    "customer_activity:sessions_7d",
    "customer_activity:bookings_30d",
    "customer_activity:days_since_last_booking",
]
SURGE_INPUTS = [
    "zone_demand:open_requests_15m",
    "zone_demand:available_drivers",
    "zone_demand:demand_supply_ratio",
    "zone_demand:avg_wait_minutes",
    "zone_demand:cancellations_1h",
    "zone_weather:precipitation_mm",
    "zone_weather:temperature_c",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
]

RISK_OUTPUTS = [{"name": "risk_score", "tensor": "probabilities", "column": 1,
                 "clamp": [0.0, 1.0]}]
RISK_DERIVED = [{"name": "risk_multiplier", "from": "risk_score", "bands": [
    {"upper": 0.2, "value": 0.95},
    {"upper": 0.5, "value": 1.0},
    {"upper": 0.8, "value": 1.15},
    {"upper": None, "value": 1.35},
]}]
SURGE_OUTPUTS = [{"name": "surge_factor", "tensor": "variable", "column": 0,
                  "clamp": [1.0, 3.0]}]
SURGE_DERIVED = []

# Ops the exported graphs may contain (default ONNX domain only).
ALLOWED_OPS = {"Cast", "Sub", "Div", "MatMul", "Add", "Relu", "Sigmoid",
               "Concat", "Reshape", "Identity"}


# --------------------------------------------------------------------------- #
# Synthetic generators (shared by training data and the snapshot)
# --------------------------------------------------------------------------- #
def r4(a):
    """Round to at most 4 decimals (what the snapshot CSVs store)."""
    return np.round(np.asarray(a, dtype=np.float64), 4) + 0.0   # +0.0 kills -0.0


def gen_customers(rng, n):
    """Customer profile + activity features and a latent risk label."""
    propensity = rng.normal(0.0, 1.0, n)          # latent "riskiness"

    new = rng.random(n) < 0.15
    age = np.where(new, rng.uniform(0, 60, n), np.exp(rng.normal(6.0, 0.85, n)))
    age = np.clip(np.floor(age), 0, 3650).astype(np.int64)

    booking_rate = rng.gamma(2.0, 0.5, n)         # bookings per 30 days
    lifetime = rng.poisson(booking_rate * (age + 1) / 30.0).astype(np.int64)

    p_cancel = rng.beta(1.5, 14.0, n) + 0.12 * (1 / (1 + np.exp(-(propensity - 1.0))))
    p_cancel = np.clip(p_cancel, 0.0, 0.95)
    cancels = rng.binomial(lifetime, p_cancel)
    cancel_rate = r4(np.where(lifetime > 0, cancels / np.maximum(lifetime, 1), 0.0))

    avg_value = r4(np.exp(rng.normal(np.log(28.0), 0.5, n) + 0.08 * propensity))

    pay_fail = rng.poisson(np.exp(-2.3 + 0.9 * propensity)).astype(np.int64)
    chargebacks = rng.poisson(np.exp(-4.2 + 1.1 * propensity)).astype(np.int64)

    sessions = rng.poisson(2.0 + 1.5 * booking_rate + 2.0 * (propensity > 1.5)).astype(np.int64)
    bookings_30d = np.minimum(rng.poisson(booking_rate), lifetime).astype(np.int64)
    days_since = np.where(
        lifetime > 0,
        np.minimum(rng.exponential(30.0 / booking_rate), age + rng.random(n)),
        age + rng.random(n),
    )
    days_since = np.where(bookings_30d > 0, np.minimum(days_since, rng.uniform(0, 30, n)), days_since)
    days_since = r4(days_since)

    features = np.column_stack([
        age, lifetime, cancel_rate, avg_value, pay_fail, chargebacks,
        sessions, bookings_30d, days_since,
    ]).astype(np.float64)

    logit = (-4.2
             + 1.3 * np.minimum(pay_fail, 5)
             + 2.25 * np.minimum(chargebacks, 3)
             + 8.25 * cancel_rate
             + 1.95 * (age < 30) + 0.75 * (age < 90)
             + 0.4 * np.log1p(avg_value / 40.0)
             - 0.22 * np.log1p(lifetime)
             + 0.6 * (sessions > 12)
             + rng.normal(0.0, 0.6, n))
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return features, label


def hour_intensity(hour, dow):
    """Relative demand by hour of day and day of week (0=Monday)."""
    base = np.array([0.55, 0.4, 0.3, 0.25, 0.25, 0.35, 0.6, 1.0, 1.3, 1.0, 0.85, 0.9,
                     1.0, 0.95, 0.9, 0.95, 1.1, 1.35, 1.45, 1.2, 1.0, 0.9, 0.85, 0.7])
    inten = base[hour]
    weekend = dow >= 5
    inten = np.where(weekend & ((hour >= 7) & (hour <= 9)), inten * 0.6, inten)   # no commute
    night = (hour >= 22) | (hour <= 3)
    inten = np.where(weekend & night, inten * 2.2, inten)                        # nightlife
    inten = np.where((dow == 4) & (hour >= 22), inten * 1.8, inten)               # Friday night
    return inten


def gen_zones(rng, n, hour=None, dow=None, zone_scale=None):
    """Zone demand/weather + calendar features and a surge target."""
    if zone_scale is None:
        zone_scale = np.exp(rng.normal(0.0, 0.5, n))
    if hour is None:
        hour = rng.integers(0, 24, n)
    if dow is None:
        dow = rng.integers(0, 7, n)
    weekend = (dow >= 5).astype(np.int64)

    raining = rng.random(n) < 0.25
    precip = r4(np.where(raining, rng.gamma(1.2, 2.5, n), 0.0))
    temp = r4(rng.normal(7.0, 5.0, n) + 3.0 * np.sin((hour - 9) / 24.0 * 2 * np.pi))

    inten = hour_intensity(hour, dow)
    rain_boost = 1.0 + 0.05 * np.minimum(precip, 20.0)
    shock = np.exp(rng.normal(0.0, 0.25, n))       # unexplained local demand spikes
    open_req = rng.poisson(18.0 * zone_scale * inten * rain_boost * shock).astype(np.int64)
    supply = 20.0 * zone_scale * (0.5 + 0.45 * np.sqrt(inten)) * (1.0 - 0.015 * np.minimum(precip, 20.0))
    drivers = rng.poisson(supply).astype(np.int64)
    ratio = r4(open_req / np.maximum(drivers, 1))
    wait = r4(np.clip(2.5 + 2.8 * ratio + 0.15 * precip + rng.normal(0, 1.0, n), 1.0, 60.0))
    cancels_1h = rng.poisson(4.0 * open_req * 0.02 * (1.0 + wait / 8.0)).astype(np.int64)

    features = np.column_stack([
        open_req, drivers, ratio, wait, cancels_1h, precip, temp, hour, dow, weekend,
    ]).astype(np.float64)

    rush = (weekend == 0) & (((hour >= 7) & (hour <= 9)) | ((hour >= 17) & (hour <= 19)))
    wk_night = (weekend == 1) & ((hour >= 22) | (hour <= 3))
    surge = (1.0
             + 1.5 * (1.0 - np.exp(-0.7 * np.maximum(ratio - 0.6, 0.0)))
             + 0.03 * np.maximum(wait - 6.0, 0.0)
             + 0.035 * np.minimum(precip, 25.0)
             + 0.15 * rush
             + 0.2 * wk_night
             + 0.05 * (temp < 0.0)
             + rng.normal(0.0, 0.06, n))
    surge = np.maximum(surge, 1.0)
    return features, surge


# --------------------------------------------------------------------------- #
# Training / export
# --------------------------------------------------------------------------- #
def train_risk(rng):
    X, y = gen_customers(rng, N_ROWS)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=TEST_FRACTION, random_state=SEED, stratify=y)
    # No early stopping: sklearn's classifier early stopping monitors accuracy,
    # which is a poor signal at ~12% positives; the loss-based tol stop is used.
    clf = MLPClassifier(hidden_layer_sizes=(32, 16), alpha=1e-2, batch_size=256,
                        learning_rate_init=1e-3, max_iter=200, early_stopping=False,
                        random_state=SEED)
    pipe = Pipeline([("scaler", StandardScaler()), ("mlp", clf)])
    pipe.fit(X_tr, y_tr)
    auc = roc_auc_score(y_te, pipe.predict_proba(X_te)[:, 1])
    info = {"positive_rate": round(float(y.mean()), 4), "n_iter": int(clf.n_iter_)}
    return pipe, X_tr, X_te, float(auc), info


def train_surge(rng):
    X, y = gen_zones(rng, N_ROWS)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=TEST_FRACTION, random_state=SEED)
    reg = MLPRegressor(hidden_layer_sizes=(32, 16), alpha=1e-3, batch_size=256,
                       learning_rate_init=1e-3, max_iter=200, early_stopping=True,
                       n_iter_no_change=10, random_state=SEED)
    pipe = Pipeline([("scaler", StandardScaler()), ("mlp", reg)])
    pipe.fit(X_tr, y_tr)
    pred = pipe.predict(X_te)
    r2 = r2_score(y_te, pred)
    info = {"mae": round(float(mean_absolute_error(y_te, pred)), 4), "n_iter": int(reg.n_iter_),
            "target_q[0,.5,.9,.99,1]": [round(float(q), 3)
                                        for q in np.quantile(y, [0.0, 0.5, 0.9, 0.99, 1.0])],
            "target_frac_gt_2.5": float((y > 2.5).mean()),
            "target_frac_gt_3": float((y > 3.0).mean())}
    return pipe, X_tr, X_te, float(r2), info


def prune_outputs(model, keep):
    """Keep only the graph outputs named in `keep`, drop nodes/initializers they
    don't need, and drop opset imports no remaining node uses."""
    g = model.graph
    outs = [o for o in g.output if o.name in keep]
    del g.output[:]
    g.output.extend(outs)
    needed = set(keep)
    kept = []
    for node in reversed(list(g.node)):
        if any(o in needed for o in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
    kept.reverse()
    del g.node[:]
    g.node.extend(kept)
    inits = [i for i in g.initializer if i.name in needed]
    del g.initializer[:]
    g.initializer.extend(inits)
    domains = {n.domain for n in g.node}
    ops = [o for o in model.opset_import if o.domain in domains or o.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(ops)
    return model


def export_onnx(name, pipe, n_features, classifier):
    scaler, mlp = pipe.named_steps["scaler"], pipe.named_steps["mlp"]
    options = {id(scaler): {"div": "div"}}           # Sub+Div instead of ai.onnx.ml Scaler
    if classifier:
        options[id(mlp)] = {"zipmap": False}
    model = convert_sklearn(
        pipe, initial_types=[("input", FloatTensorType([None, n_features]))],
        target_opset={"": TARGET_OPSET, "ai.onnx.ml": 3}, options=options)
    # The classifier's label branch uses ai.onnx.ml ArrayFeatureExtractor; only
    # the probabilities are served, so drop it.  For both models this also
    # removes the (then unused) ai.onnx.ml opset import.
    model = prune_outputs(model, {"probabilities"} if classifier else {"variable"})
    model.graph.name = name            # skl2onnx uses a random uuid: breaks reproducibility
    # Name the dynamic batch dimension.  skl2onnx leaves it empty; tract turns an
    # empty dim into an unknown fact (caller must then set the input fact) but a
    # named dim_param into a symbol, so the model optimizes out of the box.
    for vi in list(model.graph.input) + list(model.graph.output):
        dim0 = vi.type.tensor_type.shape.dim[0]
        if not dim0.HasField("dim_value"):
            dim0.dim_param = "N"
    model.producer_name = "train.py (skl2onnx)"
    model.doc_string = ""
    onnx.checker.check_model(model, full_check=True)
    ops = sorted({n.op_type for n in model.graph.node})
    domains = sorted({n.domain for n in model.graph.node})
    bad = [o for o in ops if o not in ALLOWED_OPS]
    if bad or domains not in ([""], []):
        raise RuntimeError(f"non-standard ops in export: {bad} domains={domains}")
    return model


def tensor_sig(vi):
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return {"name": vi.name,
            "elem_type": onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type),
            "shape": dims}


# --------------------------------------------------------------------------- #
# Manifest
# --------------------------------------------------------------------------- #
# Inputs derived from the request's time. A window of live traffic shorter than a week sees one part of
# the weekly cycle the training baseline spans (a minute of traffic is one hour of one day), so their PSI
# is taken over windows of a whole week: anything shorter would measure the clock, not the data.
TIME_INPUTS = {"hour_of_day", "day_of_week", "is_weekend"}
CYCLE_WINDOW_SECS = 7 * 24 * 3600
CYCLE_WHY = ("derived from the request's time: a shorter window sees only part of the weekly "
             "cycle the baseline spans")


def baseline(col):
    """Decile edges (deduped, min..max) and the training fraction per bin.

    Bin i is [edges[i], edges[i+1]) except the last, which is closed
    [edges[-2], edges[-1]].  Values outside the edges fall into the first/last bin.

    A column whose deciles collapse into one bin (mostly one value: a count that is
    nearly always 0, a flag) gets one bin per distinct value instead, the last
    closed at max + 1, so a shift away from the common value can still be seen.
    """
    col = np.asarray(col, dtype=np.float64)
    q = np.quantile(col, np.linspace(0.0, 1.0, 11))
    q[0], q[-1] = col.min(), col.max()
    edges = np.unique(q)
    if len(edges) <= 2:
        edges = np.append(np.unique(col)[:10], col.max() + 1.0)
    nb = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, col, side="right") - 1, 0, nb - 1)
    counts = np.bincount(idx, minlength=nb)
    fractions = counts / counts.sum()
    return {"edges": [float(e) for e in edges], "fractions": [float(f) for f in fractions]}


def build_manifest(name, description, input_names, X_tr, outputs, derived, metrics):
    inputs = []
    for j, fname in enumerate(input_names):
        entry = {"name": fname, "default": float(r4(np.median(X_tr[:, j]))),
                 "baseline": baseline(X_tr[:, j])}
        if fname in TIME_INPUTS:
            entry["drift"] = {"window_secs": CYCLE_WINDOW_SECS, "why": CYCLE_WHY}
        inputs.append(entry)
    return {
        "model": name,
        "version": MODEL_VERSION,
        "description": description,
        "created_at": CREATED_AT,
        "input_tensor": "input",
        "inputs": inputs,
        "outputs": outputs,
        "derived": derived,
        "metrics": metrics,
    }


# --------------------------------------------------------------------------- #
# Expected scores (onnxruntime on the exported file + manifest post-processing)
# --------------------------------------------------------------------------- #
RISK_CASES = [
    # (label for stdout, features; omitted keys -> manifest default)
    ("loyal low-risk", {
        "customer_profile:account_age_days": 1460.0, "customer_profile:lifetime_bookings": 96.0,
        "customer_profile:cancellation_rate": 0.0208, "customer_profile:avg_booking_value": 31.5,
        "customer_profile:payment_failures_90d": 0.0, "customer_profile:chargebacks_1y": 0.0,
        "customer_activity:sessions_7d": 4.0, "customer_activity:bookings_30d": 3.0,
        "customer_activity:days_since_last_booking": 2.5}),
    ("typical", {
        "customer_profile:account_age_days": 412.0, "customer_profile:lifetime_bookings": 14.0,
        "customer_profile:cancellation_rate": 0.0714, "customer_profile:avg_booking_value": 27.8,
        "customer_profile:payment_failures_90d": 0.0, "customer_profile:chargebacks_1y": 0.0,
        "customer_activity:sessions_7d": 3.0, "customer_activity:bookings_30d": 1.0,
        "customer_activity:days_since_last_booking": 11.25}),
    ("some payment failures", {
        "customer_profile:account_age_days": 220.0, "customer_profile:lifetime_bookings": 9.0,
        "customer_profile:cancellation_rate": 0.1111, "customer_profile:avg_booking_value": 35.0,
        "customer_profile:payment_failures_90d": 2.0, "customer_profile:chargebacks_1y": 0.0,
        "customer_activity:sessions_7d": 6.0, "customer_activity:bookings_30d": 1.0,
        "customer_activity:days_since_last_booking": 8.0}),
    ("brand-new account, failures + chargeback", {
        "customer_profile:account_age_days": 5.0, "customer_profile:lifetime_bookings": 2.0,
        "customer_profile:cancellation_rate": 0.5, "customer_profile:avg_booking_value": 88.0,
        "customer_profile:payment_failures_90d": 3.0, "customer_profile:chargebacks_1y": 1.0,
        "customer_activity:sessions_7d": 18.0, "customer_activity:bookings_30d": 2.0,
        "customer_activity:days_since_last_booking": 1.0}),
    ("serial chargebacks", {
        "customer_profile:account_age_days": 300.0, "customer_profile:lifetime_bookings": 20.0,
        "customer_profile:cancellation_rate": 0.25, "customer_profile:avg_booking_value": 45.0,
        "customer_profile:payment_failures_90d": 4.0, "customer_profile:chargebacks_1y": 2.0,
        "customer_activity:sessions_7d": 9.0, "customer_activity:bookings_30d": 3.0,
        "customer_activity:days_since_last_booking": 4.0}),
    ("missing payment_failures_90d + days_since_last_booking", {
        "customer_profile:account_age_days": 800.0, "customer_profile:lifetime_bookings": 40.0,
        "customer_profile:cancellation_rate": 0.05, "customer_profile:avg_booking_value": 24.0,
        "customer_profile:chargebacks_1y": 0.0,
        "customer_activity:sessions_7d": 2.0, "customer_activity:bookings_30d": 2.0}),
    ("new account, no history", {
        "customer_profile:account_age_days": 12.0, "customer_profile:lifetime_bookings": 0.0,
        "customer_profile:cancellation_rate": 0.0, "customer_profile:avg_booking_value": 30.0,
        "customer_profile:payment_failures_90d": 1.0, "customer_profile:chargebacks_1y": 0.0,
        "customer_activity:sessions_7d": 5.0, "customer_activity:bookings_30d": 0.0,
        "customer_activity:days_since_last_booking": 12.5}),
    ("missing whole customer_activity view", {
        "customer_profile:account_age_days": 60.0, "customer_profile:lifetime_bookings": 4.0,
        "customer_profile:cancellation_rate": 0.25, "customer_profile:avg_booking_value": 52.0,
        "customer_profile:payment_failures_90d": 1.0, "customer_profile:chargebacks_1y": 0.0}),
]

SURGE_CASES = [
    ("oversupplied big zone, weekday night (raw < 1 expected)", {
        "zone_demand:open_requests_15m": 18.0, "zone_demand:available_drivers": 96.0,
        "zone_demand:demand_supply_ratio": 0.1875, "zone_demand:avg_wait_minutes": 4.2,
        "zone_demand:cancellations_1h": 1.0, "zone_weather:precipitation_mm": 0.0,
        "zone_weather:temperature_c": 4.0, "hour_of_day": 3.0, "day_of_week": 2.0,
        "is_weekend": 0.0}),
    ("midday normal", {
        "zone_demand:open_requests_15m": 18.0, "zone_demand:available_drivers": 19.0,
        "zone_demand:demand_supply_ratio": 0.9474, "zone_demand:avg_wait_minutes": 5.2,
        "zone_demand:cancellations_1h": 2.0, "zone_weather:precipitation_mm": 0.0,
        "zone_weather:temperature_c": 9.0, "hour_of_day": 12.0, "day_of_week": 1.0,
        "is_weekend": 0.0}),
    ("weekday morning rush", {
        "zone_demand:open_requests_15m": 34.0, "zone_demand:available_drivers": 17.0,
        "zone_demand:demand_supply_ratio": 2.0, "zone_demand:avg_wait_minutes": 8.9,
        "zone_demand:cancellations_1h": 5.0, "zone_weather:precipitation_mm": 0.0,
        "zone_weather:temperature_c": 4.0, "hour_of_day": 8.0, "day_of_week": 3.0,
        "is_weekend": 0.0}),
    ("evening rush in rain", {
        "zone_demand:open_requests_15m": 45.0, "zone_demand:available_drivers": 16.0,
        "zone_demand:demand_supply_ratio": 2.8125, "zone_demand:avg_wait_minutes": 12.4,
        "zone_demand:cancellations_1h": 9.0, "zone_weather:precipitation_mm": 6.5,
        "zone_weather:temperature_c": 6.0, "hour_of_day": 18.0, "day_of_week": 4.0,
        "is_weekend": 0.0}),
    ("saturday night", {
        "zone_demand:open_requests_15m": 38.0, "zone_demand:available_drivers": 15.0,
        "zone_demand:demand_supply_ratio": 2.5333, "zone_demand:avg_wait_minutes": 10.0,
        "zone_demand:cancellations_1h": 6.0, "zone_weather:precipitation_mm": 0.0,
        "zone_weather:temperature_c": 2.0, "hour_of_day": 23.0, "day_of_week": 5.0,
        "is_weekend": 1.0}),
    ("storm, extreme shortage (raw > 3 expected)", {
        "zone_demand:open_requests_15m": 120.0, "zone_demand:available_drivers": 15.0,
        "zone_demand:demand_supply_ratio": 8.0, "zone_demand:avg_wait_minutes": 30.0,
        "zone_demand:cancellations_1h": 30.0, "zone_weather:precipitation_mm": 22.0,
        "zone_weather:temperature_c": -2.0, "hour_of_day": 18.0, "day_of_week": 0.0,
        "is_weekend": 0.0}),
    ("missing avg_wait_minutes + temperature_c", {
        "zone_demand:open_requests_15m": 26.0, "zone_demand:available_drivers": 18.0,
        "zone_demand:demand_supply_ratio": 1.4444, "zone_demand:cancellations_1h": 3.0,
        "zone_weather:precipitation_mm": 1.2, "hour_of_day": 17.0, "day_of_week": 2.0,
        "is_weekend": 0.0}),
    ("sunday afternoon, missing whole zone_weather view", {
        "zone_demand:open_requests_15m": 20.0, "zone_demand:available_drivers": 22.0,
        "zone_demand:demand_supply_ratio": 0.9091, "zone_demand:avg_wait_minutes": 4.6,
        "zone_demand:cancellations_1h": 1.0, "hour_of_day": 15.0, "day_of_week": 6.0,
        "is_weekend": 1.0}),
]


def apply_bands(v, bands):
    for b in bands:
        if b["upper"] is None or v < b["upper"]:
            return b["value"]
    raise ValueError("no band matched")


def expected_rows(model_path, manifest, cases):
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [i["name"] for i in manifest["inputs"]]
    defaults = {i["name"]: i["default"] for i in manifest["inputs"]}
    X = np.array([[feats.get(n, defaults[n]) for n in names] for _, feats in cases],
                 dtype=np.float32)
    tensors = {o["tensor"] for o in manifest["outputs"]}
    res = dict(zip(sorted(tensors), sess.run(sorted(tensors), {manifest["input_tensor"]: X})))
    rows, log = [], []
    for r, (label, feats) in enumerate(cases):
        unknown = set(feats) - set(names)
        if unknown:
            raise ValueError(f"unknown features in case {label!r}: {unknown}")
        outputs, raw = {}, {}
        for o in manifest["outputs"]:
            v = float(res[o["tensor"]][r, o["column"]])
            raw[o["name"]] = v
            lo, hi = o["clamp"]
            outputs[o["name"]] = min(max(v, lo), hi)
        for d in manifest["derived"]:
            v = outputs[d["from"]]
            uppers = [b["upper"] for b in d["bands"] if b["upper"] is not None]
            if any(abs(v - u) < 1e-3 for u in uppers):
                raise RuntimeError(f"case {label!r}: {v} too close to a band edge")
            outputs[d["name"]] = apply_bands(v, d["bands"])
        rows.append({"features": {k: float(v) for k, v in feats.items()}, "outputs": outputs})
        log.append((label, sorted(set(names) - set(feats)), raw, outputs))
    return rows, log


# --------------------------------------------------------------------------- #
# Snapshot CSVs
# --------------------------------------------------------------------------- #
def rfc3339(dt):
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt(value, vtype):
    if vtype == "INT64":
        return str(int(value))
    return repr(float(np.round(value, 4)) + 0.0)


def event_times(rng, n, max_age):
    """Offsets before BASE_TIME: ~98% within max_age, exactly 2% older."""
    secs = max_age.total_seconds()
    offsets = rng.uniform(0.0, secs * 0.98, n)
    stale = rng.choice(n, size=int(round(0.02 * n)), replace=False)
    offsets[stale] = rng.uniform(secs * 1.05, secs * 3.0, len(stale))
    offsets = np.floor(offsets)
    return [BASE_TIME - timedelta(seconds=int(s)) for s in offsets], set(int(i) for i in stale)


def write_csv(path, key, ids, times, cols, data, keep_mask):
    header = [key, "event_timestamp"] + [c for c, _ in cols]
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for i, eid in enumerate(ids):
            if not keep_mask[i]:
                continue
            w.writerow([eid, rfc3339(times[i])] + [fmt(data[i, j], t) for j, (_, t) in enumerate(cols)])


def write_snapshot(rng):
    SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
    stats = {}

    # Customers
    cust_ids = [f"C{i:06d}" for i in range(1, N_CUSTOMERS + 1)]
    Xc, _ = gen_customers(rng, N_CUSTOMERS)
    prof_cols = VIEWS["customer_profile"][2]
    act_cols = VIEWS["customer_activity"][2]
    t_prof, stale_prof = event_times(rng, N_CUSTOMERS, VIEWS["customer_profile"][1])
    t_act, stale_act = event_times(rng, N_CUSTOMERS, VIEWS["customer_activity"][1])
    act_keep = np.ones(N_CUSTOMERS, dtype=bool)
    act_keep[rng.choice(N_CUSTOMERS, size=N_CUSTOMERS // 100, replace=False)] = False
    write_csv(SNAPSHOT_DIR / "customer_profile.csv", "customer_id", cust_ids, t_prof,
              prof_cols, Xc[:, :6], np.ones(N_CUSTOMERS, dtype=bool))
    write_csv(SNAPSHOT_DIR / "customer_activity.csv", "customer_id", cust_ids, t_act,
              act_cols, Xc[:, 6:], act_keep)
    stats["customer_profile"] = {"rows": N_CUSTOMERS, "stale": len(stale_prof)}
    stats["customer_activity"] = {"rows": int(act_keep.sum()),
                                  "stale": len([i for i in stale_act if act_keep[i]]),
                                  "missing_entities": int((~act_keep).sum())}

    # Zones: demand values generated at the hour/weekday of each row's timestamp.
    zone_ids = [f"Z{i:04d}" for i in range(1, N_ZONES + 1)]
    t_dem, stale_dem = event_times(rng, N_ZONES, VIEWS["zone_demand"][1])
    t_wx, stale_wx = event_times(rng, N_ZONES, VIEWS["zone_weather"][1])
    hours = np.array([t.hour for t in t_dem])
    dows = np.array([t.weekday() for t in t_dem])
    Xz, _ = gen_zones(rng, N_ZONES, hour=hours, dow=dows)
    wx_keep = np.ones(N_ZONES, dtype=bool)
    wx_keep[rng.choice(N_ZONES, size=N_ZONES // 50, replace=False)] = False
    write_csv(SNAPSHOT_DIR / "zone_demand.csv", "zone_id", zone_ids, t_dem,
              VIEWS["zone_demand"][2], Xz[:, :5], np.ones(N_ZONES, dtype=bool))
    write_csv(SNAPSHOT_DIR / "zone_weather.csv", "zone_id", zone_ids, t_wx,
              VIEWS["zone_weather"][2], Xz[:, 5:7], wx_keep)
    stats["zone_demand"] = {"rows": N_ZONES, "stale": len(stale_dem)}
    stats["zone_weather"] = {"rows": int(wx_keep.sum()),
                             "stale": len([i for i in stale_wx if wx_keep[i]]),
                             "missing_entities": int((~wx_keep).sum())}
    return stats


# --------------------------------------------------------------------------- #
def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, allow_nan=False)
        f.write("\n")


def main():
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    t0 = time.time()
    rng_risk = np.random.default_rng([SEED, 1])
    rng_surge = np.random.default_rng([SEED, 2])
    rng_snap = np.random.default_rng([SEED, 3])

    results = {}
    specs = [
        ("customer_risk", train_risk, rng_risk, RISK_INPUTS, True, RISK_OUTPUTS, RISK_DERIVED,
         "MLP classifier (StandardScaler + MLP 32x16) estimating the probability that a "
         "customer is high-risk (payment default / chargeback / abusive cancellation).",
         "auc", RISK_CASES),
        ("demand_surge", train_surge, rng_surge, SURGE_INPUTS, False, SURGE_OUTPUTS,
         SURGE_DERIVED,
         "MLP regressor (StandardScaler + MLP 32x16) estimating the surge price factor of a "
         "zone from live demand/supply, weather and time of day.",
         "r2", SURGE_CASES),
    ]
    expected = {}
    for (name, train_fn, rng, input_names, is_clf, outputs, derived, desc, metric,
         cases) in specs:
        ts = time.time()
        pipe, X_tr, X_te, score, info = train_fn(rng)
        train_s = time.time() - ts
        model = export_onnx(name, pipe, len(input_names), is_clf)
        out_dir = MODELS_DIR / name / MODEL_VERSION
        out_dir.mkdir(parents=True, exist_ok=True)
        model_path = out_dir / "model.onnx"
        model_path.write_bytes(model.SerializeToString())
        # Each output's distribution over the training rows (after its clamp): the baseline its
        # prediction drift is measured against.
        raw_tr = pipe.predict_proba(X_tr) if is_clf else pipe.predict(X_tr).reshape(-1, 1)
        outputs = [dict(o, baseline=baseline(np.clip(raw_tr[:, o["column"]], *o["clamp"])))
                   for o in outputs]
        if TIME_INPUTS & set(input_names):
            # The output follows the weekly cycle of its time inputs (rush hours, weekend nights).
            for o in outputs:
                o["drift"] = {"window_secs": CYCLE_WINDOW_SECS,
                              "why": "depends on the request's time: a shorter window sees only part "
                                     "of the weekly cycle the baseline spans"}
        manifest = build_manifest(name, desc, input_names, X_tr, outputs, derived,
                                  {metric: round(score, 4), "training_rows": int(len(X_tr))})
        rows, log = expected_rows(model_path, manifest, cases)
        # The same rows as probes: a version is servable only once it scores them as recorded here.
        manifest["probes"] = rows
        write_json(out_dir / "manifest.json", manifest)
        # ONNX (float32) vs sklearn (float64) on the held-out rows.
        sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        onnx_out = sess.run(None, {"input": X_te.astype(np.float32)})[0]
        skl_out = pipe.predict_proba(X_te) if is_clf else pipe.predict(X_te).reshape(-1, 1)
        max_diff = float(np.max(np.abs(onnx_out - skl_out)))
        expected[name] = {"version": MODEL_VERSION, "rows": rows}
        results[name] = model

        print(f"== {name}: held-out {metric} = {score:.4f}  (train rows {len(X_tr)}, "
              f"{train_s:.1f}s)  {info}")
        print(f"   onnxruntime vs sklearn on held-out rows: max abs diff {max_diff:.2e}")
        print(f"   ops: {sorted({n.op_type for n in model.graph.node})}")
        print(f"   opsets: {[(o.domain or 'ai.onnx', o.version) for o in model.opset_import]}")
        print(f"   inputs: {[tensor_sig(v) for v in model.graph.input]}")
        print(f"   outputs: {[tensor_sig(v) for v in model.graph.output]}")
        for label, missing, raw, outs in log:
            print(f"   [{label}] raw={raw} -> {outs}" + (f" (defaults for {missing})" if missing else ""))

    write_json(MODELS_DIR / "expected_scores.json", expected)
    stats = write_snapshot(rng_snap)
    print(f"== snapshot: {stats}")
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
