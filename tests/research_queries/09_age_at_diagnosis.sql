-- Age at first hypertension diagnosis by sex: date parts and arithmetic.
WITH first_htn AS (
  SELECT co.person_id, MIN(co.condition_start_date) AS diagnosed
  FROM condition_occurrence co
  JOIN concept_ancestor ca ON ca.descendant_concept_id = co.condition_concept_id
  WHERE ca.ancestor_concept_id = 320128
  GROUP BY co.person_id
)
SELECT p.gender_concept_id,
       COUNT(*) AS persons,
       AVG(CAST(EXTRACT(YEAR FROM f.diagnosed) AS INTEGER) - p.year_of_birth) AS mean_age,
       MIN(CAST(EXTRACT(YEAR FROM f.diagnosed) AS INTEGER) - p.year_of_birth) AS youngest,
       MAX(CAST(EXTRACT(YEAR FROM f.diagnosed) AS INTEGER) - p.year_of_birth) AS oldest
FROM first_htn f
JOIN person p ON p.person_id = f.person_id
GROUP BY p.gender_concept_id
