"""The REST API of the scoring app: serializers and views over its services and selectors."""
