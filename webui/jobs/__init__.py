"""One shape for background work: training runs, batch predictions, zip imports, suggestion refreshes."""
