-- Persons by sex once National Data Opt-out registrations are removed (NOT EXISTS).
SELECT p.gender_concept_id,
       COUNT(*) AS persons,
       COUNT(DISTINCT p.year_of_birth) AS birth_years,
       MIN(p.year_of_birth) AS oldest_born,
       MAX(p.year_of_birth) AS youngest_born
FROM person p
WHERE NOT EXISTS (SELECT 1 FROM sde_opt_out o WHERE o.person_id = p.person_id)
GROUP BY p.gender_concept_id
