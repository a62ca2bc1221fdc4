"""What several test packages share: toy models, servers, mirrors, certificates, data, oracles.

Test modules import from here, never from each other; fixtures live in tests/conftest.py.
"""
