-- The three commonest conditions in each age band (DENSE_RANK with a tie-breaker).
WITH counts AS (
  SELECT CASE WHEN 2024 - p.year_of_birth < 40 THEN 'under 40'
              WHEN 2024 - p.year_of_birth < 65 THEN '40-64'
              ELSE '65+' END AS age_band,
         co.condition_concept_id,
         COUNT(DISTINCT co.person_id) AS persons
  FROM condition_occurrence co
  JOIN person p ON p.person_id = co.person_id
  GROUP BY 1, 2
),
ranked AS (
  SELECT age_band, condition_concept_id, persons,
         DENSE_RANK() OVER (PARTITION BY age_band
                            ORDER BY persons DESC, condition_concept_id) AS rank_in_band
  FROM counts
)
SELECT age_band, condition_concept_id, persons, rank_in_band
FROM ranked
WHERE rank_in_band <= 3
