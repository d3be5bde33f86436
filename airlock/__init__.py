"""The airlock: release requests reviewed by two output checkers (issue in progress; see
``airlock.app`` for the service as it stands)."""
