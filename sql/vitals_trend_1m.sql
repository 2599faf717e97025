-- The dashboard's trend rollup: per patient and minute of event time, the
-- count, minimum, sum and maximum of every charted vital and the highest
-- NEWS2. Sums (not means) so that longer buckets stay exact: the mean over
-- any run of minutes is Σ sum / Σ count. The history endpoint reads this
-- table for whole minutes and the raw readings only for the minutes not
-- closed yet.
SELECT
  patient_id,
  w.start AS ts,
  readings,
  heart_rate_n, heart_rate_min, heart_rate_sum, heart_rate_max,
  spo2_n, spo2_min, spo2_sum, spo2_max,
  systolic_bp_n, systolic_bp_min, systolic_bp_sum, systolic_bp_max,
  diastolic_bp_n, diastolic_bp_min, diastolic_bp_sum, diastolic_bp_max,
  respiratory_rate_n, respiratory_rate_min, respiratory_rate_sum, respiratory_rate_max,
  temperature_n, temperature_min, temperature_sum, temperature_max,
  news2_score_n, news2_score_min, news2_score_sum, news2_score_max
FROM (
  SELECT
    patient_id,
    tumble(interval '1 minute') AS w,
    count(*) AS readings,
    count(heart_rate) AS heart_rate_n, CAST(min(heart_rate) AS DOUBLE) AS heart_rate_min,
    sum(CAST(heart_rate AS DOUBLE)) AS heart_rate_sum, CAST(max(heart_rate) AS DOUBLE) AS heart_rate_max,
    count(spo2) AS spo2_n, CAST(min(spo2) AS DOUBLE) AS spo2_min,
    sum(CAST(spo2 AS DOUBLE)) AS spo2_sum, CAST(max(spo2) AS DOUBLE) AS spo2_max,
    count(systolic_bp) AS systolic_bp_n, CAST(min(systolic_bp) AS DOUBLE) AS systolic_bp_min,
    sum(CAST(systolic_bp AS DOUBLE)) AS systolic_bp_sum, CAST(max(systolic_bp) AS DOUBLE) AS systolic_bp_max,
    count(diastolic_bp) AS diastolic_bp_n, CAST(min(diastolic_bp) AS DOUBLE) AS diastolic_bp_min,
    sum(CAST(diastolic_bp AS DOUBLE)) AS diastolic_bp_sum, CAST(max(diastolic_bp) AS DOUBLE) AS diastolic_bp_max,
    count(respiratory_rate) AS respiratory_rate_n, CAST(min(respiratory_rate) AS DOUBLE) AS respiratory_rate_min,
    sum(CAST(respiratory_rate AS DOUBLE)) AS respiratory_rate_sum, CAST(max(respiratory_rate) AS DOUBLE) AS respiratory_rate_max,
    count(temperature) AS temperature_n, CAST(min(temperature) AS DOUBLE) AS temperature_min,
    sum(CAST(temperature AS DOUBLE)) AS temperature_sum, CAST(max(temperature) AS DOUBLE) AS temperature_max,
    count(news2_score) AS news2_score_n, CAST(min(news2_score) AS DOUBLE) AS news2_score_min,
    sum(CAST(news2_score AS DOUBLE)) AS news2_score_sum, CAST(max(news2_score) AS DOUBLE) AS news2_score_max
  FROM scored
  GROUP BY patient_id, w
)
