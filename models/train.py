#!/usr/bin/env python3
"""Deterministic training + ONNX export for the vitalflow diabetes risk model.

Reproduce (from the repository root):

    python3.11 -m venv /root/.venvs/vitalflow-train
    /root/.venvs/vitalflow-train/bin/pip install -r models/requirements.txt
    /root/.venvs/vitalflow-train/bin/python models/train.py
    /root/.venvs/vitalflow-train/bin/python models/check_onnx.py

Writes (all under models/):
    diabetes_rf.onnx            forest only (input = *scaled* features, float32 [N, 8])
    diabetes_rf.json            sidecar: scaler (float64), feature ranges, risk bands, metrics, ...
    metrics.json                held-out metrics (stratified 80/20 split)
    fixtures/reference.json     all 768 rows: raw features, scaled features, sklearn proba,
                                onnxruntime proba, shap values (positive class) + base value

See models/README.md for the exact semantics of the ONNX attributes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import random
import sys
from pathlib import Path

# Determinism: fixed seeds and single-threaded numeric libraries.
os.environ.setdefault("PYTHONHASHSEED", "0")
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import shap  # noqa: E402
import skl2onnx  # noqa: E402
import sklearn  # noqa: E402
from onnx import helper, numpy_helper  # noqa: E402
from skl2onnx import convert_sklearn  # noqa: E402
from skl2onnx.common.data_types import FloatTensorType  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

try:  # optional: only used to verify the exported model
    import onnxruntime as ort  # noqa: E402
except Exception:  # pragma: no cover
    ort = None

SEED = 42
random.seed(SEED)
np.random.seed(SEED)

HERE = Path(__file__).resolve().parent
DATA_CSV = HERE / "data" / "pima-diabetes.csv"
ONNX_PATH = HERE / "diabetes_rf.onnx"
SIDECAR_PATH = HERE / "diabetes_rf.json"
METRICS_PATH = HERE / "metrics.json"
FIXTURE_PATH = HERE / "fixtures" / "reference.json"

MODEL_NAME = "diabetes-rf"
MODEL_GENERATION = "diabetes-rf-1"  # bump when training params / data change

FEATURES = [
    "Pregnancies",
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
    "DiabetesPedigreeFunction",
    "Age",
]
LABEL = "Outcome"
CLASS_LABELS = [0, 1]  # 0 = no diabetes, 1 = diabetes
POSITIVE_CLASS_INDEX = 1

TEST_SIZE = 0.2
RF_PARAMS = dict(
    n_estimators=100,
    max_depth=8,
    min_samples_leaf=1,
    max_features="sqrt",
    bootstrap=True,
    criterion="gini",
    random_state=SEED,
    n_jobs=1,
)
ONNX_TARGET_OPSET = {"": 15, "ai.onnx.ml": 1}

# Valid input ranges for API validation (inclusive). Every row of the dataset
# lies inside them (asserted below). 0 means "not measured" for Glucose,
# BloodPressure, SkinThickness, Insulin and BMI, exactly as in the dataset,
# so 0 stays valid for those.
FEATURE_RANGES = {
    "Pregnancies": {"min": 0, "max": 20, "unit": "count", "integer": True,
                    "note": "number of pregnancies; dataset max 17"},
    "Glucose": {"min": 0, "max": 300, "unit": "mg/dL", "integer": False,
                "note": "2-h oral glucose tolerance test plasma glucose; 0 = missing (as in the dataset); dataset max 199"},
    "BloodPressure": {"min": 0, "max": 200, "unit": "mmHg", "integer": False,
                      "note": "diastolic blood pressure; 0 = missing; dataset max 122"},
    "SkinThickness": {"min": 0, "max": 100, "unit": "mm", "integer": False,
                      "note": "triceps skin-fold thickness; 0 = missing; dataset max 99"},
    "Insulin": {"min": 0, "max": 1000, "unit": "uU/mL", "integer": False,
                "note": "2-h serum insulin; 0 = missing; dataset max 846"},
    "BMI": {"min": 0, "max": 80, "unit": "kg/m^2", "integer": False,
            "note": "body-mass index; 0 = missing; dataset max 67.1"},
    "DiabetesPedigreeFunction": {"min": 0.0, "max": 3.0, "unit": "score", "integer": False,
                                 "note": "diabetes pedigree function; dataset range 0.078..2.42"},
    "Age": {"min": 1, "max": 120, "unit": "years", "integer": True,
            "note": "age in years; dataset range 21..81"},
}

# Risk bands on P(Outcome = 1): low if p < 0.3, moderate if 0.3 <= p < 0.6, high if p >= 0.6.
RISK_BANDS = [
    {"level": "low", "min_inclusive": 0.0, "max_exclusive": 0.3},
    {"level": "moderate", "min_inclusive": 0.3, "max_exclusive": 0.6},
    {"level": "high", "min_inclusive": 0.6, "max_exclusive": None},
]


def sha256_bytes(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def load_data():
    with open(DATA_CSV, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        assert header == FEATURES + [LABEL], header
        rows = [r for r in reader if r]
    X = np.array([[float(v) for v in r[:8]] for r in rows], dtype=np.float64)
    y = np.array([int(r[8]) for r in rows], dtype=np.int64)
    assert X.shape == (768, 8), X.shape
    assert int(y.sum()) == 268, int(y.sum())
    return X, y


def check_ranges(X):
    for j, name in enumerate(FEATURES):
        lo, hi = FEATURE_RANGES[name]["min"], FEATURE_RANGES[name]["max"]
        col = X[:, j]
        assert col.min() >= lo and col.max() <= hi, (name, col.min(), col.max(), lo, hi)


def risk_level(p: float) -> str:
    for band in RISK_BANDS:
        if p >= band["min_inclusive"] and (band["max_exclusive"] is None or p < band["max_exclusive"]):
            return band["level"]
    raise ValueError(p)


def get_tree_node(model: onnx.ModelProto):
    nodes = [n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier"]
    assert len(nodes) == 1, [n.op_type for n in model.graph.node]
    return nodes[0]


def attr(node, name):
    for a in node.attribute:
        if a.name == name:
            return a
    raise KeyError(name)


def set_node_covers(model: onnx.ModelProto, clf: RandomForestClassifier) -> None:
    """Replace skl2onnx's constant nodes_hitrates (1.0) with the per-node cover
    that shap.TreeExplainer uses for sklearn forests: tree_.weighted_n_node_samples
    (see shap/explainers/_tree.py, SingleTree: node_sample_weight =
    tree.weighted_n_node_samples). The mapping is by (nodes_treeids, nodes_nodeids):
    skl2onnx writes tree t = clf.estimators_[t] and node id = sklearn node index."""
    node = get_tree_node(model)
    tree_ids = list(attr(node, "nodes_treeids").ints)
    node_ids = list(attr(node, "nodes_nodeids").ints)
    hit = attr(node, "nodes_hitrates")
    assert hit.type == onnx.AttributeProto.FLOATS
    assert all(v == 1.0 for v in hit.floats), "expected skl2onnx default hitrates of 1.0"
    assert len(hit.floats) == len(tree_ids) == len(node_ids)
    covers = []
    for t, n in zip(tree_ids, node_ids):
        w = float(clf.estimators_[t].tree_.weighted_n_node_samples[n])
        # bootstrap counts are integers -> exactly representable in float32
        assert w == float(np.float32(w)) and w == round(w), w
        covers.append(w)
    # every sklearn node appears exactly once
    assert len(set(zip(tree_ids, node_ids))) == len(tree_ids)
    assert len(tree_ids) == sum(e.tree_.node_count for e in clf.estimators_)
    del hit.floats[:]
    hit.floats.extend(covers)


def run_ort(model_bytes: bytes, Xs32: np.ndarray):
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    label, proba = sess.run(None, {"input": Xs32})
    return names, np.asarray(label), np.asarray(proba)


def main() -> int:
    X, y = load_data()
    check_ranges(X)

    X_train, X_test, y_train, y_test, idx_train, idx_test = train_test_split(
        X, y, np.arange(len(y)), test_size=TEST_SIZE, stratify=y, random_state=SEED
    )

    scaler = StandardScaler()
    clf = RandomForestClassifier(**RF_PARAMS)
    pipe = Pipeline([("scaler", scaler), ("rf", clf)])
    pipe.fit(X_train, y_train)
    assert list(clf.classes_) == CLASS_LABELS

    # ---------------- held-out metrics ----------------
    proba_test = pipe.predict_proba(X_test)[:, POSITIVE_CLASS_INDEX]
    pred_test = pipe.predict(X_test)
    cm = confusion_matrix(y_test, pred_test, labels=CLASS_LABELS)
    metrics = {
        "split": {
            "method": "sklearn.model_selection.train_test_split(stratify=y, test_size=0.2, random_state=42)",
            "n_train": int(len(y_train)),
            "n_test": int(len(y_test)),
            "n_train_positive": int(y_train.sum()),
            "n_test_positive": int(y_test.sum()),
        },
        "shipped_model_trained_on": "training split only (80%, 614 rows); metrics below are on the held-out 20% (154 rows)",
        "decision_threshold": 0.5,
        "accuracy": float(accuracy_score(y_test, pred_test)),
        "roc_auc": float(roc_auc_score(y_test, proba_test)),
        "precision": float(precision_score(y_test, pred_test)),
        "recall": float(recall_score(y_test, pred_test)),
        "f1": float(f1_score(y_test, pred_test)),
        "confusion_matrix": {
            "labels": CLASS_LABELS,
            "layout": "rows = true class, cols = predicted class",
            "matrix": cm.tolist(),
            "tn": int(cm[0, 0]), "fp": int(cm[0, 1]), "fn": int(cm[1, 0]), "tp": int(cm[1, 1]),
        },
        "train_accuracy": float(accuracy_score(y_train, pipe.predict(X_train))),
    }

    # ---------------- ONNX export (forest only) ----------------
    onx = convert_sklearn(
        clf,
        name=MODEL_NAME,
        initial_types=[("input", FloatTensorType([None, len(FEATURES)]))],
        options={id(clf): {"zipmap": False}},
        target_opset=ONNX_TARGET_OPSET,
    )
    out_names = [o.name for o in onx.graph.output]
    assert out_names == ["label", "probabilities"], out_names
    assert [i.name for i in onx.graph.input] == ["input"]
    # skl2onnx lists the default domain twice in opset_import; keep one entry per domain.
    opsets = {}
    for op in onx.opset_import:
        assert opsets.setdefault(op.domain, op.version) == op.version, op
    del onx.opset_import[:]
    onx.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(opsets.items()))
    assert opsets == ONNX_TARGET_OPSET, opsets
    original_bytes = onx.SerializeToString()

    set_node_covers(onx, clf)
    onnx.checker.check_model(onx)

    # version = generation + short sha256 of the (metadata-free) ONNX model
    content_sha = sha256_bytes(onx.SerializeToString())
    version = f"{MODEL_GENERATION}-{content_sha[:12]}"

    tree_stats = {
        "n_trees": len(clf.estimators_),
        "total_nodes": int(sum(e.tree_.node_count for e in clf.estimators_)),
        "total_leaves": int(sum(e.tree_.n_leaves for e in clf.estimators_)),
        "max_depth_reached": int(max(e.tree_.max_depth for e in clf.estimators_)),
        "max_nodes_per_tree": int(max(e.tree_.node_count for e in clf.estimators_)),
    }

    meta = {
        "model_name": MODEL_NAME,
        "model_version": version,
        "feature_names": ",".join(FEATURES),
        "n_features": str(len(FEATURES)),
        "input_is_scaled": "true (StandardScaler: (x - mean) / scale in float64, then cast to float32; see diabetes_rf.json)",
        "class_labels": ",".join(str(c) for c in CLASS_LABELS),
        "positive_class_index": str(POSITIVE_CLASS_INDEX),
        "nodes_hitrates": "tree_.weighted_n_node_samples (TreeSHAP node cover)",
        "content_sha256": content_sha,
    }
    del onx.metadata_props[:]
    for k, v in meta.items():
        onx.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onx.doc_string = (
        "Pima diabetes RandomForestClassifier (forest only; feed StandardScaler-scaled float32 features). "
        "probabilities[:, 1] = P(Outcome=1)."
    )
    onnx.checker.check_model(onx)
    final_bytes = onx.SerializeToString()
    ONNX_PATH.write_bytes(final_bytes)
    onnx_sha = sha256_bytes(final_bytes)

    # ---------------- reference values ----------------
    Xs = scaler.transform(X)  # float64
    Xs32 = Xs.astype(np.float32)
    proba_all = pipe.predict_proba(X)[:, POSITIVE_CLASS_INDEX]
    pred_all = pipe.predict(X)

    ort_info = {"available": ort is not None}
    proba_ort = None
    if ort is not None:
        names0, label0, proba0 = run_ort(original_bytes, Xs32)
        names1, label1, proba1 = run_ort(final_bytes, Xs32)
        assert names0 == names1 == ["label", "probabilities"]
        assert proba1.shape == (768, 2) and proba1.dtype == np.float32
        # nodes_hitrates / metadata change nothing in the computation
        assert np.array_equal(proba0, proba1) and np.array_equal(label0, label1)
        proba_ort = proba1[:, POSITIVE_CLASS_INDEX].astype(np.float64)
        assert np.allclose(proba1.sum(1), 1.0, atol=1e-6)
        max_diff = float(np.max(np.abs(proba_ort - proba_all)))
        assert max_diff < 1e-5, max_diff
        label_agree = int(np.sum(label1 == pred_all))
        ort_info.update({
            "version": ort.__version__,
            "modified_vs_original_onnx_identical": True,
            "max_abs_diff_proba_vs_sklearn": max_diff,
            "label_agreement_with_sklearn": f"{label_agree}/768",
        })

    # Emulate a plain float32 runtime (tract: f32 accumulator, trees summed in tree-id order,
    # P(class 1) = sum of class_weights of the reached leaves; P(class 0) = 1 - that, in f32).
    tnode = get_tree_node(onx)
    leaf_w = {
        (t, n): np.float32(w)
        for t, n, w in zip(attr(tnode, "class_treeids").ints, attr(tnode, "class_nodeids").ints,
                           attr(tnode, "class_weights").floats)
    }
    leaves = clf.apply(Xs32)  # (n_rows, n_trees) sklearn node ids == ONNX node ids
    proba_f32 = np.zeros(len(y), dtype=np.float32)
    for t in range(leaves.shape[1]):
        proba_f32 += np.array([leaf_w[(t, int(n))] for n in leaves[:, t]], dtype=np.float32)
    max_f32_diff = float(np.max(np.abs(proba_f32.astype(np.float64) - proba_all)))
    assert max_f32_diff < 1e-5, max_f32_diff
    if ort is not None:
        ort_info["max_abs_diff_onnxruntime_vs_f32_tree_order_sum"] = float(
            np.max(np.abs(proba_ort - proba_f32.astype(np.float64))))

    explainer = shap.TreeExplainer(clf)  # feature_perturbation="tree_path_dependent" (no background data)
    assert explainer.feature_perturbation == "tree_path_dependent", explainer.feature_perturbation
    sv = explainer.shap_values(Xs)
    sv = np.asarray(sv)
    if sv.ndim == 3:  # (n, features, classes) in recent shap
        sv_pos = sv[:, :, POSITIVE_CLASS_INDEX]
    else:  # pragma: no cover - old list-of-arrays API
        sv_pos = np.asarray(sv[POSITIVE_CLASS_INDEX])
    ev = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    base = float(ev[POSITIVE_CLASS_INDEX] if ev.size > 1 else ev[0])
    additivity = base + sv_pos.sum(1) - proba_all
    max_add_err = float(np.max(np.abs(additivity)))
    assert max_add_err < 1e-9, max_add_err

    set_test = {int(i) for i in idx_test}
    rows = []
    for i in range(len(y)):
        row = {
            "index": i,
            "raw": [float(v) for v in X[i]],
            "scaled": [float(v) for v in Xs[i]],
            "outcome": int(y[i]),
            "split": "test" if i in set_test else "train",
            "proba": float(proba_all[i]),
            "label": int(pred_all[i]),
            "risk_level": risk_level(float(proba_all[i])),
            "shap": [float(v) for v in sv_pos[i]],
        }
        row["proba_f32_tree_order"] = float(proba_f32[i])
        if proba_ort is not None:
            row["proba_onnxruntime"] = float(proba_ort[i])
        rows.append(row)

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "shap": shap.__version__,
        "onnxruntime": ort.__version__ if ort is not None else None,
    }

    fixture = {
        "description": (
            "Reference values for all 768 rows of models/data/pima-diabetes.csv. "
            "scaled = StandardScaler.transform in float64 ((x - mean) / scale); the forest sees float32(scaled). "
            "proba = sklearn Pipeline.predict_proba[:, 1] (float64 average of trees). "
            "shap = shap.TreeExplainer(rf, feature_perturbation='tree_path_dependent') values for class 1 "
            "computed on the scaled features; base_value + sum(shap) == proba. "
            "proba_f32_tree_order = float32 accumulation (0 + w_tree0 + w_tree1 + ...) of the ONNX class_weights "
            "of the reached leaves, as a plain f32 runtime such as tract computes probabilities[:, 1]. "
            "proba_onnxruntime = onnxruntime probabilities[:, 1]."
        ),
        "model_version": version,
        "onnx_sha256": onnx_sha,
        "feature_names": FEATURES,
        "positive_class_index": POSITIVE_CLASS_INDEX,
        "base_value": base,
        "additivity_max_abs_error": max_add_err,
        "additivity_tolerance": 1e-9,
        "max_abs_diff_proba_f32_tree_order_vs_proba": max_f32_diff,
        "onnxruntime": ort_info,
        "versions": versions,
        "n_rows": len(rows),
        "rows": rows,
    }

    sidecar = {
        "model_name": MODEL_NAME,
        "version": version,
        "onnx_file": ONNX_PATH.name,
        "onnx_sha256": onnx_sha,
        "content_sha256": content_sha,
        "onnx": {
            "input_name": "input",
            "input_shape": [None, len(FEATURES)],
            "input_dtype": "float32",
            "outputs": {"label": "int64 [N]; do not use it: tract computes it as argmax of its raw [sum, 0] score row, i.e. 0 for every row with this binary layout; derive label = 1 iff probabilities[:, 1] > 0.5",
                        "probabilities": "float32 [N, 2]; column 1 = P(Outcome=1)"},
            "opset": ONNX_TARGET_OPSET,
            "op": "ai.onnx.ml.TreeEnsembleClassifier",
            "nodes_hitrates": "node cover = sklearn tree_.weighted_n_node_samples (for TreeSHAP)",
        },
        "feature_names": FEATURES,
        "scaler": {
            "type": "StandardScaler",
            "formula": "scaled = (x - mean) / scale, computed in float64, then cast to float32 for the forest",
            "mean": [float(v) for v in scaler.mean_],
            "scale": [float(v) for v in scaler.scale_],
        },
        "feature_ranges": {
            name: FEATURE_RANGES[name] for name in FEATURES
        },
        "class_labels": CLASS_LABELS,
        "class_names": ["no_diabetes", "diabetes"],
        "positive_class_index": POSITIVE_CLASS_INDEX,
        "decision_threshold": 0.5,
        "decision_rule": "label = 1 iff P(Outcome=1) > 0.5 (strict; sklearn argmax sends ties to class 0)",
        "risk_bands": RISK_BANDS,
        "risk_bands_doc": "on P(Outcome=1): low if p < 0.3; moderate if 0.3 <= p < 0.6; high if p >= 0.6",
        "shap_base_value": base,
        "training": {
            "estimator": "sklearn Pipeline(StandardScaler, RandomForestClassifier); the ONNX holds the forest only",
            "rf_params": RF_PARAMS,
            "seed": SEED,
            "test_size": TEST_SIZE,
            "trained_on": "training split (80%, stratified, random_state=42)",
            "n_train": int(len(y_train)),
            "data_file": "models/data/pima-diabetes.csv",
            "data_sha256": sha256_bytes(DATA_CSV.read_bytes()),
            "tree_stats": tree_stats,
            "versions": versions,
        },
        "metrics": metrics,
    }

    METRICS_PATH.write_text(json.dumps(metrics, indent=2) + "\n")
    SIDECAR_PATH.write_text(json.dumps(sidecar, indent=2) + "\n")
    FIXTURE_PATH.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE_PATH.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")

    print(f"model version        : {version}")
    print(f"onnx sha256          : {onnx_sha}")
    print(f"trees                : {tree_stats}")
    print("NOTE: the shipped model is trained on the 80% training split only "
          f"({len(y_train)} rows); metrics are on the held-out 20% ({len(y_test)} rows).")
    print(f"held-out metrics     : acc={metrics['accuracy']:.4f} auc={metrics['roc_auc']:.4f} "
          f"prec={metrics['precision']:.4f} rec={metrics['recall']:.4f} f1={metrics['f1']:.4f} "
          f"cm={metrics['confusion_matrix']['matrix']}")
    print(f"shap base value      : {base!r}; additivity max err {max_add_err:.3e}")
    print(f"onnxruntime          : {ort_info}")
    for p in (ONNX_PATH, SIDECAR_PATH, METRICS_PATH, FIXTURE_PATH):
        print(f"wrote {p.relative_to(HERE.parent)} ({p.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
