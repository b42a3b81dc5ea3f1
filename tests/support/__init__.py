"""Test doubles and helpers shared by unit tests (never imported by the product)."""
