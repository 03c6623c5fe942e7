"""Small, pure helpers shared by the Dagster definitions, the CLI and the generator."""
