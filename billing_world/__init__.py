"""A seeded synthetic billing world written in the landing contract: our stand-in for a real company's exports."""
