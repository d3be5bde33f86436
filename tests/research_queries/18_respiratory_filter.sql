-- Persons with asthma or COPD, and both (aggregate FILTER, COUNT DISTINCT).
SELECT COUNT(DISTINCT person_id) FILTER (WHERE condition_concept_id = 317009) AS asthma,
       COUNT(DISTINCT person_id) FILTER (WHERE condition_concept_id = 255573) AS copd,
       COUNT(DISTINCT person_id) AS either
FROM condition_occurrence
WHERE condition_concept_id IN (317009, 255573)
