-- Visits per person by visit type, among persons with at least one visit of that type.
SELECT v.visit_concept_id,
       COUNT(*) AS visits,
       COUNT(DISTINCT v.person_id) AS persons,
       CAST(COUNT(*) AS DOUBLE PRECISION) / COUNT(DISTINCT v.person_id) AS visits_per_person,
       MIN(v.visit_start_date) AS first_visit,
       MAX(v.visit_start_date) AS last_visit
FROM visit_occurrence v
GROUP BY v.visit_concept_id
