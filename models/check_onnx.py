#!/usr/bin/env python3
"""Prove that models/diabetes_rf.onnx (+ the sidecar scaler) holds everything the
Rust side needs, by re-implementing from the raw ONNX attributes alone:

  * scaling      (x - mean) / scale in float64 (sidecar), cast to float32
  * prediction   TreeEnsembleClassifier traversal + aggregation
  * TreeSHAP     path-dependent TreeSHAP (Lundberg et al. 2018, Algorithm 2),
                 node covers read from `nodes_hitrates`

and asserting equality with models/fixtures/reference.json (sklearn + shap).

Plain Python (standard library + the `onnx` package only to parse the protobuf):
no numpy, no sklearn, no shap.  Usage:

    python models/check_onnx.py            # all 768 rows
    python models/check_onnx.py --rows 50  # first 50 rows (quick)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import sys
import time
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
PRED_TOL = 1e-6
SHAP_TOL = 1e-6


def f32(x: float) -> float:
    """Round a Python float (f64) to the nearest float32 (what `as f32` does in Rust)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


class Tree:
    __slots__ = ("feature", "threshold", "mode", "true_id", "false_id", "cover", "leaf_value", "is_leaf")

    def __init__(self, n):
        self.feature = [0] * n
        self.threshold = [0.0] * n
        self.mode = [""] * n
        self.true_id = [0] * n
        self.false_id = [0] * n
        self.cover = [0.0] * n
        self.leaf_value = [0.0] * n  # contribution to P(class 1) (already / n_trees)
        self.is_leaf = [False] * n


def load_forest(path: Path):
    model = onnx.load(str(path))
    nodes = [n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier"]
    assert len(nodes) == 1, "expected exactly one TreeEnsembleClassifier"
    node = nodes[0]
    assert node.domain == "ai.onnx.ml"
    a = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}

    post = a.get("post_transform", b"NONE")
    post = post.decode() if isinstance(post, bytes) else post
    assert post == "NONE", post
    assert "base_values" not in a, "no base_values expected"
    labels = list(a["classlabels_int64s"])
    assert labels == [0, 1], labels

    tids, nids = list(a["nodes_treeids"]), list(a["nodes_nodeids"])
    n_nodes = len(tids)
    for k in ("nodes_featureids", "nodes_values", "nodes_modes", "nodes_truenodeids",
              "nodes_falsenodeids", "nodes_hitrates", "nodes_missing_value_tracks_true"):
        assert len(a[k]) == n_nodes, k
    assert all(v == 0 for v in a["nodes_missing_value_tracks_true"])
    modes = [m.decode() for m in a["nodes_modes"]]
    assert set(modes) <= {"BRANCH_LEQ", "LEAF"}, set(modes)

    n_trees = max(tids) + 1
    # layout relied on by the README: grouped by tree, node ids 0..n-1 ascending in each tree
    assert list(zip(tids, nids)) == sorted(zip(tids, nids))
    assert sorted(set(tids)) == list(range(n_trees))
    sizes = [0] * n_trees
    for t in tids:
        sizes[t] += 1
    trees = [Tree(s) for s in sizes]
    seen = set()
    for k in range(n_nodes):
        t, n = tids[k], nids[k]
        assert 0 <= n < sizes[t], "node ids are 0..n_nodes_in_tree-1"
        assert (t, n) not in seen
        seen.add((t, n))
        tr = trees[t]
        tr.feature[n] = a["nodes_featureids"][k]
        tr.threshold[n] = a["nodes_values"][k]  # a float32 value
        tr.mode[n] = modes[k]
        tr.true_id[n] = a["nodes_truenodeids"][k]
        tr.false_id[n] = a["nodes_falsenodeids"][k]
        tr.cover[n] = a["nodes_hitrates"][k]
        tr.is_leaf[n] = modes[k] == "LEAF"

    c_t, c_n, c_id, c_w = (list(a[k]) for k in ("class_treeids", "class_nodeids", "class_ids", "class_weights"))
    assert len(c_t) == len(c_n) == len(c_id) == len(c_w)
    # Binary skl2onnx layout: exactly one entry per leaf, class id 0, weight = P(class 1)/n_trees.
    assert set(c_id) == {0}, set(c_id)
    assert list(zip(c_t, c_n)) == sorted(zip(c_t, c_n)), "leaf entries sorted by (tree, node)"
    leaf_seen = set()
    for t, n, w in zip(c_t, c_n, c_w):
        assert trees[t].is_leaf[n], "class weights only on LEAF nodes"
        assert (t, n) not in leaf_seen, "one weight per leaf"
        leaf_seen.add((t, n))
        assert 0.0 <= w <= 1.0 / n_trees + 1e-7, w
        trees[t].leaf_value[n] = w
    assert len(leaf_seen) == sum(sum(tr.is_leaf) for tr in trees), "every leaf has a weight"

    # structural sanity: children have larger ids (sklearn pre-order), covers add up
    for tr in trees:
        assert not tr.is_leaf[0]
        for n in range(len(tr.feature)):
            assert tr.cover[n] > 0
            if not tr.is_leaf[n]:
                l, r = tr.true_id[n], tr.false_id[n]
                assert l > n and r > n and 0 <= tr.feature[n] < 8
                assert tr.cover[l] + tr.cover[r] == tr.cover[n], "covers must be additive"
            else:
                assert tr.true_id[n] == 0 and tr.false_id[n] == 0
    meta = {p.key: p.value for p in model.metadata_props}
    return trees, meta, a


