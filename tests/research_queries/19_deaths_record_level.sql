-- Record-level rows (a project with row access): the first deaths, with dates and text.
SELECT p.person_id, p.year_of_birth, d.death_date, d.death_type_concept_id, p.person_source_value
FROM death d
JOIN person p ON p.person_id = d.person_id
ORDER BY d.death_date, p.person_id
LIMIT 25
