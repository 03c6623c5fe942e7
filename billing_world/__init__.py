"""A seeded synthetic billing world written in the landing contract.

Our stand-in for a real company's exports: `simulate` makes clean tables and
ground truth, `deliver` writes them as batch files, `generate` does both.
"""
