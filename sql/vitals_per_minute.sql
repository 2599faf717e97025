-- Per patient and minute of event time: how many readings arrived and the
-- mean / extremes of each vital. A minute is emitted once, when the
-- watermark passes its end (readings up to `max_delay` late still count).
SELECT
  patient_id,
  w.start AS window_start,
  w.end AS window_end,
  readings,
  hr_avg, hr_min, hr_max,
  spo2_avg, spo2_min,
  rr_avg, rr_max,
  sbp_avg, sbp_min,
  temp_avg, temp_max,
  minutes_on_oxygen
FROM (
  SELECT
    patient_id,
    tumble(interval '1 minute') AS w,
    count(*) AS readings,
    avg(heart_rate) AS hr_avg,
    min(heart_rate) AS hr_min,
    max(heart_rate) AS hr_max,
    avg(spo2) AS spo2_avg,
    min(spo2) AS spo2_min,
    avg(respiratory_rate) AS rr_avg,
    max(respiratory_rate) AS rr_max,
    avg(systolic_bp) AS sbp_avg,
    min(systolic_bp) AS sbp_min,
    avg(temperature) AS temp_avg,
    max(temperature) AS temp_max,
    bool_or(on_oxygen) AS minutes_on_oxygen
  FROM monitors
  GROUP BY patient_id, w
)
