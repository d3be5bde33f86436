-- Persons with two or more systolic readings >= 140 and no hypertension diagnosis (anti-join).
WITH high AS (
  SELECT person_id, COUNT(*) AS high_readings
  FROM measurement
  WHERE measurement_concept_id = 3004249 AND value_as_number >= 140
  GROUP BY person_id
  HAVING COUNT(*) >= 2
),
htn AS (
  SELECT DISTINCT co.person_id
  FROM condition_occurrence co
  JOIN concept_ancestor ca ON ca.descendant_concept_id = co.condition_concept_id
  WHERE ca.ancestor_concept_id = 320128
)
SELECT p.gender_concept_id,
       COUNT(*) AS undiagnosed,
       SUM(h.high_readings) AS high_readings
FROM high h
JOIN person p ON p.person_id = h.person_id
LEFT JOIN htn d ON d.person_id = h.person_id
WHERE d.person_id IS NULL
GROUP BY p.gender_concept_id
