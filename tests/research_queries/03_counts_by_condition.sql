-- Records and persons per condition concept, with the concept name; HAVING, COUNT DISTINCT.
SELECT co.condition_concept_id,
       c.concept_name,
       COUNT(*) AS records,
       COUNT(DISTINCT co.person_id) AS persons
FROM condition_occurrence co
LEFT JOIN concept c ON c.concept_id = co.condition_concept_id
GROUP BY co.condition_concept_id, c.concept_name
HAVING COUNT(DISTINCT co.person_id) >= 10
