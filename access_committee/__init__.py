"""The data access committee: applications that become versioned, enforceable projects
(issue in progress; see ``access_committee.app`` for the service as it stands)."""
