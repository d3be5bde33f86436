-- Persons with no visit at all (LEFT JOIN anti-join), by sex, and those with diagnoses anyway.
SELECT p.gender_concept_id,
       COUNT(*) AS without_visits,
       SUM(CASE WHEN EXISTS (SELECT 1 FROM condition_occurrence co
                             WHERE co.person_id = p.person_id) THEN 1 ELSE 0 END) AS with_diagnoses
FROM person p
LEFT JOIN visit_occurrence v ON v.person_id = p.person_id
WHERE v.visit_occurrence_id IS NULL
GROUP BY p.gender_concept_id
