"""One asset per landing source: contract validation, quarantine, load manifest."""
