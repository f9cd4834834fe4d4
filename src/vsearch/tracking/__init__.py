"""MLflow experiment tracking: training runs, their lineage, and evaluations logged to them."""
