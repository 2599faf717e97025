-- Per-reading NEWS2 (RCP 2017, SpO2 scale 1) in plain SQL: one sub-score per
-- parameter, the aggregate, the clinical risk band, and a red-score flag.
-- Readings outside what a monitor can physically report are filtered out.
WITH scored AS (
  SELECT
    patient_id,
    ts,
    heart_rate,
    spo2,
    systolic_bp,
    diastolic_bp,
    respiratory_rate,
    temperature,
    consciousness,
    on_oxygen,
    CASE
      WHEN respiratory_rate <= 8 THEN 3
      WHEN respiratory_rate <= 11 THEN 1
      WHEN respiratory_rate <= 20 THEN 0
      WHEN respiratory_rate <= 24 THEN 2
      ELSE 3
    END AS respiration_score,
    CASE
      WHEN spo2 <= 91 THEN 3
      WHEN spo2 <= 93 THEN 2
      WHEN spo2 <= 95 THEN 1
      ELSE 0
    END AS spo2_score,
    CASE WHEN on_oxygen THEN 2 ELSE 0 END AS oxygen_score,
    CASE
      WHEN systolic_bp <= 90 THEN 3
      WHEN systolic_bp <= 100 THEN 2
      WHEN systolic_bp <= 110 THEN 1
      WHEN systolic_bp <= 219 THEN 0
      ELSE 3
    END AS systolic_score,
    CASE
      WHEN heart_rate <= 40 THEN 3
      WHEN heart_rate <= 50 THEN 1
      WHEN heart_rate <= 90 THEN 0
      WHEN heart_rate <= 110 THEN 1
      WHEN heart_rate <= 130 THEN 2
      ELSE 3
    END AS pulse_score,
    CASE WHEN consciousness = 'A' THEN 0 ELSE 3 END AS consciousness_score,
    CASE
      WHEN temperature <= 35.0 THEN 3
      WHEN temperature <= 36.0 THEN 1
      WHEN temperature <= 38.0 THEN 0
      WHEN temperature <= 39.0 THEN 1
      ELSE 2
    END AS temperature_score
  FROM monitors
  WHERE heart_rate BETWEEN 20 AND 300
    AND spo2 BETWEEN 50 AND 100
    AND systolic_bp BETWEEN 40 AND 300
    AND respiratory_rate BETWEEN 0 AND 80
    AND temperature BETWEEN 25.0 AND 45.0
)
SELECT
  *,
  respiration_score + spo2_score + oxygen_score + systolic_score
    + pulse_score + consciousness_score + temperature_score AS news2_score,
  CASE
    WHEN respiration_score + spo2_score + oxygen_score + systolic_score
         + pulse_score + consciousness_score + temperature_score >= 7 THEN 'high'
    WHEN respiration_score + spo2_score + oxygen_score + systolic_score
         + pulse_score + consciousness_score + temperature_score >= 5 THEN 'medium'
    WHEN respiration_score = 3 OR spo2_score = 3 OR systolic_score = 3
         OR pulse_score = 3 OR consciousness_score = 3 OR temperature_score = 3 THEN 'low-medium'
    ELSE 'low'
  END AS risk_level
FROM scored
