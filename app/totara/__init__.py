"""Totara's ML-service protocol as plain rules (`protocol`: signature, item ids); its HTTP
endpoints are app/api/totara.py."""
