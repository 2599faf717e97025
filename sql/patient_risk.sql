-- Per patient and minute of event time: the NEWS2 early-warning score of
-- the minute's readings (the `news2` UDF plugin, worst and mean), and the
-- diabetes risk model's probability from the patient's history (the static
-- `patients` table) with the minute's mean diastolic blood pressure.
SELECT
  m.patient_id,
  m.window_start,
  m.window_end,
  m.readings,
  m.news2_max,
  m.news2_avg,
  m.news2_missing_max,
  m.dbp_avg,
  diabetes_risk(
    p.pregnancies, p.glucose, m.dbp_avg, p.skin_thickness,
    p.insulin, p.bmi, p.diabetes_pedigree, p.age
  ) AS diabetes_risk
FROM (
  SELECT
    patient_id,
    w.start AS window_start,
    w.end AS window_end,
    readings, news2_max, news2_avg, news2_missing_max, dbp_avg
  FROM (
    SELECT
      patient_id,
      tumble(interval '1 minute') AS w,
      count(*) AS readings,
      max(news2(respiratory_rate, spo2, CAST(on_oxygen AS BIGINT), systolic_bp,
                heart_rate, consciousness, temperature)) AS news2_max,
      avg(news2(respiratory_rate, spo2, CAST(on_oxygen AS BIGINT), systolic_bp,
                heart_rate, consciousness, temperature)) AS news2_avg,
      max(news2_missing(respiratory_rate, spo2, CAST(on_oxygen AS BIGINT), systolic_bp,
                        heart_rate, consciousness, temperature)) AS news2_missing_max,
      avg(diastolic_bp) AS dbp_avg
    FROM monitors
    GROUP BY patient_id, w
  )
) AS m
JOIN patients AS p ON p.patient_id = m.patient_id
