-- A rolling view: per patient, the last minute of readings, refreshed
-- every 10 seconds (hopping windows). The heart-rate spread flags unstable
-- rhythms that a mean hides.
SELECT
  patient_id,
  w.start AS window_start,
  w.end AS window_end,
  readings,
  hr_avg,
  hr_stddev,
  spo2_min,
  rr_avg
FROM (
  SELECT
    patient_id,
    hop(interval '10 seconds', interval '1 minute') AS w,
    count(*) AS readings,
    avg(heart_rate) AS hr_avg,
    stddev(heart_rate) AS hr_stddev,
    min(spo2) AS spo2_min,
    avg(respiratory_rate) AS rr_avg
  FROM monitors
  GROUP BY patient_id, w
)
