-- Hypertension prevalence by age band (age in 2024) and sex: CASE, LEFT JOIN, concept set.
WITH people AS (
  SELECT person_id, gender_concept_id,
         CASE WHEN 2024 - year_of_birth < 18 THEN '00-17'
              WHEN 2024 - year_of_birth < 40 THEN '18-39'
              WHEN 2024 - year_of_birth < 65 THEN '40-64'
              WHEN 2024 - year_of_birth < 80 THEN '65-79'
              ELSE '80+' END AS age_band
  FROM person
),
htn AS (
  SELECT DISTINCT co.person_id
  FROM condition_occurrence co
  JOIN concept_ancestor ca ON ca.descendant_concept_id = co.condition_concept_id
  WHERE ca.ancestor_concept_id = 320128
)
SELECT p.age_band, p.gender_concept_id,
       COUNT(*) AS persons,
       COUNT(h.person_id) AS with_htn,
       CAST(COUNT(h.person_id) AS DOUBLE PRECISION) / COUNT(*) AS prevalence
FROM people p
LEFT JOIN htn h ON h.person_id = p.person_id
GROUP BY p.age_band, p.gender_concept_id