def predict(trees, x32):
    """Returns (P(class 1) summed in f64, P(class 1) accumulated in f32 in tree order)."""
    s = 0.0
    s32 = 0.0
    for tr in trees:
        n = 0
        while not tr.is_leaf[n]:
            n = tr.true_id[n] if x32[tr.feature[n]] <= tr.threshold[n] else tr.false_id[n]
        s += tr.leaf_value[n]
        s32 = f32(s32 + tr.leaf_value[n])  # exact IEEE f32 addition
    return s, s32


def expected_value(trees):
    ev = 0.0
    for tr in trees:
        root = tr.cover[0]
        ev += sum(tr.cover[n] / root * tr.leaf_value[n] for n in range(len(tr.feature)) if tr.is_leaf[n])
    return ev


# ---------------------------------------------------------------------------
# Path-dependent TreeSHAP, Algorithm 2 of Lundberg, Erion & Lee (2018),
# "Consistent Individualized Feature Attribution for Tree Ensembles".
# A path is four parallel lists: d (feature, -1 for the root dummy),
# z (zero fraction), o (one fraction), w (permutation weight).
# ---------------------------------------------------------------------------

def extend(d, z, o, w, pz, po, pi):
    d, z, o, w = d + [pi], z + [pz], o + [po], w + [1.0 if not w else 0.0]
    l = len(w) - 1
    for i in range(l - 1, -1, -1):
        w[i + 1] += po * w[i] * (i + 1) / (l + 1)
        w[i] = pz * w[i] * (l - i) / (l + 1)
    return d, z, o, w


def unwind(d, z, o, w, i):
    l = len(w) - 1
    n = w[l]
    w = w[:]
    oi, zi = o[i], z[i]
    for j in range(l - 1, -1, -1):
        if oi != 0.0:
            t = w[j]
            w[j] = n * (l + 1) / ((j + 1) * oi)
            n = t - w[j] * zi * (l - j) / (l + 1)
        else:
            w[j] = w[j] * (l + 1) / (zi * (l - j))
    d = d[:i] + d[i + 1:]
    z = z[:i] + z[i + 1:]
    o = o[:i] + o[i + 1:]
    return d, z, o, w[:l]


def unwound_sum(z, o, w, i):
    """sum(UNWIND(m, i).w) without building the path (same maths as UNWIND)."""
    l = len(w) - 1
    oi, zi = o[i], z[i]
    total = 0.0
    if oi != 0.0:
        n = w[l]
        for j in range(l - 1, -1, -1):
            t = n * (l + 1) / ((j + 1) * oi)
            total += t
            n = w[j] - t * zi * (l - j) / (l + 1)
    else:
        for j in range(l - 1, -1, -1):
            total += w[j] * (l + 1) / (zi * (l - j))
    return total


