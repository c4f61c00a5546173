"""The REST API of the publicity app: serializers and views over its services and selectors."""
