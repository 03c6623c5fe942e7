"""What people read: reports now; dashboards and exports as they arrive."""
