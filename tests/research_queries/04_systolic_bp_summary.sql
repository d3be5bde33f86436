-- Systolic blood pressure (3004249) by sex: mean, spread, exact median and 90th percentile.
SELECT p.gender_concept_id,
       COUNT(*) AS readings,
       AVG(m.value_as_number) AS mean_sbp,
       STDDEV_SAMP(m.value_as_number) AS sd_sbp,
       MIN(m.value_as_number) AS min_sbp,
       MAX(m.value_as_number) AS max_sbp,
       PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY m.value_as_number) AS median_sbp,
       PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY m.value_as_number) AS p90_sbp
FROM measurement m
JOIN person p ON p.person_id = m.person_id
WHERE m.measurement_concept_id = 3004249 AND m.value_as_number IS NOT NULL
GROUP BY p.gender_concept_id
