-- Days between consecutive systolic readings of a person (LAG), summarised.
WITH readings AS (
  SELECT person_id, measurement_date,
         LAG(measurement_date) OVER (PARTITION BY person_id
                                     ORDER BY measurement_date, measurement_id) AS previous
  FROM measurement
  WHERE measurement_concept_id = 3004249
),
gaps AS (
  SELECT person_id, CAST(measurement_date - previous AS INTEGER) AS gap_days
  FROM readings
  WHERE previous IS NOT NULL
)
SELECT COUNT(*) AS gaps,
       COUNT(DISTINCT person_id) AS persons,
       AVG(gap_days) AS mean_gap_days,
       MAX(gap_days) AS max_gap_days,
       SUM(CASE WHEN gap_days <= 365 THEN 1 ELSE 0 END) AS within_a_year
FROM gaps
