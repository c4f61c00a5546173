"""The REST API of the reviews app: serializers and views over its services and selectors."""
