-- Metformin (1503297) after a first type 2 diabetes diagnosis (201826): days to first exposure.
WITH first_t2d AS (
  SELECT person_id, MIN(condition_start_date) AS diagnosed
  FROM condition_occurrence
  WHERE condition_concept_id = 201826
  GROUP BY person_id
),
after AS (
  SELECT f.person_id,
         MIN(CAST(d.drug_exposure_start_date - f.diagnosed AS INTEGER)) AS days_to_first,
         COUNT(*) AS exposures
  FROM first_t2d f
  JOIN drug_exposure d ON d.person_id = f.person_id
  WHERE d.drug_concept_id = 1503297 AND d.drug_exposure_start_date >= f.diagnosed
  GROUP BY f.person_id
)
SELECT (SELECT COUNT(*) FROM first_t2d) AS diagnosed,
       COUNT(*) AS treated_after,
       SUM(exposures) AS exposures_after,
       AVG(days_to_first) AS mean_days_to_first,
       MIN(days_to_first) AS min_days_to_first
FROM after
