-- Each person's first recorded diagnosis (ROW_NUMBER), counted by condition.
WITH ordered AS (
  SELECT person_id, condition_concept_id, condition_start_date,
         ROW_NUMBER() OVER (PARTITION BY person_id
                            ORDER BY condition_start_date, condition_occurrence_id) AS rn
  FROM condition_occurrence
)
SELECT condition_concept_id,
       COUNT(*) AS persons_first,
       MIN(condition_start_date) AS earliest
FROM ordered
WHERE rn = 1
GROUP BY condition_concept_id
