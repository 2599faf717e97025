#!/usr/bin/env python3
"""Writes config/patients.csv: the static patient table the risk pipeline
joins windowed vitals with. Simulated patient i (P00001, P00002, ...) gets
the clinical history of Pima row (i - 1) mod 768 (models/data/), so the
diabetes model scores realistic feature combinations.

Usage: scripts/make-patients-table.py [patients]   (default 10000)
"""
import csv
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
patients = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
width = max(5, len(str(patients)))
with open(root / "models/data/pima-diabetes.csv", newline="") as f:
    rows = list(csv.DictReader(f))
with open(root / "config/patients.csv", "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["patient_id", "pregnancies", "glucose", "skin_thickness", "insulin",
                  "bmi", "diabetes_pedigree", "age"])
    for i in range(1, patients + 1):
        r = rows[(i - 1) % len(rows)]
        out.writerow([f"P{i:0{width}d}", r["Pregnancies"], r["Glucose"], r["SkinThickness"],
                      r["Insulin"], r["BMI"], r["DiabetesPedigreeFunction"], r["Age"]])
print(f"wrote {patients} patients to config/patients.csv")