def tree_shap(tr, x32, phi):
    def recurse(j, d, z, o, w, pz, po, pi):
        d, z, o, w = extend(d, z, o, w, pz, po, pi)
        if tr.is_leaf[j]:
            v = tr.leaf_value[j]
            for i in range(1, len(w)):
                phi[d[i]] += unwound_sum(z, o, w, i) * (o[i] - z[i]) * v
            return
        f = tr.feature[j]
        if x32[f] <= tr.threshold[j]:
            h, c = tr.true_id[j], tr.false_id[j]
        else:
            h, c = tr.false_id[j], tr.true_id[j]
        iz = io = 1.0
        if f in d:
            k = d.index(f)
            iz, io = z[k], o[k]
            d, z, o, w = unwind(d, z, o, w, k)
        rj = tr.cover[j]
        recurse(h, d, z, o, w, iz * tr.cover[h] / rj, io, f)
        recurse(c, d, z, o, w, iz * tr.cover[c] / rj, 0.0, f)

    recurse(0, [], [], [], [], 1.0, 1.0, -1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", default=str(HERE / "diabetes_rf.onnx"))
    ap.add_argument("--sidecar", default=str(HERE / "diabetes_rf.json"))
    ap.add_argument("--fixture", default=str(HERE / "fixtures" / "reference.json"))
    ap.add_argument("--rows", type=int, default=None, help="check only the first N rows")
    args = ap.parse_args()

    onnx_path = Path(args.onnx)
    sidecar = json.loads(Path(args.sidecar).read_text())
    fixture = json.loads(Path(args.fixture).read_text())
    onnx_sha = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    assert sidecar["onnx_sha256"] == onnx_sha == fixture["onnx_sha256"], "artifacts out of sync"
    assert sidecar["version"] == fixture["model_version"]

    trees, meta, _ = load_forest(onnx_path)
    assert meta["model_version"] == sidecar["version"], (meta.get("model_version"), sidecar["version"])
    assert meta["feature_names"].split(",") == sidecar["feature_names"] == fixture["feature_names"]
    assert len(trees) == sidecar["training"]["rf_params"]["n_estimators"]

    mean, scale = sidecar["scaler"]["mean"], sidecar["scaler"]["scale"]
    ranges = sidecar["feature_ranges"]
    names = sidecar["feature_names"]

    base = expected_value(trees)
    base_err = abs(base - fixture["base_value"])
    assert base_err < SHAP_TOL, (base, fixture["base_value"])

    rows = fixture["rows"] if args.rows is None else fixture["rows"][: args.rows]
    max_pred, max_shap, max_add, max_ort = 0.0, 0.0, 0.0, 0.0
    t0 = time.perf_counter()
    for row in rows:
        raw = row["raw"]
        for name, v in zip(names, raw):
            assert ranges[name]["min"] <= v <= ranges[name]["max"], (name, v)
        scaled = [(x - m) / s for x, m, s in zip(raw, mean, scale)]
        assert scaled == row["scaled"], "scaling must be bit-identical: (x - mean) / scale in f64"
        x32 = [f32(v) for v in scaled]

        p, p32 = predict(trees, x32)
        assert p32 == row["proba_f32_tree_order"], (row["index"], p32, row["proba_f32_tree_order"])
        max_pred = max(max_pred, abs(p - row["proba"]))
        assert abs(p - row["proba"]) < PRED_TOL, (row["index"], p, row["proba"])
        if "proba_onnxruntime" in row:
            max_ort = max(max_ort, abs(p32 - row["proba_onnxruntime"]))

        phi = [0.0] * len(names)
        for tr in trees:
            tree_shap(tr, x32, phi)
        for a_, b_ in zip(phi, row["shap"]):
            max_shap = max(max_shap, abs(a_ - b_))
        assert all(abs(a_ - b_) < SHAP_TOL for a_, b_ in zip(phi, row["shap"])), (row["index"], phi, row["shap"])
        max_add = max(max_add, abs(base + sum(phi) - p))
    dt = time.perf_counter() - t0

    print(f"model {sidecar['version']}: {len(trees)} trees, {sum(len(t.feature) for t in trees)} nodes")
    print(f"checked {len(rows)} rows in {dt:.1f}s (pure Python)")
    print(f"  base value  |onnx - shap|      = {base_err:.3e}")
    print(f"  prediction  max |onnx - sklearn| = {max_pred:.3e}  (tol {PRED_TOL})")
    print("  prediction  f32 tree-order sum == fixture proba_f32_tree_order (bit-exact)")
    print(f"  prediction  max |f32 sum - onnxruntime| = {max_ort:.3e}")
    print(f"  shap        max |onnx - shap|    = {max_shap:.3e}  (tol {SHAP_TOL})")
    print(f"  additivity  max |base + sum(phi) - pred| = {max_add:.3e}")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
