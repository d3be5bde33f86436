-- Person-years of observation by sex (interval lengths from date subtraction).
SELECT p.gender_concept_id,
       COUNT(*) AS periods,
       SUM(CAST(op.observation_period_end_date - op.observation_period_start_date AS INTEGER))
         / 365.25 AS person_years,
       MIN(op.observation_period_start_date) AS first_start,
       MAX(op.observation_period_end_date) AS last_end
FROM observation_period op
JOIN person p ON p.person_id = op.person_id
GROUP BY p.gender_concept_id
