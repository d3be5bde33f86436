-- Hypertension prevalence by IMD decile (observation 2000000001, value_as_number = decile).
WITH imd AS (
  SELECT person_id, CAST(MAX(value_as_number) AS INTEGER) AS decile
  FROM observation
  WHERE observation_concept_id = 2000000001
  GROUP BY person_id
),
htn AS (
  SELECT DISTINCT co.person_id
  FROM condition_occurrence co
  JOIN concept_ancestor ca ON ca.descendant_concept_id = co.condition_concept_id
  WHERE ca.ancestor_concept_id = 320128
)
SELECT imd.decile,
       COUNT(*) AS persons,
       COUNT(htn.person_id) AS with_htn,
       100.0 * COUNT(htn.person_id) / COUNT(*) AS pct
FROM imd
LEFT JOIN htn ON htn.person_id = imd.person_id
GROUP BY imd.decile
